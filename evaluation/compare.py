"""Paired comparison of two heads on the same test photos: the SRCC difference with a bootstrap interval.

400 test photos cannot resolve 0.02 SRCC between two heads judged apart; judged on the same photos they
often can, because both heads find the same photos hard. `paired_srcc_delta` resamples the photos (with
replacement, the same resample for both heads) and reports the percentile interval of the difference of
the heads' SRCC, each head's SRCC averaged over its seeds. A head is "better" only when the interval
excludes 0.

Reference: Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13 (percentile intervals).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy.stats import rankdata

from evaluation.rundir import RunDir


def _srcc_columns(truth: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """SRCC of each (row-resampled) column of `preds` (n, k) against `truth` (n,)."""
    t = rankdata(truth)
    p = rankdata(preds, axis=0)
    t, p = t - t.mean(), p - p.mean(axis=0)
    denom = np.sqrt((t ** 2).sum() * (p ** 2).sum(axis=0))
    return np.where(denom > 0, (t[:, None] * p).sum(axis=0) / np.where(denom > 0, denom, 1), np.nan)


RESAMPLE_VALUES = 4_000_000  # predictions ranked at once by the bootstrap (memory bound, about 32 MB each)


def _resampled_srcc(truth: np.ndarray, preds: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """For each resample (row of `idx`), the mean over seeds (columns of `preds`) of their SRCC with `truth`."""
    import warnings

    t = rankdata(truth[idx], axis=1)  # (B, n)
    p = rankdata(preds[idx], axis=1)  # (B, n, k)
    t, p = t - t.mean(axis=1, keepdims=True), p - p.mean(axis=1, keepdims=True)
    denominator = np.sqrt((t ** 2).sum(axis=1)[:, None] * (p ** 2).sum(axis=1))
    r = np.where(denominator > 0, np.einsum("bn,bnk->bk", t, p) / np.where(denominator > 0, denominator, 1), np.nan)
    with warnings.catch_warnings():  # a resample where every seed is undefined stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(r, axis=1)


def paired_srcc_delta(truth: np.ndarray, preds_a: np.ndarray, preds_b: np.ndarray, n_boot: int = 1000,
                      seed: int = 0, level: float = 0.95) -> Dict[str, float]:
    """mean-over-seeds SRCC of A minus that of B, on the same photos, with a paired bootstrap interval.

    Args:
        truth: (n,) true scores.
        preds_a, preds_b: (n, seeds) predictions of each head (one column per seed; seeds may differ in number).
        n_boot: bootstrap resamples of the photos.
        level: the interval's coverage.
    Returns:
        {"delta", "low", "high", "n"}.
    """
    truth = np.asarray(truth, np.float64)
    a, b = np.asarray(preds_a, np.float64), np.asarray(preds_b, np.float64)
    delta = float(np.nanmean(_srcc_columns(truth, a)) - np.nanmean(_srcc_columns(truth, b)))
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, truth.size, truth.size) for _ in range(n_boot)])
    step = max(1, RESAMPLE_VALUES // max(truth.size * (a.shape[1] + b.shape[1]), 1))  # resamples per block
    draws = np.concatenate([_resampled_srcc(truth, a, idx[i:i + step]) - _resampled_srcc(truth, b, idx[i:i + step])
                            for i in range(0, n_boot, step)])
    low, high = np.nanpercentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return {"delta": delta, "low": float(low), "high": float(high), "n": int(truth.size)}


def _seed_predictions(dirs) -> Optional[dict]:
    """One seed's test predictions: one run directory, or its folds' (concatenated: out-of-fold)."""
    dirs = [dirs] if isinstance(dirs, (str, Path)) else list(dirs)
    parts = [RunDir.open(d).read_predictions("test") for d in dirs]
    if any(p is None for p in parts):
        return None
    groups = None if any(p["group"] is None for p in parts) else [g for p in parts for g in p["group"]]
    return {"id": [i for p in parts for i in p["id"]], "true": np.concatenate([p["true"] for p in parts]),
            "pred": np.concatenate([p["pred"] for p in parts]), "group": groups}


def test_predictions(seeds: Sequence) -> Optional[Dict[str, object]]:
    """{"id": [...], "true": (n,), "pred": (n, seeds), "group": [...] or None} of one head's runs on the test
    photos every seed has.

    Args:
        seeds: per seed, its run directory, or the run directories of its cross-validation folds (their test
            parts are concatenated into out-of-fold predictions of every photo).
    Returns:
        None when a run wrote no test predictions.
    """
    runs = [_seed_predictions(d) for d in seeds]
    if any(r is None for r in runs):
        return None
    common = sorted(set.intersection(*(set(r["id"]) for r in runs)))
    index = [{i: k for k, i in enumerate(r["id"])} for r in runs]
    pred = np.stack([r["pred"][[ix[i] for i in common]] for r, ix in zip(runs, index)], axis=1)
    groups = runs[0]["group"]
    return {"id": common, "true": runs[0]["true"][[index[0][i] for i in common]], "pred": pred,
            "group": None if groups is None else [groups[index[0][i]] for i in common]}


def out_of_fold_summary(seeds: Sequence[Sequence[str]]) -> Dict[str, float]:
    """SRCC and PLCC of the pooled out-of-fold predictions (mean ± std over seeds) and the SRCC of each fold
    (seeds averaged; mean ± std over folds). `seeds`: per seed, the run directories of its folds in order."""
    from evaluation.metrics import plcc

    pooled = test_predictions(seeds)
    srccs = _srcc_columns(pooled["true"], pooled["pred"])
    plccs = [plcc(pooled["true"], pooled["pred"][:, s]) for s in range(pooled["pred"].shape[1])]
    per_fold = [np.mean([RunDir.open(dirs[f]).read_metrics()["test"]["srcc"] for dirs in seeds])
                for f in range(len(seeds[0]))]
    within = within_group_columns(pooled)
    return {"srcc_mean": float(np.mean(srccs)), "srcc_std": float(np.std(srccs)), "plcc_mean": float(np.mean(plccs)),
            "within_mean": float(np.mean(within)) if within else float("nan"),
            "within_std": float(np.std(within)) if within else float("nan"),
            "plcc_std": float(np.std(plccs)), "fold_srcc_mean": float(np.mean(per_fold)),
            "fold_srcc_std": float(np.std(per_fold)), "n": int(pooled["true"].size)}


def within_group_columns(pooled: dict) -> List[float]:
    """Per seed, the mean within-group SRCC of `test_predictions`' output (empty without groups)."""
    from evaluation.metrics import within_group_srcc

    if pooled["group"] is None:
        return []
    return [within_group_srcc(pooled["true"], pooled["pred"][:, s], pooled["group"])["mean"]
            for s in range(pooled["pred"].shape[1])]


def compare_heads(runs_a: Sequence, runs_b: Sequence, n_boot: int = 1000) -> Optional[Dict[str, float]]:
    """`paired_srcc_delta` of two heads' runs (per seed a run directory, or its folds' run directories) on
    the test photos they share; None when either has no test predictions."""
    a, b = test_predictions(runs_a), test_predictions(runs_b)
    if a is None or b is None:
        return None
    common = sorted(set(a["id"]) & set(b["id"]))
    if len(common) < 3:
        return None
    ia, ib = ({i: k for k, i in enumerate(p["id"])} for p in (a, b))
    rows_a, rows_b = [ia[i] for i in common], [ib[i] for i in common]
    return paired_srcc_delta(a["true"][rows_a], a["pred"][rows_a], b["pred"][rows_b], n_boot=n_boot)


def delta_text(result: Optional[Dict[str, float]]) -> str:
    """'+0.014 [+0.003, +0.026]' (or 'n/a'); the interval excluding 0 is what makes a difference real."""
    if result is None:
        return "n/a"
    return f"{result['delta']:+.3f} [{result['low']:+.3f}, {result['high']:+.3f}]"


def deltas_against(reference: str, runs: Dict[str, List[str]], n_boot: int = 1000) -> Dict[str, str]:
    """Every head's `delta_text` against the head `reference` (its own row: '0 (reference)')."""
    out = {}
    for head, dirs in runs.items():
        out[head] = "0 (reference)" if head == reference else delta_text(
            compare_heads(dirs, runs[reference], n_boot=n_boot))
    return out
