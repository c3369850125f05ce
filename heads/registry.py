"""The head registry and its factory (timm's `register_model` / `create_model`, for heads).

Every head family (one file each: `mlsp_fc`, `pool3fc`, `distribution`, `baselines`) registers a
`HeadSpec` per head with `register_head(...)` after its builder. The pipeline never asks for a head by
name: what differs between heads is a field of the spec (feature kinds, target, loss, trainer, row
limit, whether it needs the store's block list), and `create_head` builds any of them with one
signature.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from features import groups as fg
from features.core.errors import UsageError
from features.core.registry import Registry
from heads.options import HeadOption, options_for

NARROW_STAGES = (1e-3, 1e-4, 1e-5)
WIDE_STAGES = (1e-4, 1e-5, 1e-6)
POOLED_KINDS = ("mlsp_narrow", "fc7", "gmp", "gap", "spp", "spp_max")
TRAINERS = ("keras", "sklearn", "personal")
RECIPE_KEYS = ("input_norm", "l2", "early_stop", "max_epochs", "patience", "batch_size", "weight_decay", "lr_stages",
               "optimizer")

Block = Tuple[str, int, int]  # (name, first channel, stop channel) inside the concatenated vector


class HeadMismatchError(UsageError):
    """A head that does not fit a store or an input (feature kind, shape, labels, blocks)."""


@dataclass(frozen=True)
class HeadSpec:
    """A trainable head.

    Attributes:
        name: registry name users type (`pool3fc`).
        builder: `builder(input_shape, *, n_bins, blocks, seed)` → a `keras.Model` (trainer "keras")
            or an unfitted scikit-learn estimator (trainer "sklearn"); `create_head` calls it.
        kinds: feature kinds the head accepts, preferred first.
        target: a registered target (`heads.targets`): "mos" (one score), "dist" (a K-bin score
            distribution; needs `labels/hist`), "binary" or "top_bottom" (classes), "mos_attributes".
        trainer: the fitting routine: "keras" (mini-batches streamed from the store, learning-rate
            stages; heads of one feature kind can share each batch) or "sklearn" (one `fit` on rows
            read into memory).
        lr_stages: the reference learning-rate stages (keras heads; None otherwise); a recipe may choose others.
        loss: loss name in `heads.losses.LOSSES` (keras heads; None otherwise).
        max_rows: most training rows the head can fit in reasonable time (None: no limit).
        needs_blocks: the builder needs the store's block list (names and channel offsets).
        needs_attributes: the builder takes `n_attributes` (heads with attribute outputs; the store needs
            `labels/attributes`).
        has_embedding: an embedding head (outputs `[score, embedding]`).
        options: the head's own options (`heads.options`), passed to the builder as keywords; its loss's
            options are the loss spec's (`head_options` gives both).
        fit_to_data: `fit_to_data(model, features, seed) -> dict` sets weights fitted on training
            features before training (e.g. content clusters); what it returns goes into the run config.
        uses_validation: the estimator's `fit(x, y, x_val=, y_val=)` tunes itself on the validation split.
        input_norm: a normalisation the head always uses (a published setting, e.g. "none"); None: the
            run's `--input-norm`.
        recipe: the head's own defaults for the training choices a run can override (`input_norm`,
            `l2`, `early_stop`, `max_epochs`, `patience`, `batch_size`, `weight_decay`; see `pipeline.training.fitting.Recipe`), set where
            measurements showed them.
        saved_types: types (`module.Name`) beyond scikit-learn's estimators that the fitted estimator holds:
            loading its saved file (no pickle, `evaluation.sklearn_files`) builds only these and sklearn's.
        description: one line for `describe-head`, the help and the run config.
        reference: paper the head follows.
    """

    name: str
    builder: Callable = field(repr=False, compare=False)
    kinds: Tuple[str, ...] = POOLED_KINDS
    target: str = "mos"
    trainer: str = "keras"
    lr_stages: Optional[Tuple[float, ...]] = NARROW_STAGES
    loss: Optional[str] = "mse"
    max_rows: Optional[int] = None
    needs_blocks: bool = False
    needs_attributes: bool = False
    has_embedding: bool = False
    options: Tuple[HeadOption, ...] = ()
    fit_to_data: Optional[Callable] = field(default=None, repr=False, compare=False)
    uses_validation: bool = False
    input_norm: Optional[str] = None
    recipe: Mapping[str, object] = field(default_factory=dict, compare=False)
    saved_types: Tuple[str, ...] = ()
    description: str = ""
    reference: str = ""

    def __post_init__(self):
        if self.trainer not in TRAINERS:
            raise ValueError(f"head {self.name!r}: trainer must be one of {TRAINERS}; received {self.trainer!r}")
        from heads.targets import TARGETS

        if self.target not in TARGETS:
            raise ValueError(f"head {self.name!r}: target must be one of {', '.join(TARGETS.names())}; "
                             f"received {self.target!r}")
        unknown = set(self.recipe) - set(RECIPE_KEYS)
        if unknown:
            raise ValueError(f"head {self.name!r}: recipe keys are {RECIPE_KEYS}; received {sorted(unknown)}")

    def check_store(self, store_kinds, has_hist: bool, kind: Optional[str] = None) -> str:
        """Picks the feature kind to train on, or refuses with what the store has and the head needs.

        Args:
            store_kinds: feature kinds the store holds.
            has_hist: whether the store has vote histograms (`labels/hist`).
            kind: the kind the user asked for (`--kind`), or None for the head's preferred one.
        Returns:
            The feature kind name.
        Raises:
            HeadMismatchError: no accepted kind in the store, or a distribution head without histograms.
        """
        refused = [p for p in fg.parts(kind) if fg.base_kind(p) not in self.kinds] if kind is not None else []
        if refused:
            raise HeadMismatchError(
                f"head {self.name!r} does not accept feature kind {refused[0]!r}; it accepts "
                f"{', '.join(self.kinds)} (of any backbone group, or joined with +)")
        if kind is not None and not fg.is_plain(kind):
            self._check_hist(has_hist)
            return kind  # a group's kind or a concatenation: the store resolves it (or names what it has)
        usable = [k for k in ([kind] if kind else self.kinds) if k in store_kinds]
        if not usable:
            raise HeadMismatchError(
                f"head {self.name!r} needs one of the feature kinds {', '.join(self.kinds)}; the store has "
                f"{', '.join(sorted(store_kinds)) or 'none'}. Extract a matching kind (iaa extract "
                f"--features ...) or pick a head for the store's kinds.")
        self._check_hist(has_hist)
        return usable[0]

    def _check_hist(self, has_hist: bool) -> None:
        if self.target == "dist" and not has_hist:
            raise HeadMismatchError(
                f"head {self.name!r} predicts score distributions and needs vote histograms "
                f"(labels/hist); this store's dataset has only mean scores. Use a MOS head.")


HEADS: Registry[HeadSpec] = Registry("head")


def register_head(spec: HeadSpec) -> HeadSpec:
    """Adds a head to the registry (one call per head, after its builder)."""
    return HEADS.register(spec)


def get_head(name: str) -> HeadSpec:
    """The head registered as `name` (a typo raises `UnknownNameError` with a suggestion)."""
    return HEADS.get(name)


def list_heads(trainer: Optional[str] = None):
    """Registered head names, sorted; only those of one trainer when given."""
    return [s.name for s in HEADS if trainer is None or s.trainer == trainer]


def head_options(spec: HeadSpec) -> Tuple[HeadOption, ...]:
    """Every option a head takes: its own (`HeadSpec.options`) and its loss's (`LossSpec.options`)."""
    from heads.losses import LOSSES

    return spec.options + (LOSSES.get(spec.loss).options if spec.loss else ())


def option_users() -> Dict[str, List[str]]:
    """{option name: the heads that take it}, for the flags' help."""
    users: Dict[str, List[str]] = {}
    for spec in HEADS:
        for option in head_options(spec):
            users.setdefault(option.name, []).append(spec.name)
    return users


def create_head(name: str | HeadSpec, *, input_shape: Sequence[int], n_bins: int = 0, blocks: Sequence[Block] = (),
                seed: int = 0, n_attributes: int = 0, options: Optional[Mapping[str, object]] = None):
    """Builds the head registered as `name` for one input.

    Args:
        name: registry name, or the spec itself (resolved once by the caller).
        input_shape: per-sample feature shape, e.g. `(16928,)` or `(5, 5, 16928)`.
        n_bins: histogram bins K (distribution heads; ignored by the others).
        blocks: `(name, start, stop)` channel ranges of the MLSP blocks (heads with `needs_blocks`).
        seed: seed of scikit-learn estimators; a Keras head's initial weights and dropout seeds are drawn
            from it and each layer's name (`heads.seeding`), whatever was built before or in which order.
        n_attributes: attribute outputs (heads with `needs_attributes`; ignored by the others).
        options: option values by name (`heads.options`); the head takes those it declares.
    Returns:
        A `keras.Model` for trainer "keras", an unfitted scikit-learn estimator for "sklearn".
    Raises:
        UnknownNameError: no such head. HeadMismatchError: an input the head cannot take.
    """
    spec = name if isinstance(name, HeadSpec) else get_head(name)
    name = spec.name
    if spec.needs_blocks and not blocks:
        raise HeadMismatchError(f"head {name!r} needs the store's block list (names and channel offsets); "
                                f"received none")
    if spec.target == "dist" and n_bins < 2:
        raise HeadMismatchError(f"head {name!r} predicts a K-bin distribution and needs K >= 2; "
                                f"received n_bins={n_bins}")
    extra = {}
    if spec.needs_attributes:
        if n_attributes < 1:
            raise HeadMismatchError(f"head {name!r} predicts attributes and needs at least one; received "
                                    f"n_attributes={n_attributes}")
        extra["n_attributes"] = int(n_attributes)
    extra.update(options_for(spec.options, options or {})[0])
    head = spec.builder(tuple(int(d) for d in input_shape), n_bins=n_bins, blocks=tuple(blocks), seed=seed, **extra)
    if spec.trainer == "keras":
        from heads.seeding import reseed_by_name

        reseed_by_name(head, seed)
    return head
