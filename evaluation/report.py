"""`iaa evaluate RUN_DIR`: metrics with confidence intervals, a Markdown report and PNG figures.

Reads only what training wrote into the run directory (config.json, predictions*.csv, history.csv),
so a run can be re-evaluated without its store. Test protocol: metrics on the mean prediction over all
stored views (the paper's protocol) and per view, so the gain from view averaging is visible.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from evaluation.metrics import distribution_metrics, mos_from_distribution, score_metrics


def read_predictions(path: Path) -> Optional[dict]:
    """predictions CSV → {"id", "path", "true", "pred", "dist" (or None), "true_dist" (or None)}."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    cols = list(rows[0])
    pcols = [c for c in cols if c.startswith("p") and c[1:].isdigit()]
    tcols = [c for c in cols if c.startswith("t") and c[1:].isdigit()]
    out = {"id": [r["id"] for r in rows], "path": [r.get("path", "") for r in rows],
           "true": np.array([float(r["true"]) for r in rows]), "pred": np.array([float(r["pred"]) for r in rows])}
    out["dist"] = np.array([[float(r[c]) for c in pcols] for r in rows]) if pcols else None
    out["true_dist"] = np.array([[float(r[c]) for c in tcols] for r in rows]) if tcols else None
    return out


def read_per_view(path: Path, ids) -> Optional[np.ndarray]:
    """predictions_per_view.csv → (n, V) MOS predictions in the order of `ids`."""
    if not path.is_file():
        return None
    values: Dict[str, Dict[int, float]] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        pcols = [c for c in reader.fieldnames if c.startswith("p") and c[1:].isdigit()]
        for r in reader:
            v = float(r["pred"]) if "pred" in r else float(mos_from_distribution(np.array([[float(r[c]) for c in pcols]]))[0])
            values.setdefault(r["id"], {})[int(r["view"])] = v
    n_views = max(len(v) for v in values.values())
    return np.array([[values[i][v] for v in range(n_views)] for i in ids])


def _split_metrics(pred: dict, threshold: float, binary: bool) -> dict:
    if binary:
        t = pred["true"] > threshold
        return {"n": len(t), "threshold": threshold, "accuracy": float((t == (pred["pred"] > 0.5)).mean()),
                "high_fraction": float(t.mean())}
    out = score_metrics(pred["true"], pred["pred"], threshold, ci=True)
    if pred["dist"] is not None and pred["true_dist"] is not None:
        out["distribution"] = distribution_metrics(pred["true_dist"], pred["dist"])
    return out


def evaluate_run(run_dir: str | Path, log=print) -> dict:
    from evaluation import plots

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json); run `iaa train` first")
    config = json.loads((run_dir / "config.json").read_text())
    threshold = config["threshold"]
    binary = config["head"]["target"] == "binary"
    metrics = {"head": config["head"]["name"], "kind": config["kind"], "threshold": threshold,
               "scale": config.get("scale"), "splits": config.get("splits"),
               "train_seconds": config.get("train_seconds")}
    test = read_predictions(run_dir / "predictions.csv")
    val = read_predictions(run_dir / "predictions_val.csv")
    if val is not None:
        metrics["val"] = _split_metrics(val, threshold, binary)
    if test is not None:
        metrics["test"] = _split_metrics(test, threshold, binary)
        per_view = read_per_view(run_dir / "predictions_per_view.csv", test["id"])
        if per_view is not None and not binary:
            metrics["test_per_view"] = [score_metrics(test["true"], per_view[:, v], threshold)
                                        for v in range(per_view.shape[1])]
            srccs = [m["srcc"] for m in metrics["test_per_view"] if m.get("srcc") is not None]
            if srccs and metrics["test"].get("srcc") is not None:
                metrics["view_averaging_gain_srcc"] = metrics["test"]["srcc"] - float(np.mean(srccs))
        if not binary:
            title = f"{config['head']['name']} on {config['kind']}"
            plots.scatter(test["true"], test["pred"], run_dir / "scatter.png", title, config.get("scale"))
            plots.residuals(test["true"], test["pred"], run_dir / "residuals.png", title)
            plots.histograms(test["true"], test["pred"], run_dir / "histograms.png", title)
            if any(p and Path(p).is_file() for p in test["path"]):
                plots.best_worst_grid(test, run_dir / "best_worst.png")
    history = run_dir / "history.csv"
    if history.is_file():
        with open(history, newline="") as f:
            rows = list(csv.DictReader(f))
        hist = {k: [float(r[k]) for r in rows] for k in rows[0]} if rows else {}
        if hist:
            plots.training_curves(hist, run_dir / "training_curves.png", config["head"]["name"])
    metrics["evaluated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (run_dir / "report.md").write_text(markdown_report(config, metrics, run_dir))
    return metrics


def _fmt(m: dict, key: str) -> str:
    v = m.get(key)
    if v is None:
        return "n/a"
    ci = m.get(f"{key}_ci95")
    return f"{v:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def markdown_report(config: dict, metrics: dict, run_dir: Path) -> str:
    store = config.get("store", {})
    lines = [f"# {config['head']['name']} on {config['kind']}", "",
             f"- store: `{store.get('path')}` (backbone {store.get('backbone')}, weights "
             f"{(store.get('weights') or {}).get('spec')}, views {store.get('view_set')})",
             f"- dataset splits: {config.get('splits')}; score scale {config.get('scale')}, "
             f"accuracy threshold {metrics['threshold']:g} (low = at or below)",
             f"- head: {config['head']['description']} ({config['head'].get('reference') or 'this project'}); "
             f"loss {config['head']['loss']}; parameters {config.get('params')}",
             f"- training: seed {config['train']['seed']}, batch {config['train']['batch_size']}, lr stages "
             f"{config['lr_stages']}, up to {config['train']['max_epochs']} epochs per stage, patience "
             f"{config['train']['patience']}; {config.get('train_seconds', 0) or 0:.1f} s", ""]
    lines += ["| split | n | SRCC [95% CI] | PLCC [95% CI] | accuracy | balanced acc. | high | RMSE |",
              "|---|---|---|---|---|---|---|---|"]
    for split in ("val", "test"):
        m = metrics.get(split)
        if m:
            lines.append(f"| {split} (mean over views) | {m['n']} | {_fmt(m, 'srcc')} | {_fmt(m, 'plcc')} | "
                         f"{m['accuracy']:.2%} | {m.get('balanced_accuracy', float('nan')):.2%} | "
                         f"{m['high_fraction']:.1%} | {m.get('rmse', float('nan')):.4f} |")
    for v, m in enumerate(metrics.get("test_per_view", [])):
        lines.append(f"| test view {v} | {m['n']} | {_fmt(m, 'srcc')} | {_fmt(m, 'plcc')} | {m['accuracy']:.2%} "
                     f"| {m['balanced_accuracy']:.2%} | {m['high_fraction']:.1%} | {m['rmse']:.4f} |")
    if "view_averaging_gain_srcc" in metrics:
        lines += ["", f"Averaging over views changes test SRCC by {metrics['view_averaging_gain_srcc']:+.4f} "
                      f"against the mean single-view SRCC."]
    dist = (metrics.get("test") or {}).get("distribution")
    if dist:
        lines += ["", "Distribution metrics (test): " + ", ".join(f"{k} {v:.4f}" for k, v in dist.items())]
    figures = [p for p in ("scatter.png", "residuals.png", "histograms.png", "training_curves.png",
                           "best_worst.png") if (run_dir / p).is_file()]
    lines += [""] + [f"![{p}]({p})" for p in figures]
    return "\n".join(lines) + "\n"
