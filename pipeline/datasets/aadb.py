"""AADB (Kong et al. 2016): 10,000 Flickr photos, an overall score in [0, 1] and 11 attributes in [-1, 1].

`--data-dir` holds one of:
- the official release: `imgListFiles_label/imgList{Train,Validation,TestNew}Regression_<name>.txt`
  (`<file> <value>` per line; `<name>` is `score` or an attribute), official train / validation / test;
  the older `TestRegression` list is not used (the paper reports on TestNew).
- the single CSV `AADB.csv` (`dis_img_path,dis_type,score,BalacingElements,...,VividColor`): no split,
  so a seeded split with the official proportions (8,500 / 500 / the rest) is made and recorded. Rows that
  repeat a file name with identical labels (127 in the public copy) are kept once; repeats that disagree
  are refused, naming both lines.
Photos are looked up under `datasetImages_originalSize/`, `images/`, the CSV's listed path, then the
folder itself. When `AADB_AllinAll.csv` (the raw Mechanical Turk export) is there too, its individual
ratings become the store's rater data: per HIT a `WorkerId` and ten `Input.image_url<k>` /
`Answer.overallScore<k>` pairs (1-5); image URLs map to file names as
`<farm>_<server>_<photo file>` (the layout public AADB loaders use).

Reference: Kong et al., ECCV 2016, section 3 (the dataset) and section 5 (splits).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from pipeline.datasets.base import DatasetError, DatasetSpec, Manifest, Ratings, register_dataset, seeded_split

ATTRIBUTES = ("BalacingElements", "ColorHarmony", "Content", "DoF", "Light", "MotionBlur", "Object",
              "Repetition", "RuleOfThirds", "Symmetry", "VividColor")  # the release's own spelling
LIST_DIR = "imgListFiles_label"
OFFICIAL_SPLITS = (("Train", "train"), ("Validation", "val"), ("TestNew", "test"))
CSV_FILE = "AADB.csv"
RAW_FILE = "AADB_AllinAll.csv"
IMAGE_DIRS = ("datasetImages_originalSize", "images", ".")
CSV_SPLIT = ((8500, 500, 958), ("train", "val", "test"))  # official sizes; 9,958 rows in the public CSV
SPLIT_SEED = 0
URL_PHOTO = re.compile(r"^https?://(farm\d+)\.[^/]+/(\d+)/([^/?#]+)")


def _image_path(root: Path, name: str, listed: Optional[str] = None) -> Path:
    candidates = [root / d / name for d in IMAGE_DIRS] + ([root / listed] if listed else [])
    return next((p for p in candidates if p.is_file()), candidates[0])


def _read_list(path: Path) -> List[Tuple[str, float]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise DatasetError(f"{path}:{lineno}: expected `<file> <value>`; received {line.strip()!r}")
            try:
                rows.append((parts[0], float(parts[1])))
            except ValueError:
                raise DatasetError(f"{path}:{lineno}: value {parts[1]!r} is not a number") from None
    return rows


def _official(root: Path) -> Manifest:
    lists = root / LIST_DIR
    ids, split, mos, sources = [], [], [], []
    attrs: Dict[str, Dict[str, float]] = {a: {} for a in ATTRIBUTES}
    missing = []
    for tag, name in OFFICIAL_SPLITS:
        score_file = lists / f"imgList{tag}Regression_score.txt"
        if not score_file.is_file():
            raise DatasetError(f"aadb: {score_file} is missing (the official imgListFiles_label/ layout needs "
                               f"the score list of each split: Train, Validation, TestNew)")
        sources.append(score_file)
        for file, value in _read_list(score_file):
            ids.append(file)
            split.append(name)
            mos.append(value)
        for a in ATTRIBUTES:
            f = lists / f"imgList{tag}Regression_{a}.txt"
            if f.is_file():
                sources.append(f)
                attrs[a].update(_read_list(f))
            else:
                missing.append(f.name)
    if len(set(ids)) != len(ids):
        raise DatasetError(f"aadb: {lists} lists a file in more than one split")
    table = np.array([[attrs[a].get(i, np.nan) for a in ATTRIBUTES] for i in ids], np.float32)
    notes = {"layout": "official imgListFiles_label", "split": "official Train / Validation / TestNew"}
    if missing:
        notes["missing_attribute_lists"] = missing
    return Manifest("aadb", root, ids, [_image_path(root, i) for i in ids], np.asarray(mos, np.float32), split,
                    scale=(0.0, 1.0), label_source=sources, notes=notes, attributes=table,
                    attribute_names=list(ATTRIBUTES))


def _csv(root: Path) -> Manifest:
    path = root / CSV_FILE
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        need = ["dis_img_path", "score", *ATTRIBUTES]
        absent = [c for c in need if c not in (reader.fieldnames or [])]
        if absent:
            raise DatasetError(f"{path}:1: columns {absent} are missing; expected {need}")
        seen: Dict[str, Tuple[int, tuple]] = {}
        ids, listed, labels, dropped = [], [], [], 0
        for lineno, row in enumerate(reader, start=2):
            try:
                values = tuple(float(row[c]) for c in need[1:])
            except ValueError:
                raise DatasetError(f"{path}:{lineno}: score and attributes must be numbers") from None
            name = Path(row["dis_img_path"]).name
            if name in seen:
                if seen[name][1] != values:
                    raise DatasetError(f"{path}:{lineno}: {name} repeats line {seen[name][0]} with other labels; "
                                       f"remove one of them")
                dropped += 1
                continue
            seen[name] = (lineno, values)
            ids.append(name)
            listed.append(row["dis_img_path"])
            labels.append(values)
    if not ids:
        raise DatasetError(f"{path}: no rows")
    values = np.asarray(labels, np.float32)
    sizes, names = CSV_SPLIT
    split = seeded_split(len(ids), tuple(s / sum(sizes) for s in sizes), names, SPLIT_SEED)
    notes = {"layout": CSV_FILE, "duplicates_dropped": dropped,
             "split": f"seeded {'/'.join(map(str, sizes))} proportions (the CSV has no split), seed {SPLIT_SEED}"}
    return Manifest("aadb", root, ids, [_image_path(root, i, at) for i, at in zip(ids, listed)], values[:, 0],
                    split, scale=(0.0, 1.0), label_source=[path], notes=notes, attributes=values[:, 1:],
                    attribute_names=list(ATTRIBUTES))


def photo_name(url: str) -> Optional[str]:
    """The release's file name of a Flickr static URL: `<farm>_<server>_<photo file>`."""
    m = URL_PHOTO.match(url.strip())
    return f"{m.group(1)}_{m.group(2)}_{m.group(3)}" if m else None


def read_raw_ratings(path: Path, ids: List[str]) -> Ratings:
    """Individual overall scores (1-5) with worker ids from the raw AMT export, for images in `ids`."""
    index = {name: i for i, name in enumerate(ids)}
    image, rater, score = [], [], []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        pairs = [(c, c.replace("Input.image_url", "Answer.overallScore")) for c in columns
                 if c.startswith("Input.image_url")]
        if "WorkerId" not in columns or not pairs or any(s not in columns for _, s in pairs):
            raise DatasetError(f"{path}:1: expected WorkerId and Input.image_url<k> / Answer.overallScore<k> "
                               f"columns (the Mechanical Turk export); found {columns[:8]}...")
        for lineno, row in enumerate(reader, start=2):
            for url_col, score_col in pairs:
                name = photo_name(row.get(url_col) or "")
                if name is None or name not in index or not (row.get(score_col) or "").strip():
                    continue
                try:
                    score.append(float(row[score_col]))
                except ValueError:
                    raise DatasetError(f"{path}:{lineno}: {score_col} {row[score_col]!r} is not a number") from None
                image.append(index[name])
                rater.append(row["WorkerId"].strip())
    return Ratings(np.asarray(image, np.int32), rater, np.asarray(score, np.float32), scale=(1.0, 5.0))


def load_aadb(root: Path) -> Manifest:
    """AADB's manifest from `root`: the official release's lists (`imgListFiles_label/`) or its single CSV, with the
    11 attribute scores and, where `AADB_AllinAll.csv` is there, each rater's score.

    Raises:
        DatasetError: neither layout under `root`, or files that cannot be read (the message names the file).
    """
    if (root / LIST_DIR).is_dir():
        manifest = _official(root)
    elif (root / CSV_FILE).is_file():
        manifest = _csv(root)
    else:
        raise DatasetError(f"aadb: {root} has neither {LIST_DIR}/ (the official release) nor {CSV_FILE}; "
                           f"give the folder that holds one of them with --data-dir")
    raw = root / RAW_FILE
    if raw.is_file():
        manifest.ratings = read_raw_ratings(raw, manifest.ids)
        manifest.label_source.append(raw)
        manifest.notes["ratings"] = f"{len(manifest.ratings)} individual ratings from {RAW_FILE}"
    return manifest


register_dataset(DatasetSpec("aadb", load_aadb, "AADB: imgListFiles_label/ (official splits) or AADB.csv, "
                                                "11 attributes, raters from AADB_AllinAll.csv"))
