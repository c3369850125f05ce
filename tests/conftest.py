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
