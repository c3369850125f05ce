"""Pool-3FC on wide MLSP features (5 x 5 x C): a modified Inception module, GAP, then 3FC.

Reference: Hosu et al. 2019, section 3.2.2 (figure 6). Every conv is Conv2D(no bias, same) →
BN(scale=False) → ReLU; columns 1x1·1024 | 1x1·1024 → (1x3·512 ‖ 3x1·512) | avgpool3 → 1x1·1024.
"""
from __future__ import annotations

from typing import Sequence

from heads.mlsp_fc import BN_MOMENTUM, SMALL_SET_BATCH, fc3
from heads.registry import NARROW_STAGES, WIDE_STAGES, Block, HeadMismatchError, HeadSpec, register_head

# The paper's wide stages (1e-4, 1e-5, 1e-6) leave pool3fc far from converged on a few thousand photos: on
# BIQ2021 (Lite0, 1,440 training photos, batch 32) the first stage ends after its 20 epochs with validation
# SRCC still rising (0.73 at the end; test 0.764 on fold 0). The narrow heads' stages reach 0.79 in 22
# epochs (test 0.802 on fold 0; 5 folds in the README). `--reference-protocol` keeps the paper's stages.
SMALL_SET_RECIPE = {**SMALL_SET_BATCH, "lr_stages": NARROW_STAGES}

COLUMN_UNITS = 1024


def conv_bn(x, filters: int, kernel, name: str):
    from keras import layers

    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(scale=False, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=name)(x)


def pool3fc_trunk(inp):
    """The modified Inception module and GAP: (5, 5, C) → (3072,)."""
    from keras import layers

    a = conv_bn(inp, COLUMN_UNITS, 1, "col_a_1x1")
    b = conv_bn(inp, COLUMN_UNITS, 1, "col_b_1x1")
    b = layers.Concatenate(name="col_b")([conv_bn(b, COLUMN_UNITS // 2, (1, 3), "col_b_1x3"),
                                          conv_bn(b, COLUMN_UNITS // 2, (3, 1), "col_b_3x1")])
    c = layers.AveragePooling2D(3, strides=1, padding="same", name="col_c_pool")(inp)
    c = conv_bn(c, COLUMN_UNITS, 1, "col_c_1x1")
    x = layers.Concatenate(name="inception")([a, b, c])
    return layers.GlobalAveragePooling2D(name="gap")(x)


def check_wide(name: str, input_shape: Sequence[int]) -> None:
    if len(input_shape) != 3:
        raise HeadMismatchError(f"{name} needs wide features (H, W, C); received shape {tuple(input_shape)}")


def Pool3FC(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0):
    """Pool-3FC: modified Inception module + GAP + 3FC on wide MLSP features.

    Reference: Hosu et al. 2019, section 3.2.2 (figure 6).

    Args:
        input_shape: `(5, 5, C)` (IRNv2: 63,828,481 parameters; Inception-v3: 42,693,121).
        n_bins, blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "pool3fc".
    Raises:
        HeadMismatchError: a shape that is not (H, W, C).
    """
    import keras

    check_wide("pool3fc", input_shape)
    inp = keras.Input(tuple(input_shape), name="features")
    return keras.Model(inp, fc3(pool3fc_trunk(inp)), name="pool3fc")


register_head(HeadSpec("pool3fc", Pool3FC, kinds=("mlsp_wide",), target="mos", trainer="keras",
                       lr_stages=WIDE_STAGES, loss="mse", recipe=SMALL_SET_RECIPE,
                       description="modified Inception module + GAP + 3FC on wide MLSP features",
                       reference="Hosu et al. 2019, section 3.2.2"))
