"""Fitting Keras heads by the reference protocol (design.md section 8), several heads per pass.

Adam, batch 128, learning-rate stages of up to 20 epochs each, the best weights reloaded before each
stage, early stopping with patience 5 on the validation loss; a head's recipe or the run can change
the stage length, stop on validation SRCC instead, and add an L2 penalty (`pipeline.training.fitting.Recipe`). Each epoch sees every training image
once through one view drawn at random; validation uses one fixed view per image; test predictions are
made for every stored view. Heads that read the same feature kind are fitted together: each batch is
read once and one traced step runs every head's own `train_step`, with independent losses, optimisers,
stages and early stopping (a head fitted together learns exactly what it learns alone: tested).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np

from evaluation.rundir import RunDir
from features.loader import FeatureReader, feature_moments, fixed_views, make_dataset, train_plan
from heads.assembly import trainable_model
from heads.inputs import get_input_norm
from heads.losses import get_loss
from heads.targets import get_target, score_scale
from pipeline.training.fitting import (FitGroup, FitResult, TrainerSpec, loss_context, lr_stages_of,
                                       register_trainer)
from pipeline.training.block_selection import keras_taking_the_whole_kind
from pipeline.training.optimizers import build_optimizer
from pipeline.training.keras_models import (average_keras, load_keras_head, mixed_precision_if_gpu, predict_keras,
                                            predict_views, set_seeds)

FIT_TO_DATA_ROWS = 10_000
HISTORY_KEYS = ("epoch", "stage", "lr", "loss", "val_loss", "val_srcc", "seconds", "samples_per_s")


@dataclass
class _HeadState:
    """One Keras head inside a (possibly joint) fit: its own optimiser, stages and early stopping."""

    spec: object
    model: object
    stages: List[float]
    columns: slice
    run: RunDir
    writer: object
    stage: int = 0
    epochs_in_stage: int = 0
    since_best: int = 0
    best: float = np.inf  # the early-stopping criterion, lower is better
    best_weights: list = field(default_factory=list)
    active: bool = True
    loss: object = None
    loss_context: object = None
    history: Dict[str, list] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})

    def compile(self, lr: float, recipe) -> None:
        self.loss = get_loss(self.spec.loss, self.loss_context)
        optimizer = build_optimizer(recipe.optimizer, lr, recipe.weight_decay)
        self.model.compile(optimizer=optimizer, loss=self.loss)
        self.model.optimizer.build(self.model.trainable_variables)  # its slots must exist before tracing

    @property
    def lr(self) -> float:
        return self.stages[self.stage]

    def epochs_left(self, max_epochs: int) -> int:
        return max_epochs * (len(self.stages) - self.stage) - self.epochs_in_stage


def _new_head(group: FitGroup, j: int, shape: tuple, mixed: bool, moments, reader: FeatureReader) -> _HeadState:
    import tensorflow as tf

    spec, cols, run, cfg = group.specs[j], group.columns[j], group.runs[j], group.cfg
    set_seeds(cfg.seed)  # every head starts as it would alone
    raters = group.rater_columns[j] if group.rater_columns else 0
    own = group.targets["train"][:, cols]
    own = own[:, :own.shape[1] - raters]  # without the per-rater columns that only order rank pairs
    model = trainable_model(spec, input_shape=shape, train_targets=own, input_norm=group.recipe.input_norm,
                            moments=moments, l2=group.recipe.l2, n_bins=group.store.n_bins,
                            blocks=group.blocks, seed=cfg.seed,
                            n_attributes=len(group.store.attribute_names), options=cfg.options, mixed=mixed)
    if spec.fit_to_data:
        run.update_config(fitted_to_data=_fit_to_data(spec, model, reader, cfg.seed, group.log))
    state = _HeadState(spec, model, lr_stages_of(spec, group.recipe), cols, run,
                       tf.summary.create_file_writer(str(run.tensorboard_dir)),
                       loss_context=loss_context(spec, cfg, group.store, raters))
    state.best_weights = model.get_weights()
    state.compile(state.lr, group.recipe)
    return state


def _fit_to_data(spec, model, reader: FeatureReader, seed: int, log) -> dict:
    """Runs a head's `fit_to_data` on view 0 of up to `FIT_TO_DATA_ROWS` training photos (seeded draw)."""
    n = len(reader.rows)
    positions = np.sort(np.random.default_rng(seed).permutation(n)[:FIT_TO_DATA_ROWS])
    t0 = time.perf_counter()
    info = spec.fit_to_data(model, reader.read(positions, np.zeros(len(positions), np.int64)), seed)
    log(f"{spec.name}: fitted to {len(positions):,} training photos in {time.perf_counter() - t0:.1f} s: {info}")
    return info


def _input_moments(group: FitGroup, reader: FeatureReader):
    """The training split's per-channel moments (one pass, every view of every image), if the group's
    input normalisation needs them (heads of one group share their recipe)."""
    norm = get_input_norm(group.recipe.input_norm)
    if not norm.standardise:
        return None
    n, n_views = len(reader.rows), reader.n_views
    t0 = time.perf_counter()
    moments = feature_moments(reader, np.repeat(np.arange(n), n_views), np.tile(np.arange(n_views), n),
                              log1p=norm.log1p)
    group.log(f"input normalisation {norm.name}: moments of {n * n_views:,} training samples in "
              f"{time.perf_counter() - t0:.1f} s")
    return moments


def _joint_train_step(heads: List[_HeadState], x_shape: tuple, n_targets: int):
    """One traced function that runs every head's own `train_step` on the same batch: a single
    dispatch per batch however many heads there are (Keras' `train_on_batch` costs milliseconds of
    Python per call and head, more than a small head's arithmetic)."""
    import tensorflow as tf

    models, columns = [h.model for h in heads], [h.columns for h in heads]

    @tf.function(input_signature=[tf.TensorSpec((None,) + tuple(x_shape), tf.float32),
                                  tf.TensorSpec((None, n_targets), tf.float32)])
    def step(x, y):
        for model, cols in zip(models, columns):
            model.train_step((x, y[:, cols]))

    return step


def _validate(active: List[_HeadState], val_ds, n_val: int):
    """Per head: mean validation loss and SRCC (outputs and targets ranked by the target's `rank_score`)."""
    from scipy.stats import spearmanr

    sums = np.zeros(len(active))
    preds, ys = [[] for _ in active], []
    for x, y in val_ds:
        y = y.numpy()
        ys.append(y)
        for j, h in enumerate(active):
            pred = predict_keras(h.model, x)
            preds[j].append(pred)
            per_sample = h.loss.call(y[:, h.columns].astype(np.float32), pred)
            sums[j] += float(np.sum(np.asarray(per_sample)))
    y = np.concatenate(ys)
    srccs = []
    for h, pred in zip(active, preds):
        rank = get_target(h.spec.target).rank_score
        with np.errstate(invalid="ignore"):
            r = spearmanr(rank(np.concatenate(pred)), rank(y[:, h.columns])).correlation
        srccs.append(float(r) if np.isfinite(r) else 0.0)
    return sums / max(n_val, 1), np.asarray(srccs)


def _end_epoch(h: _HeadState, epoch: int, loss: float, val: tuple, dt: float, n_train: int, cfg,
               recipe) -> tuple:
    """Records the epoch, keeps the best weights, and moves to the next stage when it is time.

    Args:
        val: (validation loss, validation SRCC); `recipe.early_stop` says which one decides.

    Returns:
        (the log note, whether the head changed optimiser or stopped).
    """
    import tensorflow as tf

    val_loss, val_srcc = val
    for key, value in zip(HISTORY_KEYS, (epoch, h.stage + 1, h.lr, loss, val_loss, val_srcc, dt, n_train / dt)):
        h.history[key].append(value)
    with h.writer.as_default(step=epoch):
        tf.summary.scalar("loss", loss)
        tf.summary.scalar("val_loss", val_loss)
        tf.summary.scalar("val_srcc", val_srcc)
        tf.summary.scalar("learning_rate", h.lr)
    criterion = val_loss if recipe.early_stop == "loss" else -val_srcc
    improved = criterion < h.best
    if improved:
        h.best, h.best_weights, h.since_best = criterion, h.model.get_weights(), 0
    else:
        h.since_best += 1
    h.epochs_in_stage += 1
    note = (f"{h.spec.name} s{h.stage + 1} lr {h.lr:g} loss {loss:.4f} val {val_loss:.4f} "
            f"SRCC {val_srcc:.3f}{' *' if improved else ''}")
    if h.since_best < recipe.patience and h.epochs_in_stage < recipe.max_epochs:
        return note, False
    h.stage += 1
    h.model.set_weights(h.best_weights)  # every stage starts from the best weights
    if h.stage == len(h.stages):
        h.active = False
    else:
        h.compile(h.lr, recipe)
        h.epochs_in_stage = h.since_best = 0
    return note, True


def fit_keras_heads(group: FitGroup) -> List[FitResult]:
    """Fits the group's Keras heads in one pass per epoch over the training split.

    Args:
        group: heads of one feature kind, their targets and run directories.
    Returns:
        One `FitResult` per head (validation and test predictions per view); models are saved.
    """
    cfg, kind, log = group.cfg, group.kind, group.log
    mixed = mixed_precision_if_gpu()
    train_reader, val_reader = group.reader("train"), group.reader("val")
    shape = train_reader.sample_shape
    n_train, n_val, n_views = len(group.rows["train"]), len(group.rows["val"]), train_reader.n_views
    moments = _input_moments(group, train_reader)
    heads = [_new_head(group, j, shape, mixed, moments, train_reader) for j in range(len(group.specs))]
    val_ds = make_dataset(val_reader, np.arange(n_val), fixed_views(n_val, n_views, cfg.seed), group.targets["val"],
                          group.recipe.batch_size, cfg.parallel_reads)
    log(f"training {', '.join(h.spec.name for h in heads)} on {kind} {shape}: {n_train} train / {n_val} val "
        f"images x {n_views} views, reader {train_reader.mode}, batch {group.recipe.batch_size}, "
        + "; ".join(f"{h.spec.name} {h.model.count_params():,} parameters, lr {h.stages}" for h in heads))
    epoch, step, t_start = 0, None, time.perf_counter()
    while any(h.active for h in heads):
        active = [h for h in heads if h.active]
        order, views = train_plan(n_train, n_views, cfg.seed, epoch)
        if step is None:  # first epoch, or a head finished or began a new stage (a new optimiser)
            step = _joint_train_step(active, shape, group.targets["train"].shape[1])
        for h in active:
            h.model.reset_metrics()  # the loss tracker then holds this epoch's sample-weighted mean
        t0 = time.perf_counter()
        for x, y in make_dataset(train_reader, order, views, group.targets["train"][order], group.recipe.batch_size,
                                 cfg.parallel_reads):
            step(x, y)
        dt = time.perf_counter() - t0
        val_losses, val_srccs = _validate(active, val_ds, n_val)
        epoch += 1
        notes = []
        for h, val_loss, val_srcc in zip(active, val_losses, val_srccs):
            loss = float(h.model.get_metrics_result()["loss"])
            note, changed = _end_epoch(h, epoch, loss, (float(val_loss), float(val_srcc)), dt, n_train, cfg,
                                       group.recipe)
            notes.append(note)
            step = None if changed else step
        left = max([h.epochs_left(group.recipe.max_epochs) for h in heads if h.active], default=0)
        log(f"  epoch {epoch}: " + " | ".join(notes) + f"  ({n_train / dt:,.0f} samples/s, {dt:.1f} s; "
            f"at most {left * dt:.0f} s left)")
    seconds = time.perf_counter() - t_start
    return _finish(group, heads, val_reader, train_reader.mode, seconds)


def _finish(group: FitGroup, heads: List[_HeadState], val_reader, reader_mode: str, seconds: float):
    cfg = group.cfg
    models = [h.model for h in heads]
    val_pred = predict_views(models, val_reader, group.recipe.batch_size, cfg.parallel_reads)
    test_pred = [None] * len(models)
    if len(group.rows["test"]):
        test_reader = group.reader("test")
        test_pred = predict_views(models, test_reader, group.recipe.batch_size, cfg.parallel_reads)
    results = []
    for j, h in enumerate(heads):
        h.run.save_keras(group.whole_kind(h.model, keras_taking_the_whole_kind))
        h.writer.close()
        results.append(FitResult(val_views=val_pred[j], test_views=test_pred[j], seconds=seconds,
                                 reader_mode=reader_mode, trained_with=[x.spec.name for x in heads],
                                 params=int(h.model.count_params()), history=h.history,
                                 score_scale=score_scale(h.model)))
    return results


register_trainer(TrainerSpec("keras", fit_keras_heads, load_keras_head, predict_keras, average_keras,
                             shares_batches=True))
