"""Losses of the distribution heads.

Reference: Murray & Gordo 2017 (APM), eq. 1: Huber loss per bin with delta = 1/sigma^2, sigma = 3,
summed over bins. Talebi & Milanfar 2018 (NIMA): EMD with r = 2 over the cumulative distributions.
"""
from __future__ import annotations

HUBER_SIGMA = 3.0


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


def get_loss(name: str):
    if name == "mse":
        return "mse"
    if name == "huber_dist":
        return huber_dist_loss()
    if name == "emd":
        return emd_loss(2.0)
    raise ValueError(f"unknown loss {name!r}: expected mse, huber_dist or emd")
