"""Agreement of individual raters and of the model with the mean score (Kong et al. 2016, section 5.4, Table 6).

Kong et al. compute each rater's Spearman ρ between their own ratings and the photos' mean score (the rater
not left out of the mean), and summarise it over the raters who rated more than 0, 100 and 200 photos, beside
the model's ρ. Here, on a run's test photos: for every rater with at least `MIN_PHOTOS` rated test photos (and
not all one score), the rater's ρ and the model's ρ on the same photos; per bucket of raters (by how many
photos they rated in the whole store) the mean of both. The run directory keeps the test ratings in
`ratings_test.csv` (this module owns that file), so `iaa evaluate` needs no store.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from evaluation.metrics import MetricError, srcc

RATINGS_FILE = "ratings_test.csv"
BUCKETS = (0, 100, 200)  # raters who rated more than this many photos (Table 6's rows)
MIN_PHOTOS = 3


def write_ratings(path: Path, ids: Sequence[str], raters: Sequence[str], scores: Sequence[float],
                  rated_in_store: Dict[str, int]) -> None:
    """The test split's individual ratings: photo id, rater, their score, and how many photos the rater rated."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "rater", "score", "rater_photos"])
        for image, rater, score in zip(ids, raters, scores):
            w.writerow([image, rater, f"{float(score):.6g}", rated_in_store[rater]])


def rater_agreement(path: Path, predictions: dict) -> Optional[dict]:
    """Per bucket of raters: how many, their mean ρ with the mean score, the model's mean ρ on their photos."""
    if not Path(path).is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    where = {image: i for i, image in enumerate(predictions["id"])}
    by_rater: Dict[str, List[dict]] = {}
    for row in rows:
        if row["id"] in where:
            by_rater.setdefault(row["rater"], []).append(row)
    per_rater = []
    for rater, rated in by_rater.items():
        index = np.array([where[r["id"]] for r in rated])
        if len(index) < MIN_PHOTOS:
            continue
        try:
            human = srcc([float(r["score"]) for r in rated], predictions["true"][index])
            model = srcc(predictions["pred"][index], predictions["true"][index])
        except MetricError:
            continue
        per_rater.append((int(rated[0]["rater_photos"]), human, model))
    return {"buckets": [_bucket(per_rater, more_than) for more_than in BUCKETS], "min_test_photos": MIN_PHOTOS}


def _bucket(per_rater: list, more_than: int) -> dict:
    chosen = [(h, m) for n, h, m in per_rater if n > more_than]
    return {"rated_more_than": more_than, "raters": len(chosen),
            "human_srcc": float(np.mean([h for h, _ in chosen])) if chosen else None,
            "model_srcc": float(np.mean([m for _, m in chosen])) if chosen else None}


def markdown_lines(agreement: Optional[dict]) -> List[str]:
    """Table 6 of the report (nothing without ratings)."""
    if not agreement:
        return []
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    return ["", f"Raters against the mean score on the test photos (Kong et al. 2016, Table 6; raters with at least "
                f"{agreement['min_test_photos']} rated test photos):", "",
            "| raters who rated more than | raters | their mean ρ with the mean score | the model's mean ρ on their photos |",
            "|---|---|---|---|"] + [f"| {b['rated_more_than']} photos | {b['raters']} | {fmt(b['human_srcc'])} | "
                                    f"{fmt(b['model_srcc'])} |" for b in agreement["buckets"]]
