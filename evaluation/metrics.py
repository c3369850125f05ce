"""Agreement between predicted and true scores (design.md section 9).

SRCC uses average ranks for ties; PLCC is Pearson on raw predictions (no logistic fit); accuracy
splits at a threshold with low = `<= threshold` for both truth and prediction.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from features.core.errors import IAAError

AVA_SCALE = (1.0, 10.0)


class MetricError(IAAError, ValueError):
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
    """Spearman's rank correlation (ties get average ranks).

    Raises:
        MetricError: fewer than 2 scores, non-finite values, or constant scores or predictions.
    """
    from scipy.stats import rankdata

    t, p = _pair(y_true, y_pred)
    return plcc(rankdata(t), rankdata(p))


def plcc(y_true, y_pred) -> float:
    """Pearson's linear correlation on the raw predictions (no logistic fit).

    Raises:
        MetricError: fewer than 2 scores, non-finite values, or constant scores or predictions.
    """
    t, p = _pair(y_true, y_pred)
    if np.ptp(t) == 0 or np.ptp(p) == 0:
        raise MetricError("correlation is undefined when the scores or the predictions are all equal")
    t, p = t - t.mean(), p - p.mean()
    return float(np.clip((t * p).sum() / np.sqrt((t * t).sum() * (p * p).sum()), -1.0, 1.0))


EXACT_PAIR_LIMIT = 20_000  # images; above it pairwise accuracy is estimated on random pairs
SAMPLED_PAIRS = 2_000_000


def within_group_srcc(y_true, y_pred, groups) -> dict:
    """SRCC inside each group (e.g. a photo's source) and their unweighted mean, under "mean".

    Pooled SRCC rewards getting the groups' mean ratings apart (BIQ2021's three sources alone give about
    0.62); within-group SRCC is what a ranking of one collection needs. Groups with fewer than 3 photos, and
    groups where SRCC is undefined (all scores or all predictions equal: a small AVA challenge) are left out.
    """
    groups = np.asarray(groups)
    out = {}
    for g in sorted(set(groups.tolist())):
        inside = groups == g
        if int(inside.sum()) >= 3:
            try:
                out[str(g)] = srcc(np.asarray(y_true)[inside], np.asarray(y_pred)[inside])
            except MetricError:
                continue
    out["mean"] = float(np.mean(list(out.values()))) if out else float("nan")
    return out


def pairwise_accuracy(y_true, y_pred, seed: int = 0) -> float:
    """Fraction of image pairs with different true scores that the predictions order the same way
    (a predicted tie counts half). Every pair up to 20,000 images, else 2,000,000 seeded random pairs.

    Reference: Kong et al. 2016, section 5 (ranking performance).
    """
    t, p = _pair(y_true, y_pred)
    if t.size <= EXACT_PAIR_LIMIT:
        right = untied = 0.0
        for start in range(0, t.size, 1000):  # a block of rows against every column: bounded memory
            dt = np.sign(t[start:start + 1000, None] - t[None, :])
            dp = np.sign(p[start:start + 1000, None] - p[None, :])
            untied += np.count_nonzero(dt)
            right += np.count_nonzero((dt * dp) > 0) + 0.5 * np.count_nonzero((dt != 0) & (dp == 0))
    else:
        rng = np.random.default_rng(seed)
        i, j = rng.integers(0, t.size, SAMPLED_PAIRS), rng.integers(0, t.size, SAMPLED_PAIRS)
        dt, dp = np.sign(t[i] - t[j]), np.sign(p[i] - p[j])
        untied = np.count_nonzero(dt)
        right = np.count_nonzero((dt * dp) > 0) + 0.5 * np.count_nonzero((dt != 0) & (dp == 0))
    if untied == 0:
        raise MetricError("pairwise accuracy is undefined when every true score is equal")
    return float(right / untied)


def threshold_for_scale(scale: Tuple[float, float]) -> float:
    """5 on AVA's 1..10 scale (the literature's convention); the midpoint of any other scale."""
    lo, hi = float(scale[0]), float(scale[1])
    return 5.0 if (lo, hi) == AVA_SCALE else (lo + hi) / 2.0


def accuracy(y_true, y_pred, threshold: float) -> float:
    """Share of photos on the same side of `threshold` in truth and prediction (low = `<= threshold`)."""
    t, p = _pair(y_true, y_pred)
    return float(((t <= threshold) == (p <= threshold)).mean())


def tuned_threshold(y_true, y_pred, threshold: float) -> float:
    """The cut τ on the predictions that classifies the most photos right against truth cut at `threshold`
    (Kong et al. 2016, section 5.2: τ chosen on validation data); the midpoint between the two predictions it
    falls between, the lowest such τ on ties.
    """
    t, p = _pair(y_true, y_pred)
    order = np.argsort(p, kind="stable")
    p, high = p[order], (t[order] > threshold)
    # a cut after the first k sorted predictions: the k lowest called low, the rest high
    right = np.concatenate([[0], np.cumsum(~high)]) + np.concatenate([np.cumsum(high[::-1])[::-1], [0]])
    distinct = np.concatenate([[True], p[1:] > p[:-1], [True]])  # cuts only between different predictions
    k = int(np.flatnonzero(distinct)[np.argmax(right[distinct])])
    if k == 0:
        return float(p[0] - 1.0)
    if k == len(p):
        return float(p[-1])
    return float((p[k - 1] + p[k]) / 2)


def accuracy_at(y_true, y_pred, threshold: float, cut: float) -> float:
    """Share of photos classified right when truth is cut at `threshold` and predictions at `cut`."""
    t, p = _pair(y_true, y_pred)
    return float(((t <= threshold) == (p <= cut)).mean())


def balanced_accuracy(y_true, y_pred, threshold: float) -> float:
    """Mean of the recall of the high and the low class (truth classes); NaN-free: one class only → its recall."""
    t, p = _pair(y_true, y_pred)
    recalls = [float(((p > threshold) == cls)[(t > threshold) == cls].mean())
               for cls in (True, False) if ((t > threshold) == cls).any()]
    return float(np.mean(recalls))


def _class_scores(t: np.ndarray, p: np.ndarray) -> Tuple[float, float, float]:
    """Precision, recall and F1 of the class where `t`/`p` are True (0 where undefined)."""
    tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def roc_auc(high, confidence) -> Optional[float]:
    """The chance that a random high photo gets a higher confidence than a random low one (ties count half):
    the Mann-Whitney form of the ROC area; None with one class only."""
    from scipy.stats import rankdata

    high, confidence = np.asarray(high, bool), np.asarray(confidence, np.float64)
    n_high, n_low = int(high.sum()), int((~high).sum())
    if not n_high or not n_low:
        return None
    ranks = rankdata(confidence)
    return float((ranks[high].sum() - n_high * (n_high + 1) / 2) / (n_high * n_low))


def binary_metrics(y_true, y_pred) -> dict:
    """Accuracy, precision, recall and F1 of the positive (high) class and their support-weighted averages over
    both classes (photo-critic's Table I, where weighted recall equals accuracy), and balanced accuracy, for
    0/1 truth and predicted labels or confidences (cut at 0.5); with confidences also the ROC area."""
    t, confidence = _pair(y_true, y_pred)
    t, p = t > 0.5, confidence > 0.5
    precision, recall, f1 = _class_scores(t, p)
    low = _class_scores(~t, ~p)
    share = float(t.mean())
    weighted = [share * high + (1 - share) * other for high, other in zip((precision, recall, f1), low)]
    return {"n": int(t.size), "accuracy": float((t == p).mean()), "precision": precision, "recall": recall,
            "f1": f1, "weighted_precision": weighted[0], "weighted_recall": weighted[1], "weighted_f1": weighted[2],
            "balanced_accuracy": balanced_accuracy(t.astype(float), p.astype(float), 0.5),
            "high_fraction": share, "predicted_high_fraction": float(p.mean()), "auc": roc_auc(t, confidence)}


def _rowwise_correlation(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pearson's r of each row pair of two (B, n) arrays; NaN where a row is constant."""
    t, p = t - t.mean(axis=1, keepdims=True), p - p.mean(axis=1, keepdims=True)
    denominator = np.sqrt((t * t).sum(axis=1) * (p * p).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denominator > 0, (t * p).sum(axis=1) / denominator, np.nan)
    return np.clip(r, -1.0, 1.0)


def bootstrap_ci(y_true, y_pred, metric, n_boot: int = 1000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap interval of a correlation; resamples where it is undefined are skipped.
    SRCC and PLCC are computed for every resample at once (the same draws as one at a time)."""
    from scipy.stats import rankdata

    t, p = _pair(y_true, y_pred)
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, t.size, t.size) for _ in range(n_boot)]
    if metric in (srcc, plcc):
        idx = np.stack(draws)
        ts, ps = t[idx], p[idx]
        if metric is srcc:
            ts, ps = rankdata(ts, axis=1), rankdata(ps, axis=1)
        values = [float(v) for v in _rowwise_correlation(ts, ps) if np.isfinite(v)]
    else:
        values = []
        for idx in draws:
            try:
                values.append(metric(t[idx], p[idx]))
            except MetricError:
                continue
    if len(values) < n_boot // 2:
        return None
    lo, hi = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return [float(lo), float(hi)]


def score_metrics(y_true, y_pred, threshold: float, ci: bool = False) -> dict:
    """Every score metric of one split: n, accuracy and balanced accuracy at `threshold`, MSE/MAE/RMSE, SRCC,
    PLCC and pairwise accuracy (None with the reason where undefined), and with `ci` bootstrap 95 % intervals.
    """
    t, p = _pair(y_true, y_pred)
    out = {"n": int(t.size), "threshold": threshold,
           "high_fraction": float((t > threshold).mean()),
           "accuracy": accuracy(t, p, threshold),
           "balanced_accuracy": balanced_accuracy(t, p, threshold),
           "mse": float(np.mean((t - p) ** 2)), "mae": float(np.mean(np.abs(t - p)))}
    out["rmse"] = float(np.sqrt(out["mse"]))
    for name, fn in (("srcc", srcc), ("plcc", plcc), ("pairwise_accuracy", pairwise_accuracy)):
        try:
            out[name] = fn(t, p)
        except MetricError as exc:
            out[name] = None
            out[f"{name}_error"] = str(exc)
        if ci and out[name] is not None and name != "pairwise_accuracy":
            out[f"{name}_ci95"] = bootstrap_ci(t, p, fn)
    return out


def _normalise(d) -> np.ndarray:
    d = np.clip(np.asarray(d, dtype=np.float64), 0.0, None)
    total = d.sum(axis=-1, keepdims=True)
    if (total <= 0).any():
        raise MetricError("a distribution sums to zero")
    return d / total


def emd(g, p, r: float = 2.0) -> float:
    """Mean over samples of (mean_k |CDF_g - CDF_p|^r)^(1/r)."""
    diff = np.abs(np.cumsum(_normalise(g), -1) - np.cumsum(_normalise(p), -1))
    return float(np.mean(np.mean(diff ** r, axis=-1) ** (1.0 / r)))


def kl_divergence(g, p, eps: float = 1e-8) -> float:
    """Mean KL(g || p) in nats; p is floored at eps so an empty predicted bin stays finite."""
    g, p = _normalise(g), np.clip(_normalise(p), eps, None)
    terms = np.where(g > 0, g * np.log(np.where(g > 0, g, 1.0) / p), 0.0)
    return float(np.mean(terms.sum(axis=-1)))


def cd_loss(g, p) -> float:
    """Mean over samples of the sum of squared CDF differences."""
    diff = np.cumsum(_normalise(g), -1) - np.cumsum(_normalise(p), -1)
    return float(np.mean((diff ** 2).sum(axis=-1)))


def distribution_metrics(g, p) -> dict:
    """Distribution metrics of predicted histograms `p` against true ones `g`: EMD (r = 1, 2), KL and CDLoss."""
    return {"emd_r1": emd(g, p, 1.0), "emd_r2": emd(g, p, 2.0), "kl": kl_divergence(g, p), "cd_loss": cd_loss(g, p)}


def mos_from_distribution(dist: np.ndarray, scores: Optional[np.ndarray] = None) -> np.ndarray:
    """l1-normalised K-bin distributions → mean score sum_i i * p_i (bins scored 1..K)."""
    d = np.clip(np.asarray(dist, dtype=np.float64), 0.0, None)
    total = d.sum(axis=-1, keepdims=True)
    k = d.shape[-1]
    d = np.where(total > 0, d / np.where(total > 0, total, 1.0), 1.0 / k)
    scores = np.arange(1, k + 1, dtype=np.float64) if scores is None else scores
    return d @ scores
