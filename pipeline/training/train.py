"""Stage 2: train heads on a store's features and write self-contained run directories.

`run_heads` resolves each head's feature kind and target from its spec, groups the heads (Keras heads
of one kind share every batch read), hands each group to the trainer its spec names
(`pipeline.training.fit_keras`, `pipeline.training.fit_sklearn`), then writes predictions through `evaluation.rundir`
and evaluates each run. Nothing here depends on a head's name.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from evaluation.metrics import threshold_for_scale
from evaluation.rundir import RunDir
from features import store as st
from heads import HeadMismatchError, get_head
from heads.losses import LOSSES, get_loss, loss_settings
from heads.targets import get_target
from pipeline.training import fit_keras, fit_sklearn, personal  # noqa: F401  (trainer registration)
from pipeline.training.folds import Fold
from pipeline.training.block_selection import select_blocks
from pipeline.training.fitting import (
    TRAINERS,
    FitGroup,
    FitResult,
    Recipe,
    TrainConfig,
    TrainError,
    ignored_options,
    loss_context,
    lr_stages_of,
    recipe_for,
    uses_raters,
)

__all__ = ["TrainConfig", "TrainError", "TrainResult", "run_heads", "run_train", "default_run_dir"]


@dataclass
class TrainResult:
    """A finished run: its directory, metrics (as in metrics.json), training seconds, epoch history."""

    run_dir: str
    metrics: dict
    seconds: float
    history: Dict[str, list] = field(default_factory=dict)


def extreme_cuts(fs: st.FeatureStore, kind: str, fraction: float) -> dict:
    """photo-critic's binary task: the score cuts below and above which the bottom and top `fraction` of the
    done, labelled photos lie (over all splits: the task is defined on the dataset, then split)."""
    mos = fs.mos[(fs.status_of(kind) == st.DONE) & np.isfinite(fs.mos)]
    if len(mos) < 2:
        raise TrainError(f"store {fs.path} has {len(mos)} labelled photos; a top/bottom task needs more")
    low, high = (float(v) for v in np.quantile(mos, [fraction, 1.0 - fraction]))
    if not low < high:
        raise TrainError(f"the top and bottom {fraction:.0%} of {fs.label} meet at {low:g} (too many equal "
                         f"scores): no two classes to learn")
    return {"fraction": fraction, "low": low, "high": high}


def split_rows(fs: st.FeatureStore, kind: str, labels: set, extremes: Optional[dict] = None,
               fold: Optional[Fold] = None) -> Dict[str, np.ndarray]:
    """Rows per split whose `kind` features are done and that carry every label ("mos", "hist") in `labels`
    (only the top and bottom photos when `extremes`, from `extreme_cuts`, is given); the store's split
    column decides the split, or `fold` of a cross-validation does."""
    usable = fs.status_of(kind) == st.DONE
    if extremes:
        with np.errstate(invalid="ignore"):
            usable &= (fs.mos <= extremes["low"]) | (fs.mos >= extremes["high"])
    if "mos" in labels:
        usable &= np.isfinite(fs.mos)
    if "attributes" in labels and fs.attributes is None:
        raise TrainError(f"store {fs.path} has no attribute labels (labels/attributes); attribute heads need a "
                         f"dataset with attributes (aadb, or a folder whose labels.csv has attr_<name> columns)")
    if "hist" in labels:
        hist = fs.hist
        usable &= np.isfinite(hist).all(axis=1) & (hist.sum(axis=1) > 0)
    split = fs.split
    rows = fold.rows(usable) if fold else {s: np.flatnonzero(usable & (split == s)) for s in ("train", "val", "test")}
    for s in ("train", "val"):
        if not len(rows[s]):
            raise TrainError(
                f"store {fs.path} has no usable {s!r} images (done, labelled). Splits in the store: "
                + ", ".join(f"{name} {int(c)}" for name, c in zip(*np.unique(split, return_counts=True))))
    return rows


def target_matrix(fs: st.FeatureStore, rows: Dict[str, np.ndarray], targets: Sequence, threshold: float):
    """One (n, T) target matrix per split with every target's columns side by side.

    Args:
        targets: target names, or (name, with_raters) keys: those get the per-rater score columns of
            `heads.rank.rater_matrix` appended (rank losses ordering pairs by individual raters).
    Returns:
        (matrices per split, {target key: its column slice}).
    """
    from heads.rank import rater_matrix

    mos, hist = fs.mos, fs.hist
    blocks, columns, width = [], {}, 0
    raters = None
    for key in targets:
        name, with_raters = key if isinstance(key, tuple) else (key, False)
        spec = get_target(name)
        extra = {e: getattr(fs, e) for e in spec.extra}
        block = {s: spec.make(mos[r], None if hist is None else hist[r], threshold,
                              **{e: v[r] for e, v in extra.items()}) for s, r in rows.items()}
        if with_raters:
            raters = raters or {s: rater_matrix(fs.ratings, r) for s, r in rows.items()}
            block = {s: np.concatenate([block[s], raters[s]], axis=1) for s in block}
        columns[key] = slice(width, width + block["train"].shape[1])
        width += block["train"].shape[1]
        blocks.append(block)
    return {s: np.concatenate([b[s] for b in blocks], axis=1) for s in rows}, columns


def _config(cfg: TrainConfig, spec, fs: st.FeatureStore, kind: str, rows: dict, threshold: float,
            recipe: Recipe, raters: int = 0, extremes: Optional[dict] = None) -> dict:
    return {"train": {**asdict(cfg), "head": spec.name}, "label": fs.label, "binary_rule": extremes,
            "head": {"name": spec.name, "trainer": spec.trainer, "target": spec.target, "loss": spec.loss,
                     "classifier": get_target(spec.target).classifier,
                     "scale_free": get_target(spec.target).scale_free,
                     "loss_description": LOSSES.get(spec.loss).description if spec.loss else None,
                     "loss_settings": loss_settings(get_loss(spec.loss, loss_context(spec, cfg, fs, raters)))
                     if spec.loss else None,
                     "description": spec.description, "reference": spec.reference},
            "kind": kind, "input_norm": recipe.input_norm, "recipe": asdict(recipe),
            "lr_stages": lr_stages_of(spec, recipe) if spec.lr_stages else None,
            "store": fs.identity(), "extraction": fs.extraction(kind),
            "splits": {s: int(len(r)) for s, r in rows.items()},
            "threshold": threshold, "scale": list(fs.scale)}


def _rater_columns(fs: st.FeatureStore, rows: dict, key: tuple, columns: dict, log, batch: int) -> int:
    """How many per-rater columns a head's targets end with (0 without raters); logs how many same-rater
    pairs a random training batch holds: batches are plain shuffles, and the estimate says whether that
    gives the rank loss enough pairs (AADB: about 5 raters per photo, each rating hundreds of photos)."""
    if not key[1]:
        return 0
    from heads.rank import rater_matrix, same_rater_pairs_per_batch

    matrix = rater_matrix(fs.ratings, rows["train"])
    pairs = same_rater_pairs_per_batch(matrix, batch)
    log(f"rank pairs from {matrix.shape[1]} raters: about {pairs:,.0f} same-rater pairs per batch of {batch}"
        + ("; too few for the rank loss to matter: use --rank-pairs both" if pairs < 1 else ""))
    return int(matrix.shape[1])


def default_run_dir(store: str, head: str, seed: int) -> Path:
    """`runs/<store stem>_<head>_seed<N>`: where a run goes without `--run-dir`."""
    return Path("runs") / f"{Path(store).stem}_{head}_seed{seed}"


def _groups(specs, kinds, recipes, joint: bool) -> Dict[tuple, List[int]]:
    """Head indices per (kind, trainer, recipe, group): heads share a group when their trainer shares
    batches and their recipes agree."""
    groups: Dict[tuple, List[int]] = {}
    for i, (spec, kind, recipe) in enumerate(zip(specs, kinds, recipes)):
        shared = joint and TRAINERS.get(spec.trainer).shares_batches
        extremes = get_target(spec.target).extremes  # its own rows: never shares a group with other targets
        groups.setdefault((kind, spec.trainer, recipe, extremes, -1 if shared else i), []).append(i)
    return groups


def _write_test_ratings(run: RunDir, fs: st.FeatureStore, test_rows: np.ndarray) -> None:
    """The individual ratings of the test photos, for the report's rater agreement (`evaluation.raters`)."""
    from collections import Counter

    from evaluation.raters import RATINGS_FILE, write_ratings

    ratings = fs.ratings
    rated = Counter(ratings["rater"])
    keep = np.isin(ratings["image"], test_rows)
    write_ratings(run.file(RATINGS_FILE), fs.ids[ratings["image"][keep]], np.asarray(ratings["rater"])[keep],
                  ratings["score"][keep], rated)


def record_run(run: RunDir, spec, fs: st.FeatureStore, rows: dict, out: FitResult, log) -> TrainResult:
    """Writes a fitted head's predictions, history and config into its run directory, then its metrics,
    report and figures; returns the run's `TrainResult`.
    """
    from evaluation.report import evaluate_run

    fields = {"params": out.params, "reader_mode": out.reader_mode, "train_seconds": out.seconds,
              "trained_with": out.trained_with}
    if out.score_scale:
        fields["score_scale"] = out.score_scale
    run.update_config(**fields)
    run.write_history(out.history)
    attributes = "attributes" in get_target(spec.target).extra
    for split, views in (("val", out.val_views), ("test", out.test_views)):
        if views is not None:
            r = rows[split]
            true_hist = fs.hist[r] if spec.target == "dist" else None
            if attributes:  # column 0 is the score, the others the attributes
                run.write_attributes(split, fs.ids[r], fs.attribute_names, fs.attributes[r], views[..., 1:])
                views = views[..., :1]
            groups = None if fs.photo_groups is None else fs.photo_groups[r]
            run.write_predictions(split, fs.ids[r], fs.paths[r], fs.mos[r], views, true_hist, groups)
    if out.test_views is not None and fs.ratings is not None and fs.label == "mos":
        _write_test_ratings(run, fs, rows["test"])
    metrics = evaluate_run(run.path, log)
    return TrainResult(str(run.path), metrics, out.seconds, out.history)


def run_heads(cfg: TrainConfig, heads: Sequence[str], run_dirs: Optional[Sequence[str | Path]] = None,
              log: Callable[[str], None] = print, joint: bool = True) -> List[TrainResult]:
    """Trains several heads on one store, then writes and evaluates each run directory.

    Args:
        cfg: run settings (`cfg.head` is ignored; `heads` names them).
        heads: head names.
        run_dirs: one output directory per head (default `runs/<store>_<head>_seed<N>`).
        log: where progress lines go.
        joint: fit heads whose trainer shares batches (Keras) in one pass per feature kind.
    Returns:
        One `TrainResult` per head, in the order of `heads`.
    Raises:
        UnknownNameError, StoreError, TrainError: bad names, no store, or a head that does not fit it.
    """
    specs = [get_head(h) for h in heads]
    recipes = [recipe_for(s, cfg) for s in specs]  # a bad choice fails before any work
    for spec in specs:
        if ignored := ignored_options(spec, cfg):
            log(f"note: {spec.name} does not take {', '.join('--' + o.replace('_', '-') for o in ignored)}; ignored")
    run_dirs = [Path(d) for d in run_dirs] if run_dirs else [default_run_dir(cfg.store, s.name, cfg.seed)
                                                             for s in specs]
    results: List[Optional[TrainResult]] = [None] * len(specs)
    with st.FeatureStore(cfg.store) as opened:
        fs = opened.with_label(cfg.label)
        if cfg.label != "mos" and any(s.target == "dist" for s in specs):
            dist = ", ".join(s.name for s in specs if s.target == "dist")
            raise TrainError(f"distribution heads learn the vote histograms behind the MOS; --label {cfg.label} has "
                             f"none: pick score heads ({dist} cannot)")
        try:
            kinds = [s.check_store(fs.kinds, fs.hist is not None and cfg.label == "mos", cfg.kind) for s in specs]
        except HeadMismatchError as exc:
            raise TrainError(f"store {cfg.store}: {exc}") from None
        for (kind, trainer, recipe, fraction, _), members in _groups(specs, kinds, recipes, joint).items():
            keys = {i: (specs[i].target, uses_raters(specs[i], cfg, fs)) for i in members}
            targets = sorted(set(keys.values()))
            labels = {get_target(t).label for t, _ in targets} | {e for t, _ in targets for e in get_target(t).extra}
            extremes = extreme_cuts(fs, kind, fraction) if fraction else None
            threshold = (extremes["low"] + extremes["high"]) / 2 if extremes else threshold_for_scale(fs.scale)
            rows = split_rows(fs, kind, labels, extremes, Fold(cfg.folds, cfg.fold) if cfg.folds else None)
            matrices, columns = target_matrix(fs, rows, targets, threshold)
            selection = select_blocks(cfg.blocks, fs.blocks_of(kind), kind)
            raters = {i: _rater_columns(fs, rows, keys[i], columns, log, recipe.batch_size) for i in members}
            runs = [RunDir.create(run_dirs[i], _config(cfg, specs[i], fs, kind, rows, threshold, recipe, raters[i],
                                                       extremes)) for i in members]
            for run in runs if selection else ():
                run.update_config(block_selection=selection.record())
            group = FitGroup(cfg, [specs[i] for i in members], fs, kind, rows, matrices,
                             [columns[keys[i]] for i in members], runs, log, recipe,
                             [raters[i] for i in members], selection)
            outs = TRAINERS.get(trainer).fit(group)
            for i, run, out in zip(members, runs, outs):
                results[i] = record_run(run, specs[i], fs, rows, out, log)
    return results


def run_train(cfg: TrainConfig, log: Callable[[str], None] = print) -> TrainResult:
    """Trains `cfg.head` into `cfg.run_dir` (see `run_heads`)."""
    run_dir = cfg.run_dir or default_run_dir(cfg.store, cfg.head, cfg.seed)
    return run_heads(cfg, [cfg.head], [run_dir], log)[0]
