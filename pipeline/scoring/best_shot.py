"""`iaa best-shot`: groups near-duplicate shots (bursts, re-takes) and picks the best of each by score.

Photos are ordered by capture time (EXIF DateTimeOriginal, with sub-seconds) or, without it, by file
name (cameras number shots in order), and each is linked to the one before it when they look alike
(the Hamming distance of their 64-bit perceptual hashes, `imagehash.phash`, is at most
`max_distance`) and, when both carry a capture time, were taken at most `time_gap` seconds apart.
Linked runs are the groups; the pick of a group is its highest-scoring photo under the run.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from pipeline.scoring.sheet import model_card, page, photo_card

MAX_DISTANCE = 14  # of 64 bits; see the README for the measurement behind it
TIME_GAP = 10.0  # seconds
EXIF_IFD, DATETIME_ORIGINAL, SUBSEC_ORIGINAL, DATETIME = 0x8769, 36867, 37521, 306


def capture_time(path: str) -> Optional[float]:
    """Seconds since the epoch of the EXIF capture time (DateTimeOriginal, else DateTime), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            exif = img.getexif()
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None  # a photo beyond Pillow's bomb limit (179 MP) still scores; it only has no capture time
    sub = exif.get_ifd(EXIF_IFD)
    text = sub.get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    if not text:
        return None
    try:
        stamp = datetime.strptime(str(text).strip("\x00 "), "%Y:%m:%d %H:%M:%S").timestamp()
    except ValueError:
        return None
    frac = str(sub.get(SUBSEC_ORIGINAL) or "").strip("\x00 ")
    return stamp + (float(f"0.{frac}") if frac.isdigit() else 0.0)


def perceptual_hash(path: str):
    """The 64-bit pHash of the photo as displayed (EXIF orientation applied), or None when unreadable.

    A photo beyond Pillow's bomb limit (179 MP) is hashed from its decoding, shrunk, as scoring decodes it."""
    import imagehash
    from PIL import Image, ImageOps, UnidentifiedImageError

    from features.images import ImageError, decode_image

    try:
        with Image.open(path) as img:
            return imagehash.phash(ImageOps.exif_transpose(img))
    except Image.DecompressionBombError:
        try:
            return imagehash.phash(Image.fromarray(decode_image(path, max_side=1024)))
        except ImageError:
            return None
    except (OSError, UnidentifiedImageError, ValueError):
        return None


@dataclass
class Shot:
    """One photo of a best-shot folder: its path, score, capture time (EXIF, if any) and perceptual hash."""
    path: str
    score: float
    time: Optional[float]
    phash: object
    distance: Optional[int] = None  # to the previous shot in order
    group: int = -1


def group_shots(shots: List[Shot], max_distance: int = MAX_DISTANCE, time_gap: float = TIME_GAP) -> List[Shot]:
    """Orders the shots (capture time, else file name), links alike neighbours, numbers the groups."""
    ordered = sorted(shots, key=lambda s: (s.time is None, s.time or 0.0, s.path))
    group = -1
    for i, shot in enumerate(ordered):
        prev = ordered[i - 1] if i else None
        linked = False
        if prev is not None and shot.phash is not None and prev.phash is not None:
            shot.distance = int(shot.phash - prev.phash)
            close_in_time = shot.time is None or prev.time is None or abs(shot.time - prev.time) <= time_gap
            linked = shot.distance <= max_distance and close_in_time
        group = group if linked else group + 1
        shot.group = group
    return ordered


def picks(shots: Sequence[Shot]) -> dict:
    """{group: index in `shots` of its highest score}."""
    best: dict = {}
    for i, s in enumerate(shots):
        if s.group not in best or s.score > shots[best[s.group]].score:
            best[s.group] = i
    return best


def write_groups(shots: List[Shot], out: Path, config: dict, metrics: Optional[dict], max_groups: int) -> None:
    """groups.csv (every photo) and best_shot.html (groups of two or more, each with its pick framed)."""
    best = picks(shots)
    chosen = set(best.values())
    with open(out / "groups.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["group", "path", "score", "pick", "capture_time", "phash_distance_to_previous"])
        for i, s in enumerate(shots):
            when = datetime.fromtimestamp(s.time).isoformat(timespec="milliseconds") if s.time is not None else ""
            w.writerow([s.group, s.path, f"{s.score:.6g}", int(i in chosen), when,
                        "" if s.distance is None else s.distance])
    sizes = np.bincount([s.group for s in shots])
    multi = [g for g in range(len(sizes)) if sizes[g] > 1]
    sections = []
    for g in multi[:max_groups]:
        members = [i for i, s in enumerate(shots) if s.group == g]
        ranked = sorted(members, key=lambda i: -shots[i].score)
        cards = "".join(photo_card(shots[i].path, shots[i].score, r + 1, pick=i in chosen,
                                   note="best of the group" if i in chosen else "")
                        for r, i in enumerate(ranked))
        sections.append(f"<h2>group {g}: {len(members)} shots</h2><div class=\"grid\">{cards}</div>")
    singles = int((sizes == 1).sum())
    tail = f"<p>{singles} photos have no near-duplicate (see groups.csv)." + (
        f" {len(multi) - max_groups} more groups are in groups.csv.</p>" if len(multi) > max_groups else "</p>")
    title = f"{len(multi)} groups of near-duplicate shots among {len(shots)} photos"
    (out / "best_shot.html").write_text(page(title, model_card(config, metrics), "".join(sections) + tail))


def run_best_shot(run_dir: str, inputs: Sequence[str], out: str, *, max_distance: int = MAX_DISTANCE,
                  time_gap: float = TIME_GAP, chunk: int = 16, memory_gb: Optional[float] = None,
                  max_groups: int = 100, log=print) -> Tuple[List[Shot], List[dict]]:
    """Scores the photos with a run, groups near-duplicates and writes groups.csv and best_shot.html.

    Returns:
        (the shots in order with their groups, the photos that could not be scored with the reason).
    """
    from pipeline.scoring.predictor import Predictor
    from pipeline.scoring.score import collect_photos, resolve_run_dir, score_all

    run_dir, note = resolve_run_dir(run_dir)
    if note:
        log(note)
    predictor = Predictor.from_run(run_dir, memory_gb=memory_gb)
    for line in predictor.notes:
        log(f"note: {line}")
    photos, _ = collect_photos(inputs)
    scored, failures = score_all(predictor, photos, chunk)
    shots = group_shots([Shot(r["path"], r["score"], capture_time(r["path"]), perceptual_hash(r["path"]))
                         for r in scored], max_distance, time_gap)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if shots:
        write_groups(shots, out_dir, predictor.run.config, predictor.run.read_metrics(), max_groups)
    return shots, failures
