"""KonIQ-10k (Hosu et al. 2020): 10,073 photos, MOS 1-100 and 5-bin vote distributions.

`--data-dir` holds `koniq10k_distributions_sets.csv` (`image_name,c1..c5,c_total,MOS,SD,set`; c1..c5 are
vote fractions, `set` the official training / validation / test) and the photos under `images/`, or under
the release's own `1024x768/` or `512x384/` folder. The store records which folder (hence which release
size) it used. Vote counts are stored as `labels/hist` (fraction × c_total, rounded), so distribution
heads train with K = 5; the MOS scale is 1-100 (the 1-5 ratings mapped linearly).

Reference: Hosu, Lin, Sziranyi, Saupe, "KonIQ-10k: An Ecologically Valid Database for Deep Learning of
Blind Image Quality Assessment", IEEE TIP 2020.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from pipeline.datasets.base import DatasetError, DatasetSpec, Manifest, register_dataset

LABELS_FILE = "koniq10k_distributions_sets.csv"
IMAGE_DIRS = ("images", "1024x768", "512x384")
SETS = {"training": "train", "validation": "val", "test": "test"}
BINS = ("c1", "c2", "c3", "c4", "c5")


def _image_dir(root: Path, first: str) -> Path:
    """The first candidate folder that holds the first listed photo (else `images/`, reported missing)."""
    return next((root / d for d in IMAGE_DIRS if (root / d / first).is_file()), root / IMAGE_DIRS[0])


def load_koniq10k(root: Path) -> Manifest:
    """KonIQ-10k from `root` (its distributions CSV and the photos): MOS on 1-100, 5-bin vote histograms, the official split.

    Raises:
        DatasetError: the CSV is missing or malformed (file and line named).
    """
    path = root / LABELS_FILE
    if not path.is_file():
        raise DatasetError(f"koniq10k: {path} is missing; give the folder with {LABELS_FILE} (and the photos "
                           f"under images/) with --data-dir")
    ids, split, mos, hist = [], [], [], []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        need = ["image_name", *BINS, "c_total", "MOS", "set"]
        absent = [c for c in need if c not in (reader.fieldnames or [])]
        if absent:
            raise DatasetError(f"{path}:1: columns {absent} are missing; expected {need}")
        for lineno, row in enumerate(reader, start=2):
            s = SETS.get(row["set"].strip())
            if s is None:
                raise DatasetError(f"{path}:{lineno}: set must be one of {', '.join(SETS)}; received {row['set']!r}")
            try:
                total = float(row["c_total"])
                hist.append([round(float(row[c]) * total) for c in BINS])
                mos.append(float(row["MOS"]))
            except ValueError:
                raise DatasetError(f"{path}:{lineno}: c1..c5, c_total and MOS must be numbers") from None
            ids.append(row["image_name"].strip())
            split.append(s)
    if not ids:
        raise DatasetError(f"{path}: no rows")
    images = _image_dir(root, ids[0])
    notes = {"split": "official training / validation / test", "images": str(images.relative_to(root)),
             "release_size": images.name if images.name != "images" else "as found under images/",
             "hist": "c1..c5 fractions x c_total, rounded to vote counts"}
    return Manifest("koniq10k", root, ids, [images / i for i in ids], np.asarray(mos, np.float32), split,
                    hist=np.asarray(hist, np.float32), scale=(1.0, 100.0), label_source=[path], notes=notes)


register_dataset(DatasetSpec("koniq10k", load_koniq10k,
                             "KonIQ-10k: koniq10k_distributions_sets.csv + images/ (official sets, 5-bin votes)"))
