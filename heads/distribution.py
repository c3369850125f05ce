"""Score-distribution heads: predict a K-bin histogram; MOS = sum_i i * p_i.

Reference: Murray & Gordo 2017 (APM): FC+ReLU → FC(K)+ReLU, Huber loss per bin (delta = 1/9),
predictions l1-normalised at evaluation. Talebi & Milanfar 2018 (NIMA): softmax(K) + EMD (r = 2).
"""
from __future__ import annotations

from typing import Sequence

from heads.losses import LossContext, LossSpec, register_loss
from heads.mlsp_fc import fc3
from heads.pool3fc import check_wide, pool3fc_trunk
from heads.registry import NARROW_STAGES, WIDE_STAGES, Block, HeadSpec, register_head

HUBER_SIGMA = 3.0
AVA_SPAN = 9.0  # APM chose σ on AVA's 1-10 scores

HIDDEN = 2048  # NIMA-style head (its own paper has no hidden layer; kept from the first release)
APM_HIDDEN = 4096  # APM, figure 2: 18,432-dim SPP vector → FC(4096)+ReLU → FC(10)+ReLU
DIST_KINDS = ("spp", "spp_max", "mlsp_narrow", "gmp", "fc7")


def _unit(x):
    """L2-normalise the input vector, as APM's SPP features are: MLSP/GMP/fc7 magnitudes vary by
    backbone (hundreds for VGG16), which leaves ReLU outputs dead without it. In float32 under mixed
    precision too: float16 squares of such features overflow, and its epsilon underflows to 0."""
    from keras import layers

    return layers.UnitNormalization(name="l2_normalise", dtype="float32")(x)


def DistHuber(input_shape: Sequence[int], *, n_bins: int = 10, blocks: Sequence[Block] = (), seed: int = 0):
    """APM's distribution head: L2-normalised input → FC(4096)+ReLU → FC(K)+ReLU.

    Reference: Murray & Gordo 2017, section 3.2 and figure 2 (trained with the per-bin Huber loss).

    Args:
        input_shape: `(D,)`, a pooled feature vector (SPP, narrow MLSP, GMP or fc7).
        n_bins: K, the histogram bins of the store.
        blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "dist_huber" with K non-negative outputs.
    """
    import keras
    from keras import layers

    inp = keras.Input(tuple(input_shape), name="features")
    x = layers.Dense(APM_HIDDEN, activation="relu", name="fc1")(_unit(inp))
    return keras.Model(inp, layers.Dense(n_bins, activation="relu", name="dist")(x), name="dist_huber")


def DistEMD(input_shape: Sequence[int], *, n_bins: int = 10, blocks: Sequence[Block] = (), seed: int = 0):
    """NIMA-style head: L2-normalised input → FC(2048)+ReLU → dropout 0.5 → softmax(K).

    Reference: Talebi & Milanfar 2018 (NIMA), trained with EMD (r = 2) over the CDFs.

    Args:
        input_shape: `(D,)`, a pooled feature vector.
        n_bins: K, the histogram bins of the store.
        blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "dist_emd" whose K outputs sum to 1.
    """
    import keras
    from keras import layers

    inp = keras.Input(tuple(input_shape), name="features")
    x = layers.Dense(HIDDEN, activation="relu", name="fc1")(_unit(inp))
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    return keras.Model(inp, layers.Dense(n_bins, activation="softmax", name="dist")(x), name="dist_emd")


def MeanHuber(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0):
    """APM's "-mean" variant: the `dist_huber` architecture with one output, the mean score, trained with
    the Huber loss (the paper's VGG-ImN-mean), beside the distribution heads for its dist-vs-mean table.

    Reference: Murray & Gordo 2017, section 4 (the "-mean" models).

    Args:
        input_shape: `(D,)`, a pooled feature vector (SPP, narrow MLSP, GMP or fc7).
        n_bins, blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "mean_huber" with one output (linear: it is rescaled to the score scale).
    """
    import keras
    from keras import layers

    inp = keras.Input(tuple(input_shape), name="features")
    x = layers.Dense(APM_HIDDEN, activation="relu", name="fc1")(_unit(inp))
    return keras.Model(inp, layers.Dense(1, name="score")(x), name="mean_huber")


def _pool3fc_dist(input_shape, n_bins: int, activation: str, name: str):
    import keras

    check_wide(name, input_shape)
    inp = keras.Input(tuple(input_shape), name="features")
    return keras.Model(inp, fc3(pool3fc_trunk(inp), outputs=n_bins, activation=activation), name=name)


def Pool3FCDist(input_shape: Sequence[int], *, n_bins: int = 10, blocks: Sequence[Block] = (), seed: int = 0):
    """The Pool-3FC trunk on wide MLSP features with a softmax(K) output (trained with EMD).

    Reference: Hosu et al. 2019 (trunk) + Talebi & Milanfar 2018 (output and loss).
    """
    return _pool3fc_dist(input_shape, n_bins, "softmax", "pool3fc_dist")


def Pool3FCDistHuber(input_shape: Sequence[int], *, n_bins: int = 10, blocks: Sequence[Block] = (),
                     seed: int = 0):
    """The Pool-3FC trunk on wide MLSP features with an FC(K)+ReLU output (per-bin Huber loss).

    Reference: Hosu et al. 2019 (trunk) + Murray & Gordo 2017 (output and loss).
    """
    return _pool3fc_dist(input_shape, n_bins, "relu", "pool3fc_dist_huber")


for _spec in (
    HeadSpec("dist_huber", DistHuber, DIST_KINDS, "dist", "keras", NARROW_STAGES, "huber_dist",
             description="FC(4096)+ReLU → FC(K)+ReLU, Huber per bin (delta 1/9) summed",
             reference="Murray & Gordo 2017"),
    HeadSpec("mean_huber", MeanHuber, DIST_KINDS, "mos", "keras", NARROW_STAGES, "huber_mean",
             description="FC(4096)+ReLU → FC(1): the mean score, Huber loss (APM's -mean variant)",
             reference="Murray & Gordo 2017"),
    HeadSpec("dist_mse", DistHuber, DIST_KINDS, "dist", "keras", NARROW_STAGES, "euclidean_dist",
             description="dist_huber's architecture trained with the Euclidean loss over bins (APM's -dist-Eucl)",
             reference="Murray & Gordo 2017, Table 1"),
    HeadSpec("dist_emd", DistEMD, DIST_KINDS, "dist", "keras", NARROW_STAGES, "emd",
             description="FC(2048)+ReLU → dropout → softmax(K), EMD r=2 over CDFs",
             reference="Talebi & Milanfar 2018 (NIMA)"),
    HeadSpec("pool3fc_dist", Pool3FCDist, ("mlsp_wide",), "dist", "keras", WIDE_STAGES, "emd",
             description="Pool-3FC trunk → softmax(K), EMD r=2", reference="Hosu 2019 + NIMA"),
    HeadSpec("pool3fc_dist_huber", Pool3FCDistHuber, ("mlsp_wide",), "dist", "keras", WIDE_STAGES, "huber_dist",
             description="Pool-3FC trunk → FC(K)+ReLU, Huber per bin", reference="Hosu 2019 + Murray & Gordo 2017"),
):
    register_head(_spec)


def _huber_per_bin(context: LossContext):
    from heads.distribution_loss import HuberPerBin

    return HuberPerBin(1.0 / HUBER_SIGMA**2)


def _huber_mean(context: LossContext):
    """APM's Huber loss on the mean score: δ = 1/σ² (σ = 3) on AVA's 1-10 scale, scaled with the
    dataset's scale span (so the same share of the scale counts as an outlier on 0-1 or 0-100)."""
    from heads.distribution_loss import HuberPerBin

    span = context.scale[1] - context.scale[0]
    return HuberPerBin(1.0 / HUBER_SIGMA**2 * span / AVA_SPAN, name="huber_mean")


def _euclidean_dist(context: LossContext):
    from heads.distribution_loss import EuclideanPerBin

    return EuclideanPerBin(name="euclidean_dist")


def _emd(context: LossContext):
    from heads.distribution_loss import EarthMoversDistance

    return EarthMoversDistance(2.0)


register_loss(LossSpec("huber_dist", _huber_per_bin,
                       "Huber per bin, delta = 1/9, summed over bins (Murray & Gordo 2017, eq. 1)"))
register_loss(LossSpec("huber_mean", _huber_mean,
                       "Huber on the mean score, delta = 1/9 on a 1-10 scale, scaled with the dataset's scale "
                       "(Murray & Gordo 2017, the -mean variant)"))
register_loss(LossSpec("emd", _emd, "EMD r = 2 over the CDFs (Talebi & Milanfar 2018)"))
register_loss(LossSpec("euclidean_dist", _euclidean_dist,
                       "Euclidean loss between histograms, 1/2 sum of squared bin errors (Murray & Gordo 2017's "
                       "-dist-Eucl)"))
