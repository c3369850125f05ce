"""Losses of the Keras heads, in a registry (`LossSpec.build()` → a serialisable `keras.losses.Loss`;
its `call(y_true, y_pred)` gives one value per sample).

Reference: Hosu et al. 2019: MSE on the MOS. Murray & Gordo 2017 (APM), eq. 1: Huber loss per bin with
delta = 1/sigma^2, sigma = 3, summed over bins. Talebi & Milanfar 2018 (NIMA): EMD with r = 2 over the
cumulative distributions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

from features.registry import Registry

HUBER_SIGMA = 3.0
AVA_SPAN = 9.0  # APM chose σ on AVA's 1-10 scores


@dataclass(frozen=True)
class LossContext:
    """What a loss may depend on beyond its name: the run's dataset and the user's loss options.

    Attributes:
        scale: (low, high) of the dataset's score scale.
        dataset: dataset name (published settings differ per dataset, e.g. Kong et al.'s rank margin).
        rank_margin, rank_weight: α and ω_r of the rank loss (None: the published values).
        rank_min_gap: pairs closer than this (scores rescaled to [0, 1]) are left out of the rank loss.
        attribute_weight: ω_a of attribute outputs (None: Kong et al.'s 0.1).
        rater_columns: R trailing target columns of per-rater scores (0: pairs by mean score).
        rank_pairs: with raters, "same-rater" or "both" (same-rater pairs plus the other pairs).
        triplet_margin, direction_margin: m and m̃ of the directional triplet loss (None: `heads.triplet`'s).
    """

    scale: Tuple[float, float] = (0.0, 1.0)
    dataset: str = ""
    rank_margin: Optional[float] = None
    rank_weight: Optional[float] = None
    rank_min_gap: float = 0.0
    attribute_weight: Optional[float] = None
    rater_columns: int = 0
    rank_pairs: str = "same-rater"
    triplet_margin: Optional[float] = None
    direction_margin: Optional[float] = None


@dataclass(frozen=True)
class LossSpec:
    """A loss heads name in their spec (`HeadSpec.loss`).

    Attributes:
        name: registry name.
        build: `build(context: LossContext)` → a `keras.losses.Loss` (serialisable, so saved models load
            compiled).
        description: one line for the run config.
        uses_raters: the loss can order pairs by individual raters' scores (trailing target columns).
    """

    name: str
    build: Callable = field(repr=False, compare=False)
    description: str = ""
    uses_raters: bool = False


LOSSES: Registry[LossSpec] = Registry("loss")


def register_loss(spec: LossSpec) -> LossSpec:
    """Adds a loss to the registry."""
    return LOSSES.register(spec)


def huber_dist_loss(delta: float = 1.0 / HUBER_SIGMA**2):
    """Per-bin Huber loss summed over bins (targets are l1-normalised histograms)."""
    from keras import ops

    def loss(y_true, y_pred):
        err = ops.abs(ops.cast(y_pred, "float32") - ops.cast(y_true, "float32"))
        quad = 0.5 * ops.square(err)
        lin = delta * (err - 0.5 * delta)
        return ops.sum(ops.where(err <= delta, quad, lin), axis=-1)

    loss.__name__ = "huber_dist"
    return loss


def emd_loss(r: float = 2.0):
    """Earth mover's distance between two distributions: (mean_k |CDF_true - CDF_pred|^r)^(1/r)."""
    from keras import ops

    def loss(y_true, y_pred):
        cdf_true = ops.cumsum(ops.cast(y_true, "float32"), axis=-1)
        cdf_pred = ops.cumsum(ops.cast(y_pred, "float32"), axis=-1)
        return ops.power(ops.mean(ops.power(ops.abs(cdf_true - cdf_pred), r), axis=-1), 1.0 / r)

    loss.__name__ = f"emd_r{int(r)}"
    return loss


def get_loss(name: str, context: Optional[LossContext] = None):
    """A fresh `keras.losses.Loss` of the loss registered as `name`, for a run's `context`."""
    return LOSSES.get(name).build(context or LossContext())


def loss_settings(loss) -> dict:
    """What a built loss was configured with (recorded in the run config)."""
    config = dict(loss.get_config()) if hasattr(loss, "get_config") else {}
    return {k: v for k, v in config.items() if k not in ("reduction", "dtype")}


def _mse(context: LossContext):
    import keras

    return keras.losses.MeanSquaredError(name="mse")


def _huber_per_bin(context: LossContext):
    from heads.layers import HuberPerBin

    return HuberPerBin(1.0 / HUBER_SIGMA**2)


def _huber_mean(context: LossContext):
    """APM's Huber loss on the mean score: δ = 1/σ² (σ = 3) on AVA's 1-10 scale, scaled with the
    dataset's scale span (so the same share of the scale counts as an outlier on 0-1 or 0-100)."""
    from heads.layers import HuberPerBin

    span = context.scale[1] - context.scale[0]
    return HuberPerBin(1.0 / HUBER_SIGMA**2 * span / AVA_SPAN, name="huber_mean")


def _reg_rank(context: LossContext):
    from heads.layers import RegRankLoss
    from heads.rank import ATTRIBUTE_WEIGHT, rank_settings

    paper = rank_settings(context.dataset)
    margin = paper.margin if context.rank_margin is None else context.rank_margin
    weight = paper.weight if context.rank_weight is None else context.rank_weight
    attribute_weight = ATTRIBUTE_WEIGHT if context.attribute_weight is None else context.attribute_weight
    return RegRankLoss(margin, weight, *context.scale, min_gap=context.rank_min_gap,
                       attribute_weight=attribute_weight, rater_columns=context.rater_columns,
                       pairs=context.rank_pairs)


def _directional_triplet(context: LossContext):
    from heads.layers import DirectionalTripletLoss
    from heads.triplet import DIRECTION_MARGIN, TRIPLET_MARGIN

    return DirectionalTripletLoss(TRIPLET_MARGIN if context.triplet_margin is None else context.triplet_margin,
                                  DIRECTION_MARGIN if context.direction_margin is None else context.direction_margin)


def _emd(context: LossContext):
    from heads.layers import EarthMoversDistance

    return EarthMoversDistance(2.0)


register_loss(LossSpec("mse", _mse, "mean squared error on the score (Hosu et al. 2019)"))
register_loss(LossSpec("huber_dist", _huber_per_bin,
                       "Huber per bin, delta = 1/9, summed over bins (Murray & Gordo 2017, eq. 1)"))
register_loss(LossSpec("huber_mean", _huber_mean,
                       "Huber on the mean score, delta = 1/9 on a 1-10 scale, scaled with the dataset's scale "
                       "(Murray & Gordo 2017, the -mean variant)"))
register_loss(LossSpec("reg_rank", _reg_rank,
                       "squared error + ω_r × pairwise hinge rank loss within the batch, on scores rescaled "
                       "to [0, 1] (Kong et al. 2016, eq. 1-2)", uses_raters=True))
register_loss(LossSpec("directional_triplet", _directional_triplet,
                       "triplet loss on the unit-norm embedding + direction hinge on the norms, over the batch's "
                       "triplets that pass the 0.7 rejection rule (Schwarz et al. 2018, eq. 2-3)"))
register_loss(LossSpec("emd", _emd, "EMD r = 2 over the CDFs (Talebi & Milanfar 2018)"))
