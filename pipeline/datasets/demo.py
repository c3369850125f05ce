"""`demo`: a few hundred degraded versions of real photographs bundled with scikit-image.

Built on first use into the data directory (default `data/demo`), with no network:

* Sources: 10 photographs shipped inside the scikit-image wheel (astronaut, camera, chelsea,
  coffee, coins, hubble_deep_field, motorcycle (left view), rocket, moon, grass), shrunk (INTER_AREA)
  so the longer side is 240 px; grey photos are made RGB.
* Each source: the original, each of 5 degradations at strengths 1..4, and 12 seeded pairs of two
  degradations at random strengths: 33 images, 330 in all.
  - blur: Gaussian, sigma = 0.8 s;   noise: Gaussian, std = 7 s grey levels;
  - jpeg: quality 50, 25, 12, 6;     exposure: gain 0.72^s (odd sources) or 1.3^s (even), clipped;
  - colour: saturation x (1 - 0.22 s) plus a warm/cold cast of 9 s grey levels.
* Synthetic opinion scores: quality q = base(source) - sum(penalty(type) * s), with bases between
  6.0 and 7.2 and penalties per strength blur 0.55, noise 0.5, jpeg 0.45, exposure 0.5, colour 0.35.
  100 virtual votes are drawn on 1..10 from a normal around q (sd 1.3, discretised, largest
  remainder), and MOS is their mean, as in AVA. So the ground truth is a known, monotone function
  of degradation type and strength, with a per-source offset.
* Split by source (content-disjoint): 7 sources train, 1 val, 2 test.
"""
from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np

from pipeline.datasets.base import DatasetError, DatasetSpec, Manifest, register_dataset

DEMO_VERSION = "1"
MAX_SIDE = 240
N_PAIRS = 12
SEED = 2019
SOURCES = (  # name, base quality, split
    ("astronaut", 6.8, "train"), ("camera", 6.2, "train"), ("chelsea", 7.0, "train"),
    ("coffee", 6.6, "train"), ("coins", 6.0, "val"), ("hubble_deep_field", 6.4, "train"),
    ("motorcycle", 6.9, "test"), ("rocket", 6.5, "train"), ("moon", 6.1, "test"), ("grass", 7.2, "train"),
)
PENALTY = {"blur": 0.55, "noise": 0.5, "jpeg": 0.45, "exposure": 0.5, "colour": 0.35}
JPEG_QUALITY = {1: 50, 2: 25, 3: 12, 4: 6}
VOTES = 100
VOTE_SD = 1.3


def _source_image(name: str) -> np.ndarray:
    import cv2
    from skimage import data

    img = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3].astype(np.uint8)
    h, w = img.shape[:2]
    scale = MAX_SIDE / max(h, w)
    return cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def degrade(img: np.ndarray, kind: str, s: int, rng: np.random.Generator, source_index: int) -> np.ndarray:
    """Applies one degradation at strength s (1..4) to an RGB uint8 image."""
    import cv2

    x = img.astype(np.float32)
    if kind == "blur":
        x = cv2.GaussianBlur(x, (0, 0), sigmaX=0.8 * s)
    elif kind == "noise":
        x = x + rng.normal(0.0, 7.0 * s, size=x.shape)
    elif kind == "jpeg":
        ok, enc = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY[s]])
        return cv2.imdecode(enc, cv2.IMREAD_COLOR)[..., ::-1]
    elif kind == "exposure":
        x = x * (0.72 ** s if source_index % 2 else 1.3 ** s)
    elif kind == "colour":
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * (1.0 - 0.22 * s)
        cast = np.array([9.0, 0.0, -9.0] if source_index % 2 else [-9.0, 0.0, 9.0], np.float32) * s
        x = x + cast
    else:
        raise ValueError(f"unknown degradation {kind!r}")
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def vote_histogram(quality: float) -> np.ndarray:
    """100 votes on 1..10 from a discretised normal around `quality` (largest remainder)."""
    from math import erf, sqrt

    edges = np.arange(0.5, 11.0, 1.0)
    cdf = np.array([0.5 * (1 + erf((e - quality) / (VOTE_SD * sqrt(2)))) for e in edges])
    p = np.diff(cdf)
    p = p / p.sum()
    raw = p * VOTES
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts))[: VOTES - counts.sum()]:
        counts[i] += 1
    return counts


def build_demo(root: Path) -> None:
    """Writes the demo images and labels.csv into root (deterministic)."""
    import cv2

    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    kinds = list(PENALTY)
    rows = []
    for index, (name, base, split) in enumerate(SOURCES):
        src = _source_image(name)
        variants = [()] + [((k, s),) for k in kinds for s in range(1, 5)]
        pairs = list(itertools.combinations(kinds, 2))
        for j in rng.choice(len(pairs), size=N_PAIRS, replace=True):
            a, b = pairs[j]
            variants.append(((a, int(rng.integers(1, 5))), (b, int(rng.integers(1, 5)))))
        for v, steps in enumerate(variants):
            img = src
            for kind, s in steps:
                img = degrade(img, kind, s, rng, index)
            quality = base - sum(PENALTY[k] * s for k, s in steps)
            votes = vote_histogram(quality)
            desc = "+".join(f"{k}{s}" for k, s in steps) or "original"
            fname = f"{name}_{v:02d}_{desc}.jpg"
            jpeg_q = min([JPEG_QUALITY[s] for k, s in steps if k == "jpeg"] or [95])
            cv2.imwrite(str(images / fname), img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_q])
            mos = float((votes * np.arange(1, 11)).sum() / votes.sum())
            rows.append([fname, f"{mos:.4f}", split, name, desc] + [str(c) for c in votes])
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "mos", "split", "source", "degradation"] + [f"votes_{i}" for i in range(1, 11)])
        w.writerows(rows)
    (root / "DEMO_VERSION").write_text(DEMO_VERSION + "\n")


def ensure_demo(root: Path) -> None:
    """Builds the demo set under `root` unless a build of this `DEMO_VERSION` is already there."""
    stamp = root / "DEMO_VERSION"
    if stamp.is_file() and stamp.read_text().strip() == DEMO_VERSION:
        return
    print(f"demo: building {len(SOURCES) * (1 + 20 + N_PAIRS)} images from scikit-image photos into {root} ...")
    try:
        build_demo(root)
    except ImportError as exc:
        raise DatasetError(f"demo: scikit-image is needed to build the demo set ({exc}); run `make install`") from None


def load_demo(root: Path) -> Manifest:
    """The demo set's manifest (built first when missing): 330 degraded scikit-image photos on a 1-10 scale."""
    from pipeline.datasets.folder import read_labels_csv

    ensure_demo(root)
    manifest = read_labels_csv(root, root / "labels.csv")
    manifest.name = "demo"
    manifest.scale = (1.0, 10.0)
    manifest.notes["split"] = "by source photo: 7 train, 1 val, 2 test"
    manifest.notes["demo_version"] = DEMO_VERSION
    return manifest


register_dataset(DatasetSpec("demo", load_demo, "330 degraded scikit-image photos with synthetic votes, built offline"))
