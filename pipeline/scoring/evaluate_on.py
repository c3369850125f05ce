"""Cross-dataset evaluation (`iaa evaluate-on RUN_DIR STORE`): a trained run scores another store's split.

A run trained on one dataset predicts on that dataset's scale (AVA 1-10), while the other store's truth
has its own (AADB 0-1, KonIQ 1-100). Ranking metrics need no mapping: SRCC and pairwise ranking accuracy
are the headline, as in Kong et al. 2016's cross-dataset tables. For PLCC and RMSE the predictions are
mapped onto the target scale by rank (the i-th ranked prediction gets the i-th smallest true score of
the split, a quantile mapping that keeps SRCC unchanged), and the report says so.

The store's features must be the run's: same backbone, weights, blocks, preprocessing and kind shape
(refused otherwise, naming each difference); other view sets or maximum sides are allowed and reported.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from evaluation.metrics import MetricError, pairwise_accuracy, plcc, srcc
from evaluation.rundir import RunDir, summarise_views
from features import store as st
from features.core.errors import UsageError
from features.groups import CONCAT, base_kind, is_plain
from features.weights import identity_differences
from heads import get_head
from pipeline.training import fit_keras, fit_sklearn, personal  # noqa: F401  (trainer registration)
from pipeline.training.ensemble import load_run_model
from pipeline.training.fitting import TRAINERS, predict_store_rows
from pipeline.scoring.predictor import PredictorError, extraction_record
from pipeline.scoring.sources import part_records

SPLITS = ("test", "val", "train", "all")
REFUSED_KEYS = ("backbone", "blocks", "preprocessing")
REPORTED_KEYS = ("view_set", "max_side", "resize")


def feature_differences(run_record: dict, store_record: dict, kind: str):
    """(refusals, notes): what makes the store's features other than the run's, and what only differs."""
    refusals = [f"{k}: the run's {run_record.get(k)!r}, the store's {store_record.get(k)!r}"
                for k in REFUSED_KEYS if run_record.get(k) != store_record.get(k)]
    shape = lambda r: (r.get("kinds") or {}).get(kind, {}).get("shape")  # noqa: E731
    if shape(store_record) is None:
        refusals.append(f"kind {kind}: the store has {sorted(store_record.get('kinds') or {})}")
    elif shape(run_record) != shape(store_record):
        refusals.append(f"kind {kind}: the run's shape {shape(run_record)}, the store's {shape(store_record)}")
    refusals += identity_differences(run_record.get("weights") or {}, store_record.get("weights") or {})
    notes = [f"{k}: trained with {run_record.get(k)!r}, evaluated with {store_record.get(k)!r}"
             for k in REPORTED_KEYS if run_record.get(k) != store_record.get(k)]
    revision = lambda r: (r.get("kinds") or {}).get(kind, {}).get("pooling_revision", 1)  # noqa: E731
    if shape(store_record) is not None and revision(run_record) != revision(store_record):
        notes.append(f"{kind} pooling revision: trained with {revision(run_record)}, evaluated with "
                     f"{revision(store_record)} (they differ for block maps under the pooling grid)")
    return refusals, notes


def matching_kind(run_record: dict, fs: st.FeatureStore, kind: str):
    """(the run's kind as the store names it, refusals, notes). A kind of several parts, or of a further
    backbone, is looked up part by part as `<backbone>/<kind>`, which finds that backbone's features whether
    the store holds them as its first group or a further one; each part is checked against its own record."""
    if is_plain(kind):
        return (kind,) + feature_differences(run_record, fs.extraction(), kind)
    pairs = part_records(kind, run_record)
    target = CONCAT.join(f"{rec['backbone']}/{base_kind(name)}" if rec.get("backbone") else name
                         for name, rec in pairs)
    try:
        store_pairs = part_records(target, fs.extraction(target))
    except st.StoreError as exc:
        return target, [str(exc)], []
    refusals, notes = [], []
    for (name, rec), (_, store_rec) in zip(pairs, store_pairs):
        r, n = feature_differences(rec, store_rec, base_kind(name))
        refusals += [f"{name}: {line}" for line in r]
        notes += [f"{name}: {line}" for line in n]
    return target, refusals, notes


def rank_map(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Predictions replaced by the true scores of the same rank (ties in `pred` share their mean)."""
    from scipy.stats import rankdata

    ranks = rankdata(pred) - 1.0  # average ranks, 0-based
    ordered = np.sort(true)
    lo = np.floor(ranks).astype(int)
    hi = np.minimum(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ranks - lo) * (ordered[hi] - ordered[lo])


def _rows(fs: st.FeatureStore, split: str, kind: str) -> np.ndarray:
    usable = (fs.status_of(kind) == st.DONE) & np.isfinite(fs.mos)
    if split != "all":
        usable &= fs.split == split
    rows = np.flatnonzero(usable)
    if len(rows) < 2:
        raise UsageError(f"store {fs.path} has {len(rows)} usable labelled {split!r} images; pick another --split "
                         f"({', '.join(SPLITS)})")
    return rows


def _predict(run: RunDir, fs: st.FeatureStore, kind: str, rows: np.ndarray) -> np.ndarray:
    spec = get_head(run.config["head"]["name"])
    views = predict_store_rows(TRAINERS.get(spec.trainer), load_run_model(run), fs, kind, rows)
    return summarise_views(views, spec.target == "dist")[0]


def evaluate_on(run_dir: str | Path, store: str | Path, *, split: str = "test", out: Optional[str | Path] = None,
                log: Callable[[str], None] = print) -> dict:
    """Scores a store's split with a trained run and writes predictions, metrics and a report.

    Args:
        run_dir: a directory written by `iaa train` / `iaa ablate`.
        store: a feature store made with the run's extraction (another dataset's, typically).
        split: "test", "val", "train" or "all" (every labelled image).
        out: output directory (default `<run_dir>/evaluate_on/<store name>_<split>`).
        log: where progress lines go.
    Returns:
        The metrics (also in metrics.json).
    Raises:
        UsageError (PredictorError, StoreError, RunDirError): features that are not the run's, a bad split.
    """
    if split not in SPLITS:
        raise UsageError(f"split must be one of {', '.join(SPLITS)}; received {split!r}")
    run = RunDir.open(run_dir)
    with st.FeatureStore(store) as fs:
        kind, refusals, notes = matching_kind(extraction_record(run), fs, run.config["kind"])
        if refusals:
            raise PredictorError(f"store {store} holds other features than run {run.path} was trained on:\n  "
                                 + "\n  ".join(refusals))
        label = run.config.get("label") or "mos"
        if label in fs.attribute_names:
            fs = fs.with_label(label)
        elif label != "mos":
            notes.append(f"label: trained on {label}, evaluated against the store's mos (it has no {label})")
        rows = _rows(fs, split, kind)
        log(f"scoring {len(rows):,} {split} images of {fs.path} ({fs.identity().get('dataset')}) with {run.path}")
        pred = _predict(run, fs, kind, rows)
        true, ids, paths, target_scale = fs.mos[rows].astype(np.float64), fs.ids[rows], fs.paths[rows], fs.scale
    mapped = rank_map(pred, true)
    metrics = {"run": str(run.path), "store": fs.identity()["path"], "split": split, "n": int(len(rows)),
               "trained_on": (run.config.get("store") or {}).get("dataset"), "source_scale": run.config.get("scale"),
               "target_scale": list(target_scale), "differences": notes,
               "mapping": "PLCC and RMSE on predictions mapped to the target scale by rank (quantile mapping)"}
    for name, fn, values in (("srcc", srcc, pred), ("pairwise_accuracy", pairwise_accuracy, pred),
                             ("plcc_rank_mapped", plcc, mapped)):
        try:
            metrics[name] = fn(true, values)
        except MetricError as exc:
            metrics[name], metrics[f"{name}_error"] = None, str(exc)
    metrics["rmse_rank_mapped"] = float(np.sqrt(np.mean((mapped - true) ** 2)))
    out = Path(out) if out else run.path / "evaluate_on" / f"{Path(store).stem}_{split}"
    _write(out, metrics, ids, paths, true, pred, mapped)
    log(f"SRCC {metrics['srcc']:.4f}, pairs ordered {metrics['pairwise_accuracy']:.2%} on {len(rows):,} images; "
        f"report {out / 'report.md'}")
    return metrics


def _write(out: Path, metrics: dict, ids, paths, true, pred, mapped) -> None:
    from evaluation import plots

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "path", "true", "pred", "pred_rank_mapped"])
        for row in zip(ids, paths, true, pred, mapped):
            w.writerow([row[0], row[1]] + [f"{v:.6g}" for v in row[2:]])
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plots.scatter(true, mapped, out / "scatter.png", title=f"rank-mapped, SRCC {metrics['srcc']:.3f}",
                  scale=metrics["target_scale"])
    fmt = lambda k: "n/a" if metrics.get(k) is None else f"{metrics[k]:.4f}"  # noqa: E731
    lines = [f"# {Path(metrics['run']).name} evaluated on {Path(metrics['store']).name} ({metrics['split']})", "",
             f"- trained on {metrics['trained_on']} (scale {metrics['source_scale']}); evaluated on "
             f"{metrics['n']} images (scale {metrics['target_scale']})",
             f"- {metrics['mapping']}; SRCC and pairwise accuracy use the raw predictions"]
    lines += [f"- differs from training: {d}" for d in metrics["differences"]]
    lines += ["", "| SRCC | pairs ordered | PLCC (rank-mapped) | RMSE (rank-mapped) |", "|---|---|---|---|",
              f"| {fmt('srcc')} | {metrics['pairwise_accuracy']:.2%} | {fmt('plcc_rank_mapped')} | "
              f"{metrics['rmse_rank_mapped']:.4f} |", "", "![scatter.png](scatter.png)"]
    (out / "report.md").write_text("\n".join(lines) + "\n")
