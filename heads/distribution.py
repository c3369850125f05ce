"""Score-distribution heads: predict a K-bin histogram; MOS = sum_i i * p_i.

Reference: Murray & Gordo 2017 (APM): FC+ReLU → FC(K)+ReLU, Huber loss per bin (delta = 1/9),
predictions l1-normalised at evaluation. Talebi & Milanfar 2018 (NIMA): softmax(K) + EMD (r = 2).
"""
from __future__ import annotations

from typing import Sequence

from heads.base import NARROW_STAGES, WIDE_STAGES, HeadSpec, register_head
from heads.mlsp_fc import fc3
from heads.pool3fc import pool3fc_trunk

HIDDEN = 2048
DIST_KINDS = ("spp", "mlsp_narrow", "gmp", "fc7")


def _check_bins(n_bins: int) -> None:
    if n_bins < 2:
        raise ValueError(f"distribution heads need K >= 2 histogram bins, got {n_bins}")


def _unit(x):
    """L2-normalise the input vector, as APM's SPP features are: MLSP/GMP/fc7 magnitudes vary by
    backbone (hundreds for VGG16), which leaves ReLU outputs dead without it."""
    from keras import layers

    return layers.UnitNormalization(name="l2_normalise")(x)


def DistHuber(input_shape: Sequence[int], n_bins: int = 10, blocks=None):
    import keras
    from keras import layers

    _check_bins(n_bins)
    inp = keras.Input(tuple(input_shape), name="features")
    x = layers.Dense(HIDDEN, activation="relu", name="fc1")(_unit(inp))
    return keras.Model(inp, layers.Dense(n_bins, activation="relu", name="dist")(x), name="dist_huber")


def DistEMD(input_shape: Sequence[int], n_bins: int = 10, blocks=None):
    import keras
    from keras import layers

    _check_bins(n_bins)
    inp = keras.Input(tuple(input_shape), name="features")
    x = layers.Dense(HIDDEN, activation="relu", name="fc1")(_unit(inp))
    x = layers.Dropout(0.5, name="fc1_dropout")(x)
    return keras.Model(inp, layers.Dense(n_bins, activation="softmax", name="dist")(x), name="dist_emd")


def _pool3fc_dist(activation: str, name: str):
    def build(input_shape: Sequence[int], n_bins: int = 10, blocks=None):
        import keras

        _check_bins(n_bins)
        if len(input_shape) != 3:
            raise ValueError(f"{name} needs wide features (H, W, C), got shape {tuple(input_shape)}")
        inp = keras.Input(tuple(input_shape), name="features")
        return keras.Model(inp, fc3(pool3fc_trunk(inp), outputs=n_bins, activation=activation), name=name)

    return build


for _spec in (
    HeadSpec("dist_huber", "keras", DIST_KINDS, "dist", DistHuber, NARROW_STAGES, "huber_dist",
             "FC(2048)+ReLU → FC(K)+ReLU, Huber per bin (delta 1/9) summed", "Murray & Gordo 2017"),
    HeadSpec("dist_emd", "keras", DIST_KINDS, "dist", DistEMD, NARROW_STAGES, "emd",
             "FC(2048)+ReLU → dropout → softmax(K), EMD r=2 over CDFs", "Talebi & Milanfar 2018 (NIMA)"),
    HeadSpec("pool3fc_dist", "keras", ("mlsp_wide",), "dist", _pool3fc_dist("softmax", "pool3fc_dist"),
             WIDE_STAGES, "emd", "Pool-3FC trunk → softmax(K), EMD r=2", "Hosu 2019 + NIMA"),
    HeadSpec("pool3fc_dist_huber", "keras", ("mlsp_wide",), "dist",
             _pool3fc_dist("relu", "pool3fc_dist_huber"), WIDE_STAGES, "huber_dist",
             "Pool-3FC trunk → FC(K)+ReLU, Huber per bin", "Hosu 2019 + Murray & Gordo 2017"),
):
    register_head(_spec)
