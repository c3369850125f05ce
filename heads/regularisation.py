"""L2 penalty on a Keras head's kernels (`--l2`), in units that do not depend on the score scale.

The penalty is `l2 × target variance × Σ w²` over every Dense and convolution kernel, added to the
batch-mean loss. Heads on a `mos` target learn in standard units (`heads.targets.on_score_scale`) while
their loss is computed on the dataset's scale, so multiplying by the training targets' variance makes
`--l2 0.3` mean the same on AVA (1-10), AADB (0-1) and KonIQ (1-100). For a linear head on standardised
inputs this is exactly ridge regression with `alpha = l2 × n_train` in standard units: trained to
convergence, `single1fc` with `--l2` is the `ridge` baseline solved by Adam.
"""
from __future__ import annotations

import numpy as np

KERNEL_LAYERS = ("Dense", "Conv1D", "Conv2D", "Conv3D")


def kernels(model) -> list:
    """Every Dense/convolution kernel variable of `model`, nested models included."""
    found = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            found += kernels(layer)
        elif type(layer).__name__ in KERNEL_LAYERS and getattr(layer, "kernel", None) is not None:
            found.append(layer.kernel)
    return found


def add_kernel_l2(model, l2: float, train_targets: np.ndarray):
    """Puts the L2 penalty on `model`'s kernels (in place; returns `model`).

    Args:
        model: a built Keras head.
        l2: strength in standard units (0: no penalty).
        train_targets: the training targets, (n, T); their variance (mean over columns) sets the unit.
    Raises:
        ValueError: a negative strength.
    """
    import keras

    if l2 < 0:
        raise ValueError(f"l2 must be >= 0; received l2={l2}")
    if l2 == 0:
        return model
    y = np.asarray(train_targets, np.float64).reshape(len(train_targets), -1)
    unit = float(np.nanmean(np.nanvar(y, axis=0))) or 1.0  # attribute columns may have gaps (NaN)
    for kernel in kernels(model):
        kernel.regularizer = keras.regularizers.L2(l2 * unit)
    return model
