"""The distribution heads' losses (keras classes, imported when a loss is built or a model loads).

Reference: Murray & Gordo 2017 (APM), eq. 1: Huber loss per bin with delta = 1/sigma^2, sigma = 3, summed
over bins. Talebi & Milanfar 2018 (NIMA): EMD with r = 2 over the cumulative distributions.
"""
from __future__ import annotations

import keras
from keras import ops


def huber_dist_loss(delta: float = 1.0 / 9.0):
    """Per-bin Huber loss summed over bins (targets are l1-normalised histograms)."""
    def loss(y_true, y_pred):
        err = ops.abs(ops.cast(y_pred, "float32") - ops.cast(y_true, "float32"))
        quad = 0.5 * ops.square(err)
        lin = delta * (err - 0.5 * delta)
        return ops.sum(ops.where(err <= delta, quad, lin), axis=-1)

    loss.__name__ = "huber_dist"
    return loss


def emd_loss(r: float = 2.0):
    """Earth mover's distance between two distributions: (mean_k |CDF_true - CDF_pred|^r)^(1/r)."""
    def loss(y_true, y_pred):
        cdf_true = ops.cumsum(ops.cast(y_true, "float32"), axis=-1)
        cdf_pred = ops.cumsum(ops.cast(y_pred, "float32"), axis=-1)
        return ops.power(ops.mean(ops.power(ops.abs(cdf_true - cdf_pred), r), axis=-1), 1.0 / r)

    loss.__name__ = f"emd_r{int(r)}"
    return loss


@keras.saving.register_keras_serializable(package="iaa")
class HuberPerBin(keras.losses.Loss):
    """Huber loss per histogram bin, summed over bins (APM, Murray & Gordo 2017, eq. 1)."""

    def __init__(self, delta: float = 1.0 / 9.0, name: str = "huber_dist", **kwargs):
        super().__init__(name=name, **kwargs)
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        return huber_dist_loss(self.delta)(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


@keras.saving.register_keras_serializable(package="iaa")
class EarthMoversDistance(keras.losses.Loss):
    """EMD between score distributions over their CDFs, with exponent r (NIMA, Talebi & Milanfar 2018)."""

    def __init__(self, r: float = 2.0, name: str = "emd", **kwargs):
        super().__init__(name=name, **kwargs)
        self.r = float(r)

    def call(self, y_true, y_pred):
        return emd_loss(self.r)(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "r": self.r}


@keras.saving.register_keras_serializable(package="iaa")
class EuclideanPerBin(keras.losses.Loss):
    """Caffe's Euclidean loss between histograms, ½ Σ_bins (ŷ − y)² per photo (APM's "-dist-Eucl" models)."""

    def call(self, y_true, y_pred):
        error = keras.ops.cast(y_pred, "float32") - keras.ops.cast(y_true, "float32")
        return 0.5 * keras.ops.sum(keras.ops.square(error), axis=-1)
