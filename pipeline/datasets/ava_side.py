"""AVA's side information: photographic styles, semantic tags and challenges (Murray et al. 2012).

Read when their files are beside AVA.txt (the release has them; each is optional)::

    data/ava/tags.txt                                  "<tag id> <name>", the names of AVA.txt's columns 13-14
    data/ava/challenges.txt                            "<challenge id> <name>", the names of column 15
    data/ava/style_image_lists/styles.txt              "<style id> <name>", the 14 styles
    data/ava/style_image_lists/train.jpgl + train.lab  one id / one style id per line (one style each)
    data/ava/style_image_lists/test.jpgl + test.multilab  one id / 14 0-1 flags per line (several styles)

What the store gets:
- the 14 styles as binary attributes `style_<Name>` (1 / 0 for the ~14,000 photos of the style lists, NaN for
  every other photo): Kong et al. 2016's AVA attributes (section 4.5, learnt with a softmax loss:
  `RegRankLoss`'s binary attributes);
- the challenge of each photo as its group (`labels/group`, e.g. `1396 100_Meters`): photos of one challenge
  share a theme and a voting crowd, so reports give the SRCC within challenges beside the pooled one;
- the one or two semantic tags of each photo as `labels/tags` (`Landscape;Nature`; empty without tags): the
  content categories Kong et al. train their content branch on where AVA has them (section 5.1) and APM's
  semantic labels (section 3.3).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from pipeline.datasets.base import DatasetError


def read_names(path: Path) -> Dict[int, str]:
    """`<id> <name>` lines → {id: name}. Errors name the line."""
    names = {}
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            key, _, name = line.strip().partition(" ")
            if not key.isdigit() or not name.strip():
                raise DatasetError(f"{path}:{lineno}: expected '<id> <name>', got {line.strip()[:80]!r}")
            names[int(key)] = name.strip()
    return names


def _lines(path: Path) -> List[str]:
    with open(path, "r", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def read_styles(root: Path, ids: List[str]) -> Optional[dict]:
    """The 14 styles as (N, 14) 0/1 attributes (NaN outside the style lists), or None without the lists."""
    folder = root / "style_image_lists"
    if not (folder / "styles.txt").is_file():
        return None
    names = read_names(folder / "styles.txt")
    order = sorted(names)
    where = {image: i for i, image in enumerate(ids)}
    values = np.full((len(ids), len(order)), np.nan, np.float32)
    for list_file, label_file, multi in (("train.jpgl", "train.lab", False), ("test.jpgl", "test.multilab", True)):
        if not (folder / list_file).is_file():
            continue
        photos, labels = _lines(folder / list_file), _lines(folder / label_file)
        if len(photos) != len(labels):
            raise DatasetError(f"{folder / label_file}: {len(labels)} lines for the {len(photos)} photos of "
                               f"{folder / list_file}; they must pair line by line")
        for lineno, (photo, label) in enumerate(zip(photos, labels), start=1):
            row = _style_row(label, multi, order, folder / label_file, lineno)
            if photo in where:
                values[where[photo]] = row
    return {"names": [f"style_{names[k]}" for k in order], "values": values,
            "sources": [folder / "styles.txt"] + [folder / f for f in ("train.lab", "test.multilab")
                                                  if (folder / f).is_file()]}


def _style_row(label: str, multi: bool, order: List[int], path: Path, lineno: int) -> np.ndarray:
    try:
        if multi:
            row = np.array([float(v) for v in label.split()], np.float32)
            if row.size != len(order) or not np.isin(row, (0.0, 1.0)).all():
                raise ValueError
            return row
        row = np.zeros(len(order), np.float32)
        row[order.index(int(label))] = 1.0
        return row
    except ValueError:
        expected = f"{len(order)} flags 0/1" if multi else f"one style id of {order[0]}..{order[-1]}"
        raise DatasetError(f"{path}:{lineno}: expected {expected}, got {label[:80]!r}") from None


def tags_and_challenges(root: Path, side: np.ndarray) -> dict:
    """Per photo its tag names ("A;B", "" without) and challenge ("<id> <name>"), from AVA.txt's last three
    columns (`side`: (N, 3) tag 1, tag 2, challenge id) and the name files when present (ids alone without)."""
    tag_names = read_names(root / "tags.txt") if (root / "tags.txt").is_file() else {}
    challenge_names = read_names(root / "challenges.txt") if (root / "challenges.txt").is_file() else {}
    tags = [";".join(tag_names.get(int(t), str(int(t))) for t in row[:2] if t) for row in side]
    groups = [f"{int(c)} {challenge_names[int(c)]}" if int(c) in challenge_names else str(int(c)) for c in side[:, 2]]
    sources = [p for p in (root / "tags.txt", root / "challenges.txt") if p.is_file()]
    return {"tags": tags, "challenges": groups, "sources": sources}
