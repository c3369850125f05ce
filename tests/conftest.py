import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Keep keras, matplotlib and dask scratch files out of the home directory.
_SCRATCH = Path(tempfile.mkdtemp(prefix="iaa-tests-"))
os.environ.setdefault("KERAS_HOME", str(_SCRATCH / "keras"))
os.environ.setdefault("MPLCONFIGDIR", str(_SCRATCH / "mpl"))
os.environ.setdefault("DASK_TEMPORARY_DIRECTORY", str(_SCRATCH / "dask"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"


def write_image(path: Path, array: np.ndarray, **params) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(array[..., ::-1]) if array.ndim == 3 else array)
    return path


def random_photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB image (compresses like a photo, not like noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(h // 8, 2), max(w // 8, 2), 3)).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


@pytest.fixture
def tiny_folder(tmp_path):
    """6 good images of two sizes, labels.csv with votes, one corrupt and one too-small image."""
    root = tmp_path / "folder"
    rows = []
    for i in range(6):
        h, w = (72, 96) if i % 2 else (80, 64)
        write_image(root / "images" / f"img{i}.jpg", random_photo(h, w, seed=i))
        votes = [(i + k) % 4 for k in range(10)]
        rows.append((f"img{i}.jpg", 3 + i * 0.5, ["train", "train", "train", "val", "test", "test"][i], votes))
    (root / "images" / "broken.jpg").write_bytes(b"this is not a jpeg")
    write_image(root / "images" / "small.png", random_photo(12, 12, seed=9))
    rows.append(("broken.jpg", 5.0, "train", [1] * 10))
    rows.append(("small.png", 4.0, "train", [1] * 10))
    rows.append(("missing.jpg", 4.0, "test", [1] * 10))
    lines = ["file,mos,split," + ",".join(f"votes_{k}" for k in range(1, 11))]
    for f, mos, split, votes in rows:
        lines.append(f"{f},{mos},{split}," + ",".join(str(v) for v in votes))
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def kill_once_started(command, cwd, env, store, timeout: float = 240) -> int:
    """Runs `command` in its own process group and SIGKILLs the whole group (the command and its dask workers)
    as soon as the store has a processed image; returns how many it had then."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + timeout
    while time.time() < deadline and done_count(store) == 0 and proc.poll() is None:
        time.sleep(0.05)
    killed_at = done_count(store)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return killed_at


def done_count(zarr_path: Path) -> int:
    """Images a (possibly still running) extraction has finished, 0 before its store exists."""
    import zarr

    from features import store as st

    try:
        return int((np.asarray(zarr.open_group(str(zarr_path), mode="r")["status"][:]) != st.PENDING).sum())
    except Exception:
        return 0


def make_store(path: Path, features: dict, mos, split, hist=None, blocks=None, scale=(1.0, 10.0),
               engine: str = "zarr", status=None, extra_labels=None) -> Path:
    """A small synthetic feature store: features = {kind: (N, V, ...) array}."""
    from features import store as st
    from features import store_writer as sw

    kinds = {k: tuple(v.shape[2:]) for k, v in features.items()}
    n, n_views = next(iter(features.values())).shape[:2]
    task = max(1, min(64, n))
    layout = sw.StoreLayout(n=n, n_views=n_views, kinds=kinds, task_size=task,
                            hist_bins=None if hist is None else hist.shape[1])
    first = next(iter(kinds.values()))
    blocks = blocks or [{"name": "all", "channels": int(first[-1]), "offset": 0}]
    attrs = {"settings": {}, "kinds": {k: {"shape": list(s)} for k, s in kinds.items()}, "task_size": task,
             "blocks": blocks, "dataset": {"name": "synthetic", "scale": list(scale)},
             "backbone": "synthetic", "view_set": "synthetic"}
    zpath = path if engine == "zarr" else st.staging_path(path)
    ids = [f"s{i:05d}" for i in range(n)]
    sw.create_zarr(zpath, layout, attrs, ids, list(split), ids, np.asarray(mos, np.float32), hist,
                   extra_labels=extra_labels)
    status = np.full(n, st.DONE, np.int8) if status is None else np.asarray(status, np.int8)
    for start, stop in layout.tasks():
        sw.write_task(str(zpath), start, stop, {k: v[start:stop].astype(np.float16) for k, v in features.items()},
                      status[start:stop], [""] * (stop - start), np.full(stop - start, 64), np.full(stop - start, 64))
    if engine == "hdf5":
        import shutil

        sw.finalize_hdf5(zpath, path)
        shutil.rmtree(zpath)
    return path


def add_attributes(path: Path, names, values, scales=None) -> Path:
    """Adds `labels/attributes` (N, A) with their names (and scales) to a synthetic Zarr store."""
    import zarr

    values = np.asarray(values, np.float32)
    root = zarr.open_group(str(path), mode="r+")
    root["labels"].create_array("attributes", shape=values.shape, dtype="float32", chunks=values.shape)[:] = values
    dataset = dict(root.attrs["dataset"])
    described = {"names": list(names), "annotated": int(np.isfinite(values).all(axis=1).sum())}
    if scales is not None:
        described["scales"] = [list(map(float, s)) for s in scales]
    dataset["labels"] = {"attributes": described}
    root.attrs["dataset"] = dataset
    return path


def linear_store(path: Path, n: int = 300, views: int = 2, dim: int = 24, seed: int = 0, engine="zarr",
                 wide: bool = False, hist_bins: int = 0, test_split: bool = True, unit_scale: bool = False) -> Path:
    """Labels are a known function of the features: mos = 5.5 + 1.5 * tanh(w . mean-over-views)
    (1-10 scale), or that mapped to 0-1 with `unit_scale` (AADB/KonIQ-style labels)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, dim)).astype(np.float32)
    feats = np.abs(base[:, None, :] + 0.1 * rng.normal(size=(n, views, dim))).astype(np.float32)
    w = rng.normal(size=dim) / np.sqrt(dim)
    mos = 5.5 + 1.5 * np.tanh(np.abs(base) @ w * 2)
    split = np.array(["train"] * n, dtype=object)
    split[int(0.7 * n): int(0.8 * n)] = "val"
    split[int(0.8 * n):] = "test" if test_split else "val"
    features = {"mlsp_narrow": feats}
    if wide:
        features["mlsp_wide"] = np.repeat(np.repeat(feats[:, :, None, None, :], 5, axis=2), 5, axis=3)
    hist = None
    if hist_bins:
        centers = np.arange(1, hist_bins + 1)
        hist = np.exp(-0.5 * ((centers[None] - mos[:, None]) / 1.2) ** 2) * 100
        hist = np.round(hist).astype(np.float32)
    if unit_scale:
        return make_store(path, features, (mos - 1) / 9, split, engine=engine, scale=(0.0, 1.0))
    return make_store(path, features, mos, split, hist=hist, engine=engine)


SCORED_HEADS = ("single1fc", "ridge", "pool3fc_dist")  # Keras score, scikit-learn, Keras distribution (wide)


@pytest.fixture(scope="session")
def scored(tmp_path_factory):
    """A folder of 24 small photos, its crop_flip store (random VGG16-HED), and one run per head family."""
    from pipeline.extraction.extract import ExtractConfig, run_extract
    from pipeline.training.train import TrainConfig, run_heads

    root = tmp_path_factory.mktemp("scored")
    folder = root / "folder"
    lines = ["file,mos,split," + ",".join(f"votes_{k}" for k in range(1, 11))]
    for i in range(24):
        h, w = (56, 72) if i % 3 else (64, 48)
        img = np.clip(random_photo(h, w, seed=i).astype(int) * (0.3 + i / 30), 0, 255).astype(np.uint8)
        write_image(folder / "images" / f"p{i:02d}.jpg", img)
        split = "train" if i < 14 else "val" if i < 18 else "test"
        votes = [int(10 * np.exp(-0.5 * (k - 2 - i / 4) ** 2)) + 1 for k in range(1, 11)]
        lines.append(f"p{i:02d}.jpg,{2 + i / 4:.2f},{split}," + ",".join(map(str, votes)))
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    store = root / "s.zarr"
    run_extract(ExtractConfig(dataset="folder", data_dir=str(folder), store=str(store), backbone="vgg16_hed",
                              weights="random:0", features="mlsp_narrow,mlsp_wide", views="crop_flip",
                              scheduler="inprocess"), log=lambda m: None)
    cfg = TrainConfig(store=str(store), head=SCORED_HEADS[0], batch_size=8, lr_stages=[1e-3], max_epochs=2)
    runs = {h: root / "runs" / h for h in SCORED_HEADS}
    run_heads(cfg, list(SCORED_HEADS), [runs[h] for h in SCORED_HEADS], log=lambda m: None)
    return {"folder": folder, "store": store, "runs": runs, "root": root}
