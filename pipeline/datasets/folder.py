"""A directory of images, with an optional `labels.csv`.

CSV columns: `file` (path relative to the folder, or to its `images/` subfolder), `mos`, optional
`split` (`train`/`val`/`test`), optional vote columns `votes_1` .. `votes_K` (counts or fractions),
optional attribute columns `attr_<name>` (empty: not annotated), and an optional `rater` column: then every
row is one rating (long format: `file`, `rater`, that rater's score in `mos`), a photo's MOS is the mean of
its ratings, and its split, votes and attributes come from its first row. An optional `group` column names
each photo's group (its source, photographer or shoot): benchmarks and `iaa ablate` then report the SRCC
within each group beside the pooled one. Other columns are ignored.
Without `split`: a seeded 80/10/10 split; with a split that has no `val`,
10 % of `train` (seeded) becomes validation. Without a CSV every image is listed, unlabelled.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import List, Optional

import numpy as np

from features.images import IMAGE_SUFFIXES
from pipeline.datasets.base import (
    SPLITS,
    UNLABELLED,
    DatasetError,
    DatasetSpec,
    Manifest,
    Ratings,
    infer_scale,
    register_dataset,
    seeded_split,
)

LABELS_FILE = "labels.csv"
SPLIT_SEED = 0
VOTE_COLUMN = re.compile(r"^votes_(\d+)$")
ATTR_PREFIX = "attr_"


class FolderPaths:
    """Resolves the `file` values of a labels CSV inside `root`: as given, else under `images/`; no absolute
    paths, no '..', no symlink out of the folder. The root is resolved once; a row costs at most two
    existence checks and one resolve (a crawl's CSV has hundreds of thousands of rows)."""

    def __init__(self, root: Path):
        self.root = root
        self.inside = root.resolve()

    def __call__(self, rel: str, where: str) -> Path:
        """The photo's absolute path (a missing photo's too: it is recorded as failed, not refused here).

        Raises:
            DatasetError: an empty value, an absolute path, '..', or a symlink that leaves the folder.
        """
        if not rel:
            raise DatasetError(f"{where}: empty `file` value")
        rel_path = Path(rel)
        if rel_path.is_absolute() or ".." in rel_path.parts:
            raise DatasetError(f"{where}: file {rel!r} must be a path inside the folder (no absolute paths, no '..')")
        for base in (self.inside, self.inside / "images"):
            candidate = base / rel_path
            if candidate.exists():
                resolved = candidate.resolve()
                if self.inside not in resolved.parents:
                    raise DatasetError(f"{where}: file {rel!r} resolves outside the folder {self.root}")
                return resolved
        return self.inside / rel_path


def _parse_float(value: str, where: str, column: str) -> float:
    try:
        out = float(value)
    except ValueError:
        raise DatasetError(f"{where}: column {column!r} must be a number, got {value!r}") from None
    if not math.isfinite(out):
        raise DatasetError(f"{where}: column {column!r} must be finite, got {value!r}")
    return out


def read_labels_csv(root: Path, csv_path: Path) -> Manifest:
    """A manifest from a labels CSV: `file` plus any of `mos`, `split`, `votes_<k>`, `attr_<name>`, `group`,
    `rater` columns (see the module docstring); paths are relative to `root`.

    Raises:
        DatasetError: a bad header or row, naming the file and line.
    """
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        if "file" not in columns:
            raise DatasetError(f"{csv_path}:1: header needs a `file` column; found {columns}")
        vote_cols = sorted((int(m.group(1)), c) for c in columns if (m := VOTE_COLUMN.match(c)))
        if vote_cols and [k for k, _ in vote_cols] != list(range(1, len(vote_cols) + 1)):
            raise DatasetError(f"{csv_path}:1: vote columns must be votes_1..votes_K without gaps")
        attr_cols = [c for c in columns if c.startswith(ATTR_PREFIX) and len(c) > len(ATTR_PREFIX)]
        ids, paths, mos, split, hist, attrs, raters, groups = [], [], [], [], [], [], [], []
        resolve = FolderPaths(root)
        for lineno, row in enumerate(reader, start=2):
            where = f"{csv_path}:{lineno}"
            rel = (row.get("file") or "").strip()
            paths.append(resolve(rel, where))
            ids.append(Path(rel).as_posix())
            value = (row.get("mos") or "").strip() if "mos" in columns else ""
            mos.append(_parse_float(value, where, "mos") if value else np.nan)
            if "split" in columns:
                s = (row.get("split") or "").strip().lower()
                if s not in SPLITS:
                    raise DatasetError(f"{where}: split must be one of {', '.join(SPLITS)}, got {s!r}")
                split.append(s)
            if vote_cols:
                hist.append([_parse_float((row.get(c) or "").strip(), where, c) for _, c in vote_cols])
            attrs.append([_parse_float(v, where, c) if (v := (row.get(c) or "").strip()) else np.nan
                          for c in attr_cols])
            if "group" in columns:
                groups.append((row.get("group") or "").strip())
                if not groups[-1]:
                    raise DatasetError(f"{where}: the `group` column is empty; name every photo's group (or drop "
                                       f"the column)")
            if "rater" in columns:
                raters.append((row.get("rater") or "").strip())
                if not raters[-1] or np.isnan(mos[-1]):
                    raise DatasetError(f"{where}: with a `rater` column every row is one rating: give its "
                                       f"rater and score (mos)")
    if not ids:
        raise DatasetError(f"{csv_path}: no rows")
    notes = {"labels": str(csv_path)}
    ratings = None
    if raters:
        ids, paths, mos, split, hist, attrs, groups, ratings = _one_row_per_photo(ids, paths, mos, split, hist,
                                                                                  attrs, groups, raters)
        notes["ratings"] = f"{len(ratings)} individual ratings (long format); MOS = mean of a photo's ratings"
    if not split:
        split = seeded_split(len(ids), (0.8, 0.1, 0.1), SPLITS, SPLIT_SEED)
        notes["split"] = f"seeded 80/10/10, seed {SPLIT_SEED}"
    elif "val" not in split:
        train = [i for i, s in enumerate(split) if s == "train"]
        for i, s in zip(train, seeded_split(len(train), (0.9, 0.1), ("train", "val"), SPLIT_SEED)):
            split[i] = s
        notes["split"] = f"CSV split; 10% of train moved to val, seed {SPLIT_SEED}"
    else:
        notes["split"] = "from the CSV"
    notes["split_seed"] = SPLIT_SEED
    mos_arr = np.asarray(mos, dtype=np.float32)
    scale = infer_scale(mos_arr)
    notes["scale"] = f"inferred from the scores' maximum: {scale[0]:g}..{scale[1]:g}"
    return Manifest(
        name="folder", root=root, ids=ids, paths=paths, mos=mos_arr, split=split,
        hist=np.asarray(hist, dtype=np.float32) if hist else None, scale=scale,
        label_source=[csv_path], notes=notes, groups=groups or None,
        attributes=np.asarray(attrs, np.float32) if attr_cols else None,
        attribute_names=[c[len(ATTR_PREFIX):] for c in attr_cols],
        ratings=None if ratings is None else Ratings(ratings[0], ratings[1], ratings[2], scale),
    )


def _one_row_per_photo(ids, paths, mos, split, hist, attrs, groups, raters):
    """Long-format rating rows → one row per photo (first appearance order) and the ratings."""
    first = {}
    for i, name in enumerate(ids):
        first.setdefault(name, i)
    keep = list(first.values())
    row_of = {name: k for k, name in enumerate(first)}
    image = np.array([row_of[name] for name in ids], np.int32)
    scores = np.asarray(mos, np.float64)
    means = np.bincount(image, scores) / np.bincount(image)

    def pick(seq):
        return [seq[i] for i in keep] if seq else seq

    return ([ids[i] for i in keep], pick(paths), list(means), pick(split), pick(hist), pick(attrs), pick(groups),
            (image, list(raters), scores.astype(np.float32)))


def list_images(root: Path) -> List[Path]:
    """Every image file under `root` (recursively, by suffix), sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_folder(root: Path, csv_path: Optional[Path] = None) -> Manifest:
    """A folder of photos: with a labels CSV, its manifest; without one, every image unlabelled (for scoring).

    Raises:
        DatasetError: `root` is not a directory, or the CSV is malformed.
    """
    if not root.is_dir():
        raise DatasetError(f"folder dataset: {root} is not a directory (give it with --data-dir)")
    csv_path = csv_path or root / LABELS_FILE
    if csv_path.is_file():
        return read_labels_csv(root, csv_path)
    images = list_images(root)
    if not images:
        raise DatasetError(f"folder dataset: no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    ids = [p.relative_to(root).as_posix() for p in images]
    return Manifest(
        name="folder", root=root, ids=ids, paths=[p.resolve() for p in images],
        mos=np.full(len(ids), np.nan, dtype=np.float32), split=[UNLABELLED] * len(ids),
        notes={"labels": "none (unlabelled folder, for scoring)"},
    )


register_dataset(DatasetSpec("folder", load_folder, "a folder of photos with an optional labels.csv "
                                                    "(file, mos, split, votes_k, attr_<name>, rater)"))
