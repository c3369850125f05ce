"""`iaa score`: a trained run's scores for photos (files and folders), as CSV, a contact sheet and a summary.

Photos are streamed in chunks (memory stays bounded for any number of them), with a progress bar (rate,
ETA); a file that cannot be scored is listed with its reason and never stops the run.
"""
from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from features.core.errors import UsageError
from features.images import IMAGE_SUFFIXES
from pipeline.scoring.predictor import Predictor
from pipeline.scoring.sheet import contact_sheet, model_card

SCORES_CSV, SCORES_HTML, EMBEDDINGS = "scores.csv", "scores.html", "embeddings.npz"


def collect_photos(inputs: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Files as given, and every file with an image suffix under the folders (recursive, sorted).

    Returns:
        (photos to score, files skipped in folders because their suffix is not an image's).
    Raises:
        UsageError: nothing to score.
    """
    photos, skipped = [], []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file()):
                (photos if f.suffix.lower() in IMAGE_SUFFIXES else skipped).append(str(f))
        else:
            photos.append(str(path))  # decoding decides; a missing file is listed as failed
    if not photos:
        raise UsageError(f"no photos to score in {', '.join(inputs)} (image files end in "
                         f"{', '.join(IMAGE_SUFFIXES)}); give image files or folders that hold some")
    return photos, skipped


def resolve_run_dir(path: str) -> Tuple[str, Optional[str]]:
    """A run directory, a model pack's (`iaa pack`: unpacked once, every member checked), or an `iaa ablate`
    directory's best run (top of its leaderboard by validation SRCC: seed 0, or the seed ensemble when that
    row is one). Returns (run directory, a note saying which run was picked, or None)."""
    from pipeline.scoring.pack import is_pack, open_pack

    if is_pack(path):
        return str(open_pack(path)), None
    root = Path(path)
    board = root / "leaderboard.csv"
    if (root / "config.json").is_file() or not board.is_file():
        return path, None
    with open(board, newline="") as f:
        rows = list(csv.DictReader(f))
    from pipeline.training.ablate import row_run_name

    for row in rows:  # best first
        run = root / row_run_name(row["head"])
        if (run / "config.json").is_file():
            val = f"validation SRCC {float(row['val_srcc_mean']):.3f}" if row["val_srcc_mean"] else "no validation SRCC"
            return str(run), f"{path} is an ablation: using its best head by validation SRCC, {run.name} ({val})"
    raise UsageError(f"{board} names no run directory with seed 0 under {root}; give a run directory")


@dataclass
class ScoreResult:
    """What `iaa score` did: scored rows best first, failures, skipped non-image files, timing."""

    out: Path
    rows: List[dict]
    failures: List[dict]
    skipped: List[str]
    seconds: float
    warnings: List[str] = field(default_factory=list)

    @property
    def photos_per_second(self) -> float:
        n = len(self.rows) + len(self.failures)
        return n / self.seconds if self.seconds > 0 else float("nan")


def progress_bar(total: Optional[int], desc: str = "score", unit: str = "photo"):
    """A tqdm bar on stderr (rate, and ETA when the total is known)."""
    from tqdm import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True, mininterval=1.0)


def score_all(predictor: Predictor, photos: Sequence[str], chunk: int) -> Tuple[List[dict], List[dict]]:
    """Scores photos in chunks with a progress bar.

    Returns:
        ({"path", "score", "spread", "dist", "embedding"} per scored photo in input order,
         {"path", "reason"} per failure).
    """
    scored, failures = [], []
    bar = progress_bar(len(photos))
    try:
        for part in predictor.iter_scores(photos, chunk, on_done=bar.update):
            for i, p in enumerate(part.paths):
                if part.ok[i]:
                    scored.append({"path": p, "score": float(part.score[i]), "spread": float(part.spread[i]),
                                   "dist": None if part.dist is None else part.dist[i],
                                   "embedding": None if part.embedding is None else part.embedding[i]})
                else:
                    failures.append({"path": p, "reason": part.reasons[i]})
    finally:
        bar.close()
    return scored, failures


def rank_rows(paths: Sequence[str], score: np.ndarray, spread: np.ndarray, dist) -> List[dict]:
    """Rows best first with rank 1 for the highest score (ties keep input order)."""
    order = np.argsort(-score, kind="stable")
    return [{"path": paths[i], "score": float(score[i]), "rank": r + 1, "spread": float(spread[i]),
             "dist": None if dist is None else dist[i]} for r, i in enumerate(order)]


def write_scores_csv(path: Path, rows: List[dict], failures: List[dict]) -> None:
    """path, score, rank, spread, p1..pK (distribution heads), status, reason."""
    k = next((len(r["dist"]) for r in rows if r["dist"] is not None), 0)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "score", "rank", "spread"] + [f"p{i + 1}" for i in range(k)] + ["status", "reason"])
        for r in rows:
            dist = [f"{v:.6g}" for v in r["dist"]] if k else []
            w.writerow([r["path"], f"{r['score']:.6g}", r["rank"], f"{r['spread']:.6g}"] + dist + ["ok", ""])
        for r in failures:
            w.writerow([r["path"], "", "", ""] + [""] * k + ["failed", r["reason"]])


def run_score(run_dir: str, inputs: Sequence[str], out: str, *, weights: Optional[str] = None,
              store: Optional[str] = None, chunk: int = 16, sheet_size: int = 200, memory_gb: Optional[float] = None,
              embeddings: bool = False, log: Callable[[str], None] = print) -> ScoreResult:
    """Scores photos with a trained run and writes scores.csv and scores.html into `out`.

    Args:
        run_dir: the run directory (its store is not needed), or an ablation directory (its best run).
        inputs: image files and/or folders (searched recursively).
        out: output directory.
        weights: the backbone weights file's new place, if it moved (sha256 checked).
        store: a feature cache directory (`features.cache`): photos seen before skip the backbone.
        chunk: photos per extraction batch (memory bound).
        sheet_size: most photos shown on the contact sheet (the best and worst halves beyond it).
        memory_gb: memory budget of one forward pass (`features.memory`).
    Raises:
        RunDirError, PredictorError, WeightsError, CacheError, UsageError: before any work.
    """
    run_dir, note = resolve_run_dir(run_dir)
    if note:
        log(note)
    predictor = Predictor.from_run(run_dir, weights=weights, all_kinds=store is not None, memory_gb=memory_gb)
    if embeddings and not predictor.head.has_embedding:
        raise UsageError(f"--embeddings needs a run of an embedding head (triplet); {run_dir} is a "
                         f"{predictor.head.name} run, which scores photos without an embedding")
    if store:
        predictor.use_cache(store)
    photos, skipped = collect_photos(inputs)
    warnings = list(predictor.notes)
    if predictor.job.max_side is None and not predictor.job.resize:
        warnings.append("the run's features were extracted at full resolution, so photos are scored at full "
                        "resolution too: a photo shrunk beforehand gets a different score")
    for w in warnings:
        log(f"note: {w}")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    scored, failures = score_all(predictor, photos, chunk)
    seconds = time.perf_counter() - t0
    dist = np.array([r["dist"] for r in scored]) if scored and scored[0]["dist"] is not None else None
    rows = rank_rows([r["path"] for r in scored], np.array([r["score"] for r in scored], np.float64),
                     np.array([r["spread"] for r in scored], np.float64), dist)
    write_scores_csv(out_dir / SCORES_CSV, rows, failures)
    if embeddings:
        by_path = {r["path"]: r["embedding"] for r in scored}
        np.savez(out_dir / EMBEDDINGS, path=np.array([r["path"] for r in rows]),
                 score=np.array([r["score"] for r in rows], np.float32),
                 embedding=np.stack([by_path[r["path"]] for r in rows]) if rows else np.zeros((0, 0), np.float32))
    card = model_card(predictor.run.config, predictor.run.read_metrics())
    title = f"{len(rows)} photos scored by {predictor.run.path.name}"
    (out_dir / SCORES_HTML).write_text(contact_sheet(title, card, rows, failures, sheet_size))
    return ScoreResult(out_dir, rows, failures, skipped, seconds, warnings)
