"""AVA (Murray et al. 2012): 255k photos from dpchallenge.com with 10-bin vote histograms.

Expected layout (images may not be redistributed; get them from an AVA mirror)::

    data/ava/AVA.txt                                  15 columns per line
    data/ava/images/<id>.jpg
    data/ava/aesthetics_image_lists/generic_test.jpgl official test ids

MOS is the mean of the votes for scores 1..10; the official generic test list is the test set and
the rest is split 95 % train / 5 % validation with a recorded seed (design.md section 8).
"""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np

from pipeline.datasets.ava_side import read_styles, tags_and_challenges
from pipeline.datasets.base import DatasetError, DatasetSpec, Manifest, register_dataset, seeded_split

SPLIT_SEED = 0
VAL_FRACTION = 0.05
DOWNLOAD_HELP = (
    "Get AVA (Murray et al., CVPR 2012) from a mirror (the images may not be redistributed), then "
    "put the label file at {root}/AVA.txt, the photos at {root}/images/<id>.jpg and the official "
    "lists at {root}/aesthetics_image_lists/ (generic_test.jpgl is needed)."
)


def parse_ava_txt(path: Path) -> Tuple[list, np.ndarray]:
    """Reads AVA.txt → (ids, votes (N, 10) int32). Errors name the line."""
    ids, votes, _ = parse_ava_columns(path)
    return ids, votes


def parse_ava_columns(path: Path) -> Tuple[list, np.ndarray, np.ndarray]:
    """Reads AVA.txt → (ids, votes (N, 10) int32, side (N, 3) int32: tag 1, tag 2, challenge id; 0 = none)."""
    ids, votes, side = [], [], []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 15:
                raise DatasetError(
                    f"{path}:{lineno}: expected 15 columns (index, image id, 10 vote counts, 2 tags, "
                    f"challenge id), got {len(fields)}: {line.strip()[:80]!r}"
                )
            try:
                counts = [int(v) for v in fields[2:12]]
                int(fields[1])
                side.append([int(v) for v in fields[12:15]])
            except ValueError:
                raise DatasetError(
                    f"{path}:{lineno}: image id, vote counts, tags and challenge must be integers: "
                    f"{line.strip()[:80]!r}"
                ) from None
            if min(counts) < 0:
                raise DatasetError(f"{path}:{lineno}: negative vote count")
            ids.append(fields[1])
            votes.append(counts)
    if not ids:
        raise DatasetError(f"{path}: no label lines")
    if len(set(ids)) != len(ids):
        seen, dup = set(), None
        for i in ids:
            if i in seen:
                dup = i
                break
            seen.add(i)
        raise DatasetError(f"{path}: image id {dup} appears more than once")
    return ids, np.asarray(votes, dtype=np.int32), np.asarray(side, dtype=np.int32)


def read_id_list(path: Path) -> set:
    """The image ids of an AVA list file (one id per line; blank lines skipped)."""
    with open(path, "r", encoding="utf-8") as f:
        return {line.strip() for line in f if line.strip()}


def mos_from_votes(votes: np.ndarray) -> np.ndarray:
    """Mean score of 10-bin vote counts; NaN for an image without votes."""
    total = votes.sum(axis=1)
    scores = np.arange(1, votes.shape[1] + 1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mos = (votes * scores).sum(axis=1) / total
    return np.where(total > 0, mos, np.nan).astype(np.float32)


def build_ava_manifest(label_file: Path, test_list: Path, image_dir: Path, root: Path) -> Manifest:
    """AVA's manifest: ids and 10-bin votes from `label_file`, the official test list as `test`, a seeded
    split of the rest into train and validation; images without a file under `image_dir` are left out.
    """
    ids, votes, side = parse_ava_columns(label_file)
    test_ids = read_id_list(test_list)
    is_test = np.array([i in test_ids for i in ids])
    rest = np.flatnonzero(~is_test)
    rest_split = seeded_split(len(rest), (1 - VAL_FRACTION, VAL_FRACTION), ("train", "val"), SPLIT_SEED)
    split = np.where(is_test, "test", "").astype(object)
    split[rest] = rest_split
    mos = mos_from_votes(votes)
    no_votes = int(np.isnan(mos).sum())
    styles, named = read_styles(root, ids), tags_and_challenges(root, side)
    return Manifest(
        name="ava",
        root=root,
        ids=ids,
        paths=[image_dir / f"{i}.jpg" for i in ids],
        mos=mos,
        split=[str(s) for s in split],
        hist=votes.astype(np.float32),
        scale=(1.0, 10.0),
        label_source=[label_file, test_list] + named["sources"] + (styles["sources"] if styles else []),
        notes={"split": f"test = {test_list.name}; rest {1 - VAL_FRACTION:.0%} train / "
                        f"{VAL_FRACTION:.0%} val, seed {SPLIT_SEED}",
               "split_seed": SPLIT_SEED, "images_without_votes": no_votes,
               "side_information": "styles as binary attributes (NaN outside the style lists), the challenge as "
                                   "the group, semantic tags as labels/tags (pipeline.datasets.ava_side)"},
        attributes=styles["values"] if styles else None,
        attribute_names=styles["names"] if styles else [],
        groups=named["challenges"],
        tags=named["tags"],
    )


def load_ava(root: Path) -> Manifest:
    """AVA from `root` (`AVA.txt`, `aesthetics_image_lists/`, `images/`).

    Raises:
        DatasetError: a missing label or list file (the message says where to download it).
    """
    label_file = root / "AVA.txt"
    test_list = root / "aesthetics_image_lists" / "generic_test.jpgl"
    for needed in (label_file, test_list):
        if not needed.is_file():
            raise DatasetError(f"AVA: {needed} not found. " + DOWNLOAD_HELP.format(root=root))
    manifest = build_ava_manifest(label_file, test_list, root / "images", root)
    missing = sum(not p.is_file() for p in manifest.paths)
    manifest.notes["missing_images"] = missing
    if missing:
        print(f"AVA: {missing} of {len(manifest)} images are missing from {root / 'images'} "
              f"(mirrors lack a few); they will be recorded as failed ('file not found').")
    return manifest


register_dataset(DatasetSpec("ava", load_ava, "AVA: AVA.txt votes, official generic_test.jpgl test list"))
