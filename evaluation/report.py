"""`iaa evaluate RUN_DIR`: metrics with confidence intervals, a Markdown report and PNG figures.

Reads only what training wrote into the run directory (config.json, predictions*.csv, history.csv),
so a run can be re-evaluated without its store. Test protocol: metrics on the mean prediction over all
stored views (the paper's protocol) and per view, so the gain from view averaging is visible.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from evaluation import plots
from evaluation.metrics import binary_metrics, distribution_metrics, score_metrics, within_group_srcc
from evaluation.raters import RATINGS_FILE, rater_agreement
from evaluation.raters import markdown_lines as raters_markdown
from evaluation.model_card import write_model_card
from evaluation.rundir import RunDir


SCALE_METRICS = ("accuracy", "balanced_accuracy", "mse", "mae", "rmse")


def _scale_free(metrics: dict) -> dict:
    """Metrics of a score that is not on the label's scale (an embedding's norm): ranking ones only."""
    return {k: (None if k in SCALE_METRICS else v) for k, v in metrics.items()}


def _split_metrics(pred: dict, threshold: float, binary: bool, scale_free: bool = False) -> dict:
    if binary:  # the truth is the score; its class is high above the run's threshold
        return {"threshold": threshold, **binary_metrics(pred["true"] > threshold, pred["pred"])}
    out = score_metrics(pred["true"], pred["pred"], threshold, ci=True)
    out = _scale_free(out) if scale_free else out
    if pred["dist"] is not None and pred["true_dist"] is not None:
        out["distribution"] = distribution_metrics(pred["true_dist"], pred["dist"])
    return out


def evaluate_run(run_dir: str | Path, log=print) -> dict:
    """Computes a run's metrics and writes metrics.json, report.md and the figures.

    Reads only the run directory (config, predictions, history), so a run can be re-evaluated without
    its store.

    Args:
        run_dir: a directory written by `iaa train` / `iaa ablate`.
        log: where to print progress lines (unused beyond errors today; kept for the callers' symmetry).
    Returns:
        The metrics dict (also in metrics.json): per split SRCC/PLCC with 95 % bootstrap intervals,
        accuracy, balanced accuracy, errors, distribution metrics, and test metrics per view.
    Raises:
        RunDirError: not a run directory, or a damaged config.
    """
    run = RunDir.open(run_dir)
    config = run.config
    threshold = config["threshold"]
    binary = config["head"].get("classifier", config["head"]["target"] == "binary")
    scale_free = bool(config["head"].get("scale_free"))
    metrics = {"head": config["head"]["name"], "kind": config["kind"], "threshold": threshold,
               "scale": config.get("scale"), "splits": config.get("splits"),
               "train_seconds": config.get("train_seconds")}
    val = run.read_predictions("val")
    if val is not None:
        metrics["val"] = _split_metrics(val, threshold, binary, scale_free)
        _attribute_metrics(run, "val", metrics["val"])
    test = run.read_predictions("test")
    if test is not None:
        metrics["test"] = _split_metrics(test, threshold, binary, scale_free)
        if test["group"] is not None and not binary:
            metrics["test"]["within_group_srcc"] = within_group_srcc(test["true"], test["pred"], test["group"])
        _attribute_metrics(run, "test", metrics["test"])
        agreement = rater_agreement(run.file(RATINGS_FILE), test) if not binary else None
        if agreement:
            metrics["test"]["raters"] = agreement
        if not binary:
            if val is not None and not scale_free:
                metrics["test"].update(_tuned_cut(val, test, threshold))
            metrics.update(_per_view_metrics(run, test, threshold, scale_free))
            _test_figures(run, config, test)
    history = run.read_history()
    if history:
        plots.training_curves(history, run.file("training_curves.png"), config["head"]["name"])
    metrics["evaluated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    run.write_metrics(metrics)
    run.write_report(markdown_report(config, metrics, run.path))
    write_model_card(run)
    return metrics


def _tuned_cut(val: dict, test: dict, threshold: float) -> dict:
    """Test accuracy with the predictions cut at the τ that is best on validation (Kong et al., section 5.2)."""
    from evaluation.metrics import MetricError, accuracy_at, tuned_threshold

    try:
        cut = tuned_threshold(val["true"], val["pred"], threshold)
        return {"tuned_cut": cut, "accuracy_tuned_cut": accuracy_at(test["true"], test["pred"], threshold, cut)}
    except MetricError:
        return {}


def _attribute_metrics(run: RunDir, split: str, out: dict) -> None:
    """Per attribute: SRCC and PLCC over the annotated images of the split (attribute heads only)."""
    from evaluation.metrics import MetricError, plcc, srcc

    attributes = run.read_attributes(split)
    if not attributes:
        return
    out["attributes"] = {}
    for name, (true, pred) in attributes.items():
        known = np.isfinite(true)
        entry = {"n": int(known.sum())}
        for metric, fn in (("srcc", srcc), ("plcc", plcc)):
            try:
                entry[metric] = fn(true[known], pred[known])
            except MetricError as exc:
                entry[metric], entry[f"{metric}_error"] = None, str(exc)
        out["attributes"][name] = entry


def _per_view_metrics(run: RunDir, test: dict, threshold: float, scale_free: bool = False) -> dict:
    per_view = run.read_per_view(test["id"])
    if per_view is None:
        return {}
    out = {"test_per_view": [score_metrics(test["true"], per_view[:, v], threshold)
                             for v in range(per_view.shape[1])]}
    if scale_free:
        out["test_per_view"] = [_scale_free(m) for m in out["test_per_view"]]
    srccs = [m["srcc"] for m in out["test_per_view"] if m.get("srcc") is not None]
    overall = score_metrics(test["true"], test["pred"], threshold).get("srcc")
    if srccs and overall is not None:
        out["view_averaging_gain_srcc"] = overall - float(np.mean(srccs))
    return out


def _test_figures(run: RunDir, config: dict, test: dict) -> None:
    title = f"{config['head']['name']} on {config['kind']}"
    plots.scatter(test["true"], test["pred"], run.file("scatter.png"), title, config.get("scale"))
    plots.residuals(test["true"], test["pred"], run.file("residuals.png"), title)
    plots.histograms(test["true"], test["pred"], run.file("histograms.png"), title)
    if any(p and Path(p).is_file() for p in test["path"]):
        plots.best_worst_grid(test, run.file("best_worst.png"))


def _fmt(m: dict, key: str) -> str:
    v = m.get(key)
    if v is None:
        return "n/a"
    ci = m.get(f"{key}_ci95")
    return f"{v:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _num(metrics: dict, key: str) -> str:
    value = metrics.get(key)
    return "-" if value is None else f"{value:.4f}"


def _pct(metrics: dict, key: str) -> str:
    value = metrics.get(key)
    return "-" if value is None else f"{value:.2%}"


def _binary_table(config: dict, metrics: dict) -> list:
    rule = config.get("binary_rule") or {}
    lines = [f"Classifier: high = score above {metrics['threshold']:g}" + (
        f" (top and bottom {rule['fraction']:.0%} of the labelled photos by {config.get('label', 'mos')}: "
        f"low at or below {rule['low']:.4g}, high at or above {rule['high']:.4g}; the middle left out)"
        if rule else ""), "",
        "| split | n | accuracy | precision | recall | F1 | weighted P / R / F1 | balanced acc. | "
        "high (true / predicted) | ROC area |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    return lines + _per_split(metrics, lambda split, m: (
        f"| {split} | {m['n']} | {m['accuracy']:.2%} | {m['precision']:.2%} | {m['recall']:.2%} | {m['f1']:.4f} | "
        f"{_weighted(m)} | {m['balanced_accuracy']:.2%} | {m['high_fraction']:.1%} / "
        f"{m['predicted_high_fraction']:.1%} | {_num(m, 'auc')} |")) + [
        "", "Precision, recall and F1 are the high class's; the weighted ones average both classes by their share "
        "of the photos (photo-critic's Table I reports those: weighted recall equals accuracy). The predictions are "
        "the classifier's confidence that a photo is high (cut at 0.5 for the labels), so `predictions_test.csv` "
        "ranks the test photos and the ROC area says how well."]


def _weighted(m: dict) -> str:
    """Support-weighted precision / recall / F1, or '-' for metrics written before they existed."""
    if "weighted_f1" not in m:
        return "-"
    return f"{m['weighted_precision']:.2%} / {m['weighted_recall']:.2%} / {m['weighted_f1']:.4f}"


def _per_split(metrics: dict, row) -> list:
    """One table row per evaluated split (validation, then test)."""
    return [row(split, metrics[split]) for split in ("val", "test") if metrics.get(split)]


def _recipe_text(config: dict) -> str:
    """How the run was trained, from its recorded recipe (scikit-learn runs: input normalisation only)."""
    r = config.get("recipe") or {}
    if config["head"].get("trainer") == "sklearn":
        return f"input {r.get('input_norm')}"
    return (f"batch {r.get('batch_size')}, lr stages {config.get('lr_stages')}, up to {r.get('max_epochs')} epochs "
            f"per stage, patience {r.get('patience')} on validation {r.get('early_stop')}, input "
            f"{r.get('input_norm')}, l2 {r.get('l2')}, weight decay {r.get('weight_decay')}")


def markdown_report(config: dict, metrics: dict, run_dir: Path) -> str:
    store = config.get("store", {})
    lines = [f"# {config['head']['name']} on {config['kind']}", "",
             f"- store: `{store.get('path')}` (backbone {store.get('backbone')}, weights "
             f"{(store.get('weights') or {}).get('spec')}, views {store.get('view_set')})",
             f"- dataset splits: {config.get('splits')}; score scale {config.get('scale')}, "
             f"accuracy threshold {metrics['threshold']:g} (low = at or below)",
             f"- head: {config['head']['description']} ({config['head'].get('reference') or 'this project'}); "
             f"loss {config['head']['loss']}; parameters {config.get('params')}",
             f"- training: seed {config['train']['seed']}, {_recipe_text(config)}; "
             f"{config.get('train_seconds', 0) or 0:.1f} s", ""]
    if "f1" in (metrics.get("test") or metrics.get("val") or {}):
        return "\n".join(lines + _binary_table(config, metrics)) + "\n"
    lines += ["| split | n | SRCC [95% CI] | PLCC [95% CI] | pairs ordered | accuracy | balanced acc. | high | RMSE |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += _per_split(metrics, lambda split, m: (
        f"| {split} (mean over views) | {m['n']} | {_fmt(m, 'srcc')} | {_fmt(m, 'plcc')} | "
        f"{_pct(m, 'pairwise_accuracy')} | {_pct(m, 'accuracy')} | {_pct(m, 'balanced_accuracy')} | "
        f"{m['high_fraction']:.1%} | {_num(m, 'rmse')} |"))
    for v, m in enumerate(metrics.get("test_per_view", [])):
        lines.append(f"| test view {v} | {m['n']} | {_fmt(m, 'srcc')} | {_fmt(m, 'plcc')} | "
                     f"{_pct(m, 'pairwise_accuracy')} | {_pct(m, 'accuracy')} "
                     f"| {_pct(m, 'balanced_accuracy')} | {m['high_fraction']:.1%} | {_num(m, 'rmse')} |")
    test = metrics.get("test") or {}
    if test.get("tuned_cut") is not None:
        lines += ["", f"Accuracy with the predictions cut at τ = {test['tuned_cut']:.4g}, the cut that is best on "
                      f"validation (Kong et al. 2016, section 5.2; truth still at {metrics['threshold']:g}): "
                      f"{test['accuracy_tuned_cut']:.2%} on test (cut at {metrics['threshold']:g}: "
                      f"{test['accuracy']:.2%})."]
    if "view_averaging_gain_srcc" in metrics:
        lines += ["", f"Averaging over views changes test SRCC by {metrics['view_averaging_gain_srcc']:+.4f} "
                      f"against the mean single-view SRCC."]
    attributes = (metrics.get("test") or {}).get("attributes")
    if attributes:
        lines += ["", "| attribute (test) | n | SRCC | PLCC |", "|---|---|---|---|"]
        lines += [f"| {a} | {m['n']} | {_fmt(m, 'srcc')} | {_fmt(m, 'plcc')} |" for a, m in attributes.items()]
    lines += raters_markdown((metrics.get("test") or {}).get("raters"))
    dist = (metrics.get("test") or {}).get("distribution")
    if dist:
        lines += ["", "Distribution metrics (test): " + ", ".join(f"{k} {v:.4f}" for k, v in dist.items())]
    figures = [p for p in ("scatter.png", "residuals.png", "histograms.png", "training_curves.png",
                           "best_worst.png") if (run_dir / p).is_file()]
    lines += [""] + [f"![{p}]({p})" for p in figures]
    return "\n".join(lines) + "\n"
