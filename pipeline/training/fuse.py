"""`iaa fuse RUN_A RUN_B`: APM's two-branch late fusion of two trained runs (e.g. an SPP and a GMP head).

Each run's predictions are standardised with its validation mean and std (a distribution head's expected
bin and a score head's MOS then share a scale); the fused score is `w·a + (1 − w)·b` with w chosen on the
validation split (the grid 0, 0.01, ..., 1 maximising validation SRCC; ties go to the most even weight),
then mapped onto the target scale by a least-squares line fitted on validation, so PLCC and RMSE mean what
they mean for the members. When both runs predict distributions over the same bins (APM's two branches),
the fused run is the distribution `w·p_a + (1 − w)·p_b` instead, as APM fuses them, with w chosen the same way
on the members' mean scores (the mean of the mixture is the mixture of the means), so its report has the
distribution metrics (KL, CDLoss, EMD) of Table 1. The fused run directory has its own predictions, metrics
and report.

Reference: Murray & Gordo 2017, section 4.1: the SPP and GMP branches' distributions are "combined with late
fusion as a weighted averaged of the predictions, where the optimal weights are learned on the validation set".
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from evaluation.metrics import MetricError, srcc
from evaluation.report import evaluate_run
from evaluation.rundir import RunDir
from features.core.errors import UsageError

WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 101), 2)


def _aligned(a: dict, b: dict, split: str, names) -> np.ndarray:
    """Positions of `a`'s images in `b`; refuses runs that did not predict the same images and truth."""
    where = {image: i for i, image in enumerate(b["id"])}
    missing = [image for image in a["id"] if image not in where]
    if missing or len(a["id"]) != len(b["id"]):
        raise UsageError(f"runs {names[0]} and {names[1]} predicted other {split} images ({len(a['id'])} vs "
                         f"{len(b['id'])}, e.g. {missing[:3]}): fuse runs trained on the same dataset and split")
    order = np.array([where[image] for image in a["id"]])
    if not np.allclose(a["true"], b["true"][order], atol=1e-4):
        raise UsageError(f"runs {names[0]} and {names[1]} were trained on different labels for the same {split} "
                         f"images (another --label or dataset): nothing to fuse")
    return order


def best_weight(a: np.ndarray, b: np.ndarray, truth: np.ndarray) -> float:
    """The grid weight w of `w·a + (1 − w)·b` with the highest SRCC against `truth` (ties: nearest 0.5)."""
    scores = np.nan_to_num(np.asarray([_srcc_or_nan(truth, w * a + (1 - w) * b) for w in WEIGHT_GRID]), nan=-2.0)
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(WEIGHT_GRID[best[np.argmin(np.abs(WEIGHT_GRID[best] - 0.5))]])


def _srcc_or_nan(truth: np.ndarray, pred: np.ndarray) -> float:
    """SRCC, NaN where undefined (a member whose validation predictions are all equal)."""
    try:
        return srcc(truth, pred)
    except MetricError:
        return float("nan")


def _check_member(run: RunDir) -> None:
    head = run.config.get("head") or {}
    if head.get("classifier") or head.get("target") == "binary":
        raise UsageError(f"{run.path} is a classifier run: fusion combines score predictions")
    if run.read_predictions("val") is None or run.read_predictions("test") is None:
        raise UsageError(f"{run.path} has no validation and test predictions: train it to the end first")


def fuse_runs(run_a: str | Path, run_b: str | Path, out: Optional[str | Path] = None,
              log: Callable[[str], None] = print) -> dict:
    """Fuses two runs' predictions with a weight fitted on validation and evaluates the fused run.

    Args:
        run_a, run_b: run directories trained on the same dataset and split (same images and labels).
        out: the fused run directory (default `<parent of run_a>/fuse_<a>+<b>`).
        log: where progress lines go.
    Returns:
        The fused run's metrics (also in its metrics.json), with the members' test SRCC beside.
    Raises:
        UsageError, RunDirError: not runs, classifier runs, or runs on other images or labels.
    """
    runs = [RunDir.open(run_a), RunDir.open(run_b)]
    for run in runs:
        _check_member(run)
    names = [r.path.name for r in runs]
    val = [r.read_predictions("val") for r in runs]
    test = [r.read_predictions("test") for r in runs]
    val_order, test_order = _aligned(val[0], val[1], "val", names), _aligned(test[0], test[1], "test", names)
    moments = [(float(v["pred"].mean()), float(v["pred"].std()) or 1.0) for v in val]

    def standard(x, i):
        return (np.asarray(x, np.float64) - moments[i][0]) / moments[i][1]

    out = Path(out) if out else runs[0].path.parent / f"fuse_{names[0]}+{names[1]}"
    if _both_distributions(val + test):
        return _fuse_distributions(runs, names, val, test, (val_order, test_order), out, log)
    a_val, b_val = standard(val[0]["pred"], 0), standard(val[1]["pred"][val_order], 1)
    w = best_weight(a_val, b_val, val[0]["true"])
    slope, intercept = np.polyfit(w * a_val + (1 - w) * b_val, val[0]["true"], 1)
    per_view = [runs[0].read_per_view(test[0]["id"]), runs[1].read_per_view(test[0]["id"])]
    if per_view[0] is None or per_view[1] is None or per_view[0].shape != per_view[1].shape:
        per_view = [test[0]["pred"][:, None], test[1]["pred"][test_order][:, None]]

    def fused(a, b):
        return intercept + slope * (w * standard(a, 0) + (1 - w) * standard(b, 1))

    config = _config(runs, {"members": [str(r.path.resolve()) for r in runs], "weight": w,
                            "standardised_by": moments, "line_on_validation": [float(slope), float(intercept)],
                            "weight_grid": f"{WEIGHT_GRID[0]:g}..{WEIGHT_GRID[-1]:g} step 0.01, max validation SRCC"})
    fused_run = RunDir.create(out, config)
    fused_run.write_predictions("val", val[0]["id"], val[0]["path"], val[0]["true"],
                                fused(val[0]["pred"], val[1]["pred"][val_order])[:, None, None])
    fused_run.write_predictions("test", test[0]["id"], test[0]["path"], test[0]["true"],
                                fused(per_view[0], per_view[1])[..., None])
    return _evaluated(fused_run, runs, names, w, log)


def _both_distributions(predictions) -> bool:
    """Every member split has predicted and true distributions over one number of bins."""
    dists = [p["dist"] for p in predictions] + [p["true_dist"] for p in predictions]
    return all(d is not None for d in dists) and len({d.shape[1] for d in dists}) == 1


def _fuse_distributions(runs, names, val, test, orders, out: Path, log) -> dict:
    """APM's fusion of two distribution runs: `w·p_a + (1 − w)·p_b`, w by validation SRCC of the means."""
    w = best_weight(val[0]["pred"], val[1]["pred"][orders[0]], val[0]["true"])
    config = _config(runs, {"members": [str(r.path.resolve()) for r in runs], "weight": w, "fused": "distributions",
                            "weight_grid": f"{WEIGHT_GRID[0]:g}..{WEIGHT_GRID[-1]:g} step 0.01, max validation SRCC "
                                           f"of the mixture's mean"})
    config["head"]["target"] = "dist"
    fused_run = RunDir.create(out, config)
    for split, members, order in (("val", val, orders[0]), ("test", test, orders[1])):
        mixture = w * members[0]["dist"] + (1 - w) * members[1]["dist"][order]
        fused_run.write_predictions(split, members[0]["id"], members[0]["path"], members[0]["true"],
                                    mixture[:, None, :], true_hist=members[0]["true_dist"])
    return _evaluated(fused_run, runs, names, w, log)


def _evaluated(fused_run: RunDir, runs, names, w: float, log) -> dict:
    metrics = evaluate_run(fused_run.path, log)
    member_srcc = {n: (r.read_metrics() or {}).get("test", {}).get("srcc") for n, r in zip(names, runs)}
    fused_run.update_config(member_test_srcc=member_srcc)
    log(f"fused {names[0]} (w = {w:.2f}) and {names[1]} ({1 - w:.2f}): test SRCC {metrics['test']['srcc']:.4f} "
        f"(members {', '.join(f'{k} {v:.4f}' for k, v in member_srcc.items() if v is not None)}) -> {fused_run.path}")
    return {**metrics, "members": member_srcc, "weight": w}


def _config(runs, fusion: dict) -> dict:
    """The fused run's config: the first member's, with the fusion recorded as its head."""
    first, second = runs[0].config, runs[1].config
    head = {"name": "fuse", "trainer": None, "target": "mos", "loss": None,
            "description": f"late fusion w·{runs[0].path.name} + (1 − w)·{runs[1].path.name}, "
                           f"w = {fusion['weight']:.2f} fitted on validation",
            "reference": "Murray & Gordo 2017, section 4.1"}
    return {**first, "head": head, "kind": f"{first.get('kind')}+{second.get('kind')}", "fusion": fusion,
            "params": (first.get("params") or 0) + (second.get("params") or 0),
            "train_seconds": (first.get("train_seconds") or 0) + (second.get("train_seconds") or 0),
            "lr_stages": None}
