"""Flickr photos with their crawled metadata: two derived labels, no human ratings.

Layout: `<root>/flickr.csv` and the photos in `<root>/images/` (or `<root>`). Columns: `file`, `views`,
`favs`, the photo's age as `days` or as `upload_date` and `crawl_date` (ISO dates or date-times), optional
`owner` (the uploader: splits keep each owner's photos together) and `split` (train/val/test).

Labels (formulas recorded in the store):
- `aesthetic_s`, Schwarz et al. 2018 eq. 1: `S = log F / log V`. Photos without favs are excluded (NaN) as
  in the paper; so are photos with fewer than 2 views (log V ≤ 0: S undefined or of the wrong sign).
  F = 1 gives S = 0. This is the store's MOS (the aesthetic label).
- `popularity`, photo-critic: `log2((views + 1) / (days + 1))`, defined for every photo
  (train on it with `iaa train --label popularity`; `svm_binary`/`rf_binary` then learn its top and
  bottom 20 %, the paper's task).

Without a `split` column: a seeded 80/10/10 split, by owner when owners are given (no photographer on
both sides of a split), else by photo.
"""
from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path
from typing import Optional

import numpy as np

from pipeline.datasets.base import SPLITS, DatasetError, DatasetSpec, Manifest, register_dataset, seeded_split
from pipeline.datasets.folder import FolderPaths

METADATA_FILE = "flickr.csv"
SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MIN_VIEWS_FOR_S = 2
MIN_OWNERS_TO_SPLIT_BY = 5
LABELS = ("aesthetic_s", "popularity")
FORMULAS = {
    "aesthetic_s": f"log(favs) / log(views) (Schwarz et al. 2018 eq. 1); NaN when favs = 0 (excluded as in the "
                   f"paper) or views < {MIN_VIEWS_FOR_S} (log views <= 0)",
    "popularity": "log2((views + 1) / (days + 1)) (photo-critic), days = age of the photo at the crawl",
}


def aesthetic_s(views: float, favs: float) -> float:
    """Schwarz et al.'s score S = log F / log V, NaN where the paper excludes the photo or S is undefined."""
    if favs <= 0 or views < MIN_VIEWS_FOR_S:
        return math.nan
    return math.log(favs) / math.log(views)


def popularity(views: float, days: float) -> float:
    """photo-critic's score log2((views + 1) / (days + 1))."""
    return math.log2((views + 1.0) / (days + 1.0))


def _count(row: dict, column: str, where: str) -> float:
    text = (row.get(column) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: column {column!r} must be a count, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise DatasetError(f"{where}: column {column!r} must be a finite count >= 0, got {text!r}")
    return value


def _date(text: str, column: str, where: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise DatasetError(f"{where}: column {column!r} must be an ISO date (2016-05-31 or 2016-05-31T12:00:00), "
                           f"got {text!r}") from None


def _days(row: dict, columns: list, where: str) -> float:
    if "days" in columns:
        return _count(row, "days", where)
    upload = _date(row.get("upload_date") or "", "upload_date", where)
    crawl = _date(row.get("crawl_date") or "", "crawl_date", where)
    days = (crawl - upload).total_seconds() / 86400.0
    if days < 0:
        raise DatasetError(f"{where}: crawl_date {crawl.date()} is before upload_date {upload.date()}")
    return days


def _split(n: int, owners: Optional[list]) -> tuple:
    """A seeded 80/10/10 split, by owner when there are enough owners (every split gets at least one); and
    the note that records it."""
    names = tuple(SPLITS)
    unique = sorted(set(owners)) if owners is not None else []
    if len(unique) < MIN_OWNERS_TO_SPLIT_BY:
        note = f"seeded by photo (seed {SPLIT_SEED}), 80/10/10"
        if owners is not None:
            note += f" ({len(unique)} owners are too few to split by owner)"
        return seeded_split(n, SPLIT_FRACTIONS, names, SPLIT_SEED), note
    order = np.random.default_rng(SPLIT_SEED).permutation(len(unique))
    n_val = n_test = max(1, round(SPLIT_FRACTIONS[1] * len(unique)))
    by_owner = {}
    for rank, i in enumerate(order):
        by_owner[unique[i]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    note = f"seeded by owner (seed {SPLIT_SEED}, {len(unique)} owners), 80/10/10 of owners"
    return [by_owner[o] for o in owners], note


def load_flickr(root: Path) -> Manifest:
    """Reads `<root>/flickr.csv` (see the module text).

    Raises:
        DatasetError: a missing file or column, a bad count or date (naming the file and line).
    """
    path = root / METADATA_FILE
    if not path.is_file():
        raise DatasetError(f"no {METADATA_FILE} in {root}: put the crawl's metadata there (columns file, views, favs, "
                           f"days or upload_date and crawl_date, optional owner and split)")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        need = ["file", "views", "favs"] + ([] if "days" in columns else ["upload_date", "crawl_date"])
        missing = [c for c in need if c not in columns]
        if missing:
            raise DatasetError(f"{path}:1: header needs {', '.join(missing)} (the age as `days`, or as "
                               f"`upload_date` and `crawl_date`); found {columns}")
        ids, paths, labels, owners, splits = [], [], [], [], []
        first_line, resolve = {}, FolderPaths(root)
        for lineno, row in enumerate(reader, start=2):
            where = f"{path}:{lineno}"
            rel = (row.get("file") or "").strip()
            if rel in first_line:
                raise DatasetError(f"{where}: {rel!r} is listed twice (first on line {first_line[rel]}); keep one "
                                   f"row per photo")
            first_line[rel] = lineno
            views, favs = _count(row, "views", where), _count(row, "favs", where)
            labels.append((aesthetic_s(views, favs), popularity(views, _days(row, columns, where))))
            ids.append(rel)
            paths.append(resolve(rel, where))
            owners.append((row.get("owner") or "").strip())
            split = (row.get("split") or "").strip()
            if "split" in columns and split not in SPLITS:
                raise DatasetError(f"{where}: split must be one of {', '.join(SPLITS)}, got {split!r}")
            splits.append(split)
    if not ids:
        raise DatasetError(f"{path}: no photos listed")
    values = np.asarray(labels, np.float64)
    notes = {"formulas": FORMULAS, "excluded_from_aesthetic_s": int(np.isnan(values[:, 0]).sum())}
    if "split" not in columns:
        splits, notes["split"] = _split(len(ids), owners if "owner" in columns else None)
    s = values[:, 0]
    s_high = float(max(1.0, np.nanmax(s))) if np.isfinite(s).any() else 1.0
    pop = values[:, 1]
    pop_scale = (float(math.floor(pop.min())), float(max(math.ceil(pop.max()), math.floor(pop.min()) + 1)))
    return Manifest("flickr", root, ids, paths, s.astype(np.float32), splits, scale=(0.0, s_high),
                    label_source=[path], notes=notes, attributes=values.astype(np.float32),
                    attribute_names=list(LABELS),
                    attribute_scales=[(0.0, s_high), pop_scale])


register_dataset(DatasetSpec("flickr", load_flickr, "Flickr photos + metadata CSV (views, favs, age): Schwarz's S "
                             "and photo-critic's popularity"))
