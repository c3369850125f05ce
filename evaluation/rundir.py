"""The run directory: the one owner of its file formats (training writes through it, evaluation and
prediction read through it).

    config.json               everything resolved for the run (head, store identity, splits, training)
    model.keras | model.skops   the trained head (Keras safe mode; skops with an allow-list, sha256 checked)
    history.csv               one row per epoch (Keras heads)
    predictions.csv           test: id, path, true, pred (+ p1..pK, t1..tK for distribution heads)
    predictions_val.csv       the same for validation
    predictions_per_view.csv  test: id, view, pred (or p1..pK)
    metrics.json  report.md  *.png  tensorboard/

A run directory is self-describing: it can be re-evaluated (and later scored from) without its store.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from evaluation import sklearn_files
from evaluation.metrics import mos_from_distribution
from features.core.errors import IAAError

PREDICTION_FILES = {"test": "predictions.csv", "val": "predictions_val.csv"}
ATTRIBUTE_FILES = {"test": "attributes.csv", "val": "attributes_val.csv"}


def summarise_views(views: np.ndarray, dist: bool):
    """A head's per-view outputs → what a photo gets: the test protocol's mean over views.

    Args:
        views: (n, V, out) outputs; out = K for distribution heads, else 1.
        dist: the outputs are K-bin distributions.
    Returns:
        (score (n,), spread (n,) = std of the per-view scores, distribution (n, K) l1-normalised or None).
    """
    views = np.asarray(views, np.float64)
    mean = views.mean(axis=1)
    if not dist:
        return mean[:, 0], views[..., 0].std(axis=1), None
    d = np.clip(mean, 0, None)
    return (mos_from_distribution(mean), mos_from_distribution(views).std(axis=1),
            d / np.maximum(d.sum(axis=1, keepdims=True), 1e-12))


def _csv_rows(path: Path) -> list:
    """A CSV file's rows as dicts ([] when the file is absent)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class RunDirError(IAAError):
    """A directory that is not a run directory, or a run file that is missing or changed."""


class RunDir:
    """Reads and writes one run directory.

    Args:
        path: the directory.

    Example:
        run = RunDir.open("runs/demo_single3fc_seed0")
        test = run.read_predictions("test")      # {"id", "path", "true", "pred", "dist", "true_dist"}
    """

    CONFIG = "config.json"
    KERAS_MODEL = "model.keras"
    HISTORY = "history.csv"
    PER_VIEW = "predictions_per_view.csv"
    METRICS = "metrics.json"
    REPORT = "report.md"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._config: Optional[dict] = None

    # config ----------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: dict) -> "RunDir":
        """Makes the directory (if needed) and writes its config."""
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        run._config = dict(config)
        run._write_config()
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        """An existing run directory; refuses anything without a readable config.json."""
        run = cls(path)
        if not (run.path / cls.CONFIG).is_file():
            raise RunDirError(f"{run.path} is not a run directory (no {cls.CONFIG}); give a directory written "
                              f"by `iaa train` or `iaa ablate`")
        run.config  # noqa: B018  (parse now: a damaged file is reported here, in one line)
        return run

    @property
    def config(self) -> dict:
        if self._config is None:
            path = self.path / self.CONFIG
            try:
                self._config = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise RunDirError(f"{path} is not valid JSON ({exc}); the run directory is damaged: "
                                  f"retrain it or restore the file") from None
        return self._config

    def update_config(self, **fields) -> None:
        """Adds or replaces top-level config fields and writes the file once."""
        self.config.update(fields)
        self._write_config()

    def _write_config(self) -> None:
        (self.path / self.CONFIG).write_text(json.dumps(self._config, indent=2, default=str))

    # files -----------------------------------------------------------------------------------
    def file(self, name: str) -> Path:
        """Path of a file inside the run directory (figures, models)."""
        return self.path / name

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    def write_history(self, history: Dict[str, list]) -> None:
        """One row per epoch; nothing is written for heads without epochs."""
        if not history.get("epoch"):
            return
        with open(self.path / self.HISTORY, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(list(history))
            w.writerows(zip(*history.values()))

    def read_history(self) -> Optional[Dict[str, List[float]]]:
        path = self.path / self.HISTORY
        if not path.is_file():
            return None
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return {k: [float(r[k]) for r in rows] for k in rows[0]} if rows else None

    def write_metrics(self, metrics: dict) -> None:
        (self.path / self.METRICS).write_text(json.dumps(metrics, indent=2))

    def read_metrics(self) -> Optional[dict]:
        path = self.path / self.METRICS
        return json.loads(path.read_text()) if path.is_file() else None

    def write_report(self, text: str) -> None:
        (self.path / self.REPORT).write_text(text)

    # predictions -----------------------------------------------------------------------------
    def write_predictions(self, split: str, ids: Sequence[str], paths: Sequence[str], truth: np.ndarray,
                          views: np.ndarray, true_hist: Optional[np.ndarray] = None,
                          groups: Optional[Sequence[str]] = None) -> None:
        """Writes a split's mean-over-views predictions (and, for test, every view's).

        Args:
            split: "val" or "test".
            ids, paths, truth: per image.
            views: (n, V, out) predictions per view; out = K for distribution heads, else 1.
            true_hist: (n, K) true histograms of distribution heads (None for score heads).
            groups: per image its group, when the store names groups (a `group` column).
        """
        dist = true_hist is not None
        k = views.shape[-1]
        mos, _, pred_dist = summarise_views(views, dist)
        header = ["id", "path", "true", "pred"] + (["group"] if groups is not None else [])
        header += [f"p{i + 1}" for i in range(k)] + [f"t{i + 1}" for i in range(k)] if dist else []
        with open(self.path / PREDICTION_FILES[split], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for i in range(len(ids)):
                extra = []
                if dist:
                    extra = [f"{x:.6g}" for x in pred_dist[i]]
                    extra += [f"{x:.6g}" for x in true_hist[i] / max(true_hist[i].sum(), 1e-12)]
                group = [groups[i]] if groups is not None else []
                w.writerow([ids[i], paths[i], f"{truth[i]:.6g}", f"{mos[i]:.6g}"] + group + extra)
        if split == "test":
            self._write_per_view(ids, views, dist)

    def _write_per_view(self, ids, views: np.ndarray, dist: bool) -> None:
        k = views.shape[-1]
        with open(self.path / self.PER_VIEW, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "view"] + ([f"p{i + 1}" for i in range(k)] if dist else ["pred"]))
            for i in range(len(ids)):
                for v in range(views.shape[1]):
                    w.writerow([ids[i], v] + [f"{x:.6g}" for x in views[i, v]])

    def write_attributes(self, split: str, ids: Sequence[str], names: Sequence[str], truth: np.ndarray,
                         views: np.ndarray) -> None:
        """Writes a split's attribute predictions (mean over views) beside the truth (empty: not annotated).

        Args:
            split: "val" or "test".
            ids: per image.
            names: the A attribute names.
            truth: (n, A) true attributes, NaN where not annotated.
            views: (n, V, A) predictions per view.
        """
        pred = np.asarray(views, np.float64).mean(axis=1)
        with open(self.path / ATTRIBUTE_FILES[split], "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id"] + [f"true_{a}" for a in names] + [f"pred_{a}" for a in names])
            for i in range(len(ids)):
                w.writerow([ids[i]] + ["" if np.isnan(x) else f"{x:.6g}" for x in truth[i]]
                           + [f"{x:.6g}" for x in pred[i]])

    def read_attributes(self, split: str) -> Optional[dict]:
        """{name: (true (n,), pred (n,))} with NaN truth where not annotated, or None."""
        rows = _csv_rows(self.path / ATTRIBUTE_FILES[split])
        if not rows:
            return None
        names = [c[len("true_"):] for c in rows[0] if c.startswith("true_")]
        return {a: (np.array([float(r[f"true_{a}"]) if r[f"true_{a}"] else np.nan for r in rows]),
                    np.array([float(r[f"pred_{a}"]) for r in rows])) for a in names}

    def read_predictions(self, split: str) -> Optional[dict]:
        """A split's predictions: {"id", "path", "true", "pred", "group", "dist", "true_dist"} (the last three
        None when the run has no groups or is not a distribution head)."""
        rows = _csv_rows(self.path / PREDICTION_FILES[split])
        if not rows:
            return None
        cols = list(rows[0])
        pcols = [c for c in cols if c.startswith("p") and c[1:].isdigit()]
        tcols = [c for c in cols if c.startswith("t") and c[1:].isdigit()]
        return {"id": [r["id"] for r in rows], "path": [r.get("path", "") for r in rows],
                "true": np.array([float(r["true"]) for r in rows]),
                "pred": np.array([float(r["pred"]) for r in rows]),
                "group": [r["group"] for r in rows] if "group" in cols else None,
                "dist": np.array([[float(r[c]) for c in pcols] for r in rows]) if pcols else None,
                "true_dist": np.array([[float(r[c]) for c in tcols] for r in rows]) if tcols else None}

    def read_per_view(self, ids: Sequence[str]) -> Optional[np.ndarray]:
        """(n, V) test MOS predictions per view, in the order of `ids`."""
        path = self.path / self.PER_VIEW
        if not path.is_file():
            return None
        values: Dict[str, Dict[int, float]] = {}
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            pcols = [c for c in reader.fieldnames if c.startswith("p") and c[1:].isdigit()]
            for r in reader:
                if "pred" in r:
                    v = float(r["pred"])
                else:
                    v = float(mos_from_distribution(np.array([[float(r[c]) for c in pcols]]))[0])
                values.setdefault(r["id"], {})[int(r["view"])] = v
        n_views = max(len(v) for v in values.values())
        return np.array([[values[i][v] for v in range(n_views)] for i in ids])

    # models ----------------------------------------------------------------------------------
    def save_keras(self, model) -> None:
        model.save(self.path / self.KERAS_MODEL)

    def load_keras(self):
        """The trained Keras head (safe mode: no Lambda layers are deserialised). The head's own layers must be
        registered first (`heads.layers` is imported by every Keras head family)."""
        import keras

        path = self.path / self.KERAS_MODEL
        if not path.is_file():
            raise RunDirError(f"{path} is missing: the run did not finish training; retrain it")
        return keras.saving.load_model(path, compile=False, safe_mode=True)

    def save_sklearn(self, model, allowed: Sequence[str]) -> str:
        """Saves a fitted estimator without pickle (`evaluation.sklearn_files`; `allowed`: the types beyond
        scikit-learn's it may hold), its sha256 in the config."""
        digest = sklearn_files.save(model, self.path / sklearn_files.MODEL_FILE, allowed)
        self.update_config(model_sha256=digest)
        return digest

    def load_sklearn(self, allowed: Sequence[str]):
        """The fitted estimator, if its file has the sha256 recorded at training and names only scikit-learn's
        and `allowed` types; a run holding only a pickle (`model.joblib`) is refused, saying how to convert it."""
        path = self.path / sklearn_files.MODEL_FILE
        if not path.is_file() and (self.path / sklearn_files.LEGACY_FILE).is_file():
            sklearn_files.refuse_legacy(self.path)
        return sklearn_files.load(path, self.config.get("model_sha256") or "", allowed)
