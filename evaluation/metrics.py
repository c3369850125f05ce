"""Agreement between predicted and true scores (design.md section 9).

SRCC uses average ranks for ties; PLCC is Pearson on raw predictions (no logistic fit); accuracy
splits at a threshold with low = `<= threshold` for both truth and prediction.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

AVA_SCALE = (1.0, 10.0)


class MetricError(ValueError):
    """Inputs for which a metric is undefined (e.g. constant predictions for a correlation)."""


def _pair(y_true, y_pred) -> Tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise MetricError(f"{t.size} true scores but {p.size} predictions")
    if t.size < 2:
        raise MetricError(f"need at least 2 scores, got {t.size}")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise MetricError("scores must be finite (found NaN or inf)")
    return t, p


def srcc(y_true, y_pred) -> float:
    from scipy.stats import rankdata

    t, p = _pair(y_true, y_pred)
    return plcc(rankdata(t), rankdata(p))


def plcc(y_true, y_pred) -> float:
    t, p = _pair(y_true, y_pred)
    if np.ptp(t) == 0 or np.ptp(p) == 0:
        raise MetricError("correlation is undefined when the scores or the predictions are all equal")
    t, p = t - t.mean(), p - p.mean()
    return float(np.clip((t * p).sum() / np.sqrt((t * t).sum() * (p * p).sum()), -1.0, 1.0))


def threshold_for_scale(scale: Tuple[float, float]) -> float:
    """5 on AVA's 1..10 scale (the literature's convention); the midpoint of any other scale."""
    lo, hi = float(scale[0]), float(scale[1])
    return 5.0 if (lo, hi) == AVA_SCALE else (lo + hi) / 2.0


def accuracy(y_true, y_pred, threshold: float) -> float:
    t, p = _pair(y_true, y_pred)
    return float(((t <= threshold) == (p <= threshold)).mean())


def score_metrics(y_true, y_pred, threshold: float) -> dict:
    t, p = _pair(y_true, y_pred)
    out = {"n": int(t.size), "threshold": threshold,
           "high_fraction": float((t > threshold).mean()),
           "accuracy": accuracy(t, p, threshold),
           "mse": float(np.mean((t - p) ** 2)), "mae": float(np.mean(np.abs(t - p)))}
    out["rmse"] = float(np.sqrt(out["mse"]))
    for name, fn in (("srcc", srcc), ("plcc", plcc)):
        try:
            out[name] = fn(t, p)
        except MetricError as exc:
            out[name] = None
            out[f"{name}_error"] = str(exc)
    return out


def mos_from_distribution(dist: np.ndarray, scores: Optional[np.ndarray] = None) -> np.ndarray:
    """l1-normalised K-bin distributions → mean score sum_i i * p_i (bins scored 1..K)."""
    d = np.clip(np.asarray(dist, dtype=np.float64), 0.0, None)
    total = d.sum(axis=-1, keepdims=True)
    k = d.shape[-1]
    d = np.where(total > 0, d / np.where(total > 0, total, 1.0), 1.0 / k)
    scores = np.arange(1, k + 1, dtype=np.float64) if scores is None else scores
    return d @ scores
