"""Fitting scikit-learn heads: one `fit` on training rows read from the store into memory.

Every view of every training image is a row while that stays within `TrainConfig.max_train_rows`;
beyond it, one random view per image. A head whose spec sets `max_rows` (the RBF SVM: its fit grows
about quadratically with rows) is refused above it, naming the heads that scale.
"""
from __future__ import annotations

import time
from typing import List

import numpy as np

from evaluation.rundir import RunDir
from features.loader import fixed_views
from heads import create_head, list_heads
from heads.inputs import get_input_norm, sklearn_normaliser
from pipeline.training.block_selection import sklearn_taking_the_whole_kind
from pipeline.training.fitting import FitGroup, FitResult, TrainError, TrainerSpec, register_trainer


def training_rows(n: int, n_views: int, max_train_rows: int, max_rows, name: str, seed: int):
    """(positions, views) of the rows a head fits on.

    Raises:
        TrainError: more images than the head's `max_rows` (or `max_train_rows`, if lower).
    """
    if n * n_views <= max_train_rows:
        return np.repeat(np.arange(n), n_views), np.tile(np.arange(n_views), n)
    limit = None if max_rows is None else min(max_rows, max_train_rows)
    if limit is not None and n > limit:
        scalable = [h for h in list_heads(trainer="sklearn") if h != name]
        raise TrainError(
            f"{n:,} training images are too many for {name!r} (it would run for hours beyond about "
            f"{limit:,}); use one of the heads without a row limit instead: {', '.join(scalable)}")
    return np.arange(n), np.random.default_rng(seed).integers(0, n_views, size=n)


def predict_sklearn(model, x: np.ndarray) -> np.ndarray:
    """(m, out=1) outputs of a fitted estimator for (m, *shape) features (flattened per row).

    A classifier's output is its confidence that the photo is high, not its hard label, so its photos can be
    ranked (photo-critic sorts its test set by P(pleasing), section IV-C; Kong et al.'s "Conf" rows):
    `predict_proba` where the estimator has it (the random forest), else the logistic of `decision_function`
    (the SVMs; in the order of Platt's probabilities, which would cost an internal cross-validation). Both
    exceed 0.5 exactly where `predict` says high.
    """
    rows = np.asarray(x, np.float32).reshape(len(x), -1)
    classes = list(getattr(model, "classes_", None) if hasattr(model, "classes_") else [])
    if not classes:  # a regressor, or a seed ensemble averaging its members' outputs
        return np.asarray(model.predict(rows), np.float32).reshape(-1, 1)
    high = classes.index(1) if 1 in classes else len(classes) - 1
    if hasattr(model, "predict_proba"):
        confidence = model.predict_proba(rows)[:, high]
    else:
        margin = np.asarray(model.decision_function(rows), np.float64)
        confidence = 1.0 / (1.0 + np.exp(-(margin if high == 1 else -margin)))
    return np.asarray(confidence, np.float32).reshape(-1, 1)


def _views_of(model, group: FitGroup, split: str):
    rows = group.rows[split]
    if not len(rows):
        return None
    reader = group.reader(split)
    m = len(rows)
    preds = [predict_sklearn(model, reader.read(np.arange(m), np.full(m, v)).astype(np.float32))
             for v in range(reader.n_views)]
    return np.stack(preds, axis=1)


def _normalised(spec, group: FitGroup, x: np.ndarray):
    """(fitted normaliser or None, transformed x) for the group's input normalisation."""
    norm = get_input_norm(group.recipe.input_norm)
    normaliser = sklearn_normaliser(norm)
    if normaliser is None:
        return None, x
    return normaliser, normaliser.fit_transform(x)


def _validation_kwargs(spec, group: FitGroup, col, normaliser) -> dict:
    """x_val / y_val (one fixed view per image, as the Keras heads validate) for heads that tune on them."""
    if not spec.uses_validation:
        return {}
    rows = group.rows["val"]
    reader = group.reader("val")
    n = len(rows)
    x = reader.read(np.arange(n), fixed_views(n, reader.n_views, group.cfg.seed)).astype(np.float32).reshape(n, -1)
    return {"x_val": normaliser.transform(x) if normaliser is not None else x,
            "y_val": group.targets["val"][:, col][:, 0]}


def fit_sklearn_heads(group: FitGroup) -> List[FitResult]:
    """Fits each of the group's scikit-learn heads on its training rows and saves it (sha256 recorded).

    The head's input normalisation (its spec's, else the run's `--input-norm`) is fitted on the training
    rows and saved with the estimator as one pipeline, so predictions take raw stored features.

    Args:
        group: heads of one feature kind (fitted one after another), targets and run directories.
    Returns:
        One `FitResult` per head.
    """
    from sklearn.pipeline import make_pipeline

    cfg, log = group.cfg, group.log
    reader = group.reader("train")
    results = []
    for spec, cols, run in zip(group.specs, group.columns, group.runs):
        pos, views = training_rows(len(group.rows["train"]), reader.n_views, cfg.max_train_rows, spec.max_rows,
                                   spec.name, cfg.seed)
        x = reader.read(pos, views).astype(np.float32).reshape(len(pos), -1)
        y = group.targets["train"][:, cols][pos, 0]
        normaliser, x = _normalised(spec, group, x)
        log(f"training {spec.name} on {group.kind}: {len(pos):,} rows x {x.shape[1]:,} features, input "
            f"{group.recipe.input_norm}")
        model = create_head(spec, input_shape=x.shape[1:], seed=cfg.seed, options=cfg.options)
        t0 = time.perf_counter()
        model.fit(x, y, **_validation_kwargs(spec, group, cols, normaliser))
        seconds = time.perf_counter() - t0
        log(f"  fitted in {seconds:.1f} s")
        model = make_pipeline(normaliser, model) if normaliser is not None else model
        run.save_sklearn(group.whole_kind(model, sklearn_taking_the_whole_kind), saved_types())
        results.append(FitResult(val_views=_views_of(model, group, "val"), test_views=_views_of(model, group, "test"),
                                 seconds=seconds, reader_mode=reader.mode, trained_with=[spec.name]))
    return results


class SeedMean:
    """Fitted estimators whose `predict` is the mean of theirs (a seed ensemble; built when loaded, never saved)."""

    def __init__(self, members: list):
        self.members = list(members)

    def predict(self, x):
        """The members' mean prediction (a classifier's: its confidence, `predict_sklearn`)."""
        return np.mean([predict_sklearn(m, x)[:, 0].astype(np.float64) for m in self.members], axis=0)


def saved_types() -> List[str]:
    """Types beyond scikit-learn's that a saved head may hold: `BASE_TYPES` and every registered head's
    `saved_types` (the allow-list of `evaluation.sklearn_files`)."""
    from evaluation.sklearn_files import BASE_TYPES
    from heads import HEADS

    return sorted(set(BASE_TYPES) | {t for spec in HEADS for t in spec.saved_types})


def load_sklearn_run(run: RunDir):
    """A run's fitted estimator, loaded with the allow-list."""
    return run.load_sklearn(saved_types())


register_trainer(TrainerSpec("sklearn", fit_sklearn_heads, load_sklearn_run, predict_sklearn, SeedMean,
                             shares_batches=False))
