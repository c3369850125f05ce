"""What a trainer receives and returns, and the registry of trainers (`HeadSpec.trainer` names one).

`pipeline.training.train` groups the requested heads (by feature kind and trainer; Keras heads of one kind share
every batch) and hands each group to its trainer as a `FitGroup`; the trainer fits, saves each model
into its run directory and returns one `FitResult` per head. Adding a head never touches this code:
a head names a registered trainer in its spec.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np

from evaluation.rundir import RunDir
from features.core.registry import Registry
from features.store import FeatureStore
from heads.baselines import MAX_RBF_ROWS
from heads.losses import LossContext
from pipeline.training.folds import Fold
from pipeline.training.recipe import (EARLY_STOP, RECIPE_FIELDS, REFERENCE_RECIPE, Recipe,  # noqa: F401
                                      TrainError, lr_stages_of, recipe_for)


@dataclass
class TrainConfig:
    """Settings of a training run (`iaa train`; `iaa ablate` shares them across its grid).

    Attributes:
        store: feature store path.
        head: head name (`iaa train`; `run_heads` takes a list instead).
        run_dir: output directory (default `runs/<store>_<head>_seed<N>`).
        kind: feature kind to train on (default: the head's first kind in the store).
        seed: seeds weights, view draws, shuffling and dropout; runs reproduce on CPU.
        lr_stages: learning-rate stages (None: the head's, `HeadSpec.lr_stages`).
        cache: "auto", "ram" or "none" (see `features.loader.FeatureReader`).
        parallel_reads: concurrent batch reads of the loader.
        max_train_rows: scikit-learn heads use every view of every training image up to this many rows.
        input_norm, l2, early_stop, max_epochs, patience, batch_size, weight_decay, optimizer: the `Recipe` choices;
            None leaves each to the head's own default (`HeadSpec.recipe`), else the reference's.
        options: the head families' own options by name (`heads.options`: the rank margin, the triplet
            margins, the embedding size, ...), checked against their declarations; each head takes the ones it
            (or its loss) declares and ignores the others with a note.
        label: the score heads learn: "mos" (`labels/mos`) or the name of a stored attribute (a Flickr
            store's `popularity`, an AADB attribute), with that attribute's scale.
        reference_protocol: train by the MLSP paper's protocol (`REFERENCE_RECIPE`: raw input, batch 128, stages
            of 20 epochs, patience 5 on the validation loss, no penalty) instead of each head's own recipe;
            choices the run sets explicitly still apply.
        blocks: train on these MLSP blocks of the kind only (`pipeline.training.block_selection`: `last:5`,
            `first:3`, names); None: all.
        folds, fold: 0 trains on the store's split column; K >= 2 trains on fold `fold` of a K-fold
            cross-validation over every usable photo (`pipeline.training.folds`: fold `fold` tests, a tenth of the
            rest validates).
    """

    store: str
    head: str
    run_dir: Optional[str] = None
    kind: Optional[str] = None
    seed: int = 0
    batch_size: Optional[int] = None
    lr_stages: Optional[List[float]] = None
    max_epochs: Optional[int] = None
    patience: Optional[int] = None
    cache: str = "auto"
    parallel_reads: int = 4
    max_train_rows: int = MAX_RBF_ROWS
    weight_decay: Optional[float] = None
    input_norm: Optional[str] = None
    l2: Optional[float] = None
    early_stop: Optional[str] = None
    optimizer: Optional[str] = None
    options: Mapping[str, Any] = field(default_factory=dict)
    label: str = "mos"
    reference_protocol: bool = False
    folds: int = 0
    fold: int = 0
    blocks: Optional[str] = None

    def __post_init__(self):
        if self.folds:
            try:
                Fold(self.folds, self.fold)
            except ValueError as exc:
                raise TrainError(f"--folds {self.folds} --fold {self.fold}: {exc}") from None
        from heads.options import check_options

        object.__setattr__(self, "options", dict(check_options(self.options)))
        Recipe(**{k: v for k, v in self.recipe_overrides().items()})  # validates what was given

    def recipe_overrides(self) -> dict:
        """The recipe choices this run sets (the others are left to each head)."""
        return {k: getattr(self, k) for k in RECIPE_FIELDS if getattr(self, k) is not None}


def loss_context(spec, cfg: TrainConfig, store: FeatureStore, rater_columns: int = 0) -> LossContext:
    """What a head's loss is built with in this run (dataset scale and name, the loss's options, and how many
    trailing target columns are per-rater scores)."""
    from heads.losses import LOSSES
    from heads.options import options_for

    options, _ = options_for(LOSSES.get(spec.loss).options, cfg.options)
    binary = store.binary_attributes if spec.target == "mos_attributes" else ()
    return LossContext(scale=store.scale, dataset=store.identity().get("dataset") or "", options=options,
                       rater_columns=rater_columns, binary_attributes=binary)


def uses_raters(spec, cfg: TrainConfig, store: FeatureStore) -> bool:
    """Whether a head's rank pairs come from individual raters in this run (refuses "same-rater"/"both"
    on a store without rater data)."""
    from heads.losses import LOSSES

    pairs = cfg.options.get("rank_pairs", "auto")
    if not (spec.loss and LOSSES.get(spec.loss).uses_raters) or pairs == "all":
        return False
    if store.ratings is None or store.label != "mos":  # raters scored the MOS, not another label
        if store.label != "mos" and pairs != "auto":
            raise TrainError(f"--rank-pairs {pairs} orders pairs by raters' scores of the MOS; with "
                             f"--label {store.label} use --rank-pairs all (or auto)")
        if pairs == "auto":
            return False
        raise TrainError(f"--rank-pairs {pairs} needs individual ratings with rater ids; store "
                         f"{store.path} has none (aadb with AADB_AllinAll.csv, or a folder with a rater column)")
    return True


def ignored_options(spec, cfg: TrainConfig) -> list:
    """The run's options this head does not take (a note in the log, not an error)."""
    from heads import head_options
    from heads.options import options_for

    return options_for(head_options(spec), cfg.options)[1]


@dataclass
class FitGroup:
    """Heads trained together on one feature kind of one store.

    Attributes:
        cfg: the run settings.
        specs: the heads' specs.
        store: the open store.
        kind: feature kind.
        rows: store rows per split ("train", "val", "test").
        targets: per split one (n, T) float32 matrix; head j learns its columns `columns[j]`.
        columns: per head, its slice of the target columns.
        rater_columns: per head, how many trailing columns of its slice are per-rater scores (0: none).
        runs: per head, its run directory.
        log: where progress lines go.
        recipe: the heads' shared `Recipe`.
        selection: the MLSP blocks the heads read (`--blocks`), or None for the whole kind.
    """

    cfg: TrainConfig
    specs: list
    store: FeatureStore
    kind: str
    rows: Dict[str, np.ndarray]
    targets: Dict[str, np.ndarray]
    columns: List[slice]
    runs: List[RunDir]
    log: Callable[[str], None] = print
    recipe: Recipe = REFERENCE_RECIPE
    rater_columns: List[int] = field(default_factory=list)
    selection: Optional[object] = None

    def reader(self, split: str, cache: Optional[str] = None):
        """A `FeatureReader` of one split's rows (only the selected blocks' channels)."""
        from features.loader import FeatureReader

        return FeatureReader(self.store, self.kind, self.rows[split], cache or self.cfg.cache,
                             channels=None if self.selection is None else self.selection.channels)

    @property
    def blocks(self) -> list:
        """The MLSP blocks the heads see: the kind's, or the selected ones re-numbered."""
        return self.store.blocks_of(self.kind) if self.selection is None else self.selection.renumbered

    def whole_kind(self, model, wrap):
        """The model to save: `wrap(model, selection, stored shape)` when the heads read a selection."""
        return model if self.selection is None else wrap(model, self.selection, self.store.kind_shape(self.kind))


@dataclass
class FitResult:
    """One trained head: predictions per view ((n, V, out) arrays) and what the config records."""

    val_views: np.ndarray
    test_views: Optional[np.ndarray]
    seconds: float
    reader_mode: str
    trained_with: List[str]
    params: Optional[int] = None
    history: Dict[str, list] = field(default_factory=dict)
    score_scale: Optional[dict] = None


@dataclass(frozen=True)
class TrainerSpec:
    """A fitting routine.

    Attributes:
        name: the value heads give as `HeadSpec.trainer`.
        fit: `fit(group: FitGroup) -> List[FitResult]`, one result per head, models saved.
        load: `load(run: RunDir)` → the trained model saved in a run directory.
        predict: `predict(model, x)` → (m, out) float32 outputs for (m, *kind shape) float32 features;
            training's predictions and scoring new photos both go through it.
        average: `average(models)` → one model whose `predict` is the mean of the models' outputs (a seed
            ensemble, `pipeline.training.ensemble`).
        shares_batches: heads of one feature kind can be fitted in one group (one read per batch).
    """

    name: str
    fit: Callable = field(repr=False, compare=False)
    load: Callable = field(repr=False, compare=False)
    predict: Callable = field(repr=False, compare=False)
    average: Callable = field(repr=False, compare=False)
    shares_batches: bool = False


TRAINERS: Registry[TrainerSpec] = Registry("trainer")
PREDICT_CHUNK = 512  # photos per read when predicting a store's rows


def predict_store_rows(trainer: TrainerSpec, model, fs: FeatureStore, kind: str, rows: np.ndarray) -> np.ndarray:
    """(n, V, out) outputs of a trained model for every stored view of the store's `rows`, read in chunks."""
    from features.loader import FeatureReader

    reader = FeatureReader(fs, kind, rows, cache="none")
    n, n_views = len(rows), reader.n_views
    out = []
    for start in range(0, n, PREDICT_CHUNK):
        pos = np.repeat(np.arange(start, min(start + PREDICT_CHUNK, n)), n_views)
        x = reader.read(pos, np.tile(np.arange(n_views), len(pos) // n_views)).astype(np.float32)
        out.append(trainer.predict(model, x).reshape(len(pos) // n_views, n_views, -1))
    return np.concatenate(out) if out else np.zeros((0, n_views, 1), np.float32)


def register_trainer(spec: TrainerSpec) -> TrainerSpec:
    """Adds a trainer to the registry."""
    return TRAINERS.register(spec)
