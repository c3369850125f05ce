"""Fully connected heads on narrow MLSP features: Single-1FC, Single-3FC, Multi-3FC.

Reference: Hosu et al., "Effective Aesthetics Prediction with Multi-level Spatially Pooled
Features", CVPR 2019, section 3.2.1 (figures 4-5); layer stacks of the authors' code (design.md 7).
"""
from __future__ import annotations

from typing import Sequence

from heads.registry import NARROW_STAGES, Block, HeadSpec, register_head

FC3_UNITS = (2048, 1024, 256)
FC3_DROPOUT = (0.25, 0.25, 0.5)
# Keras' default momentum 0.99 needs hundreds of steps for BatchNorm's moving statistics to settle; a few
# thousand photos at batch 32 give tens per epoch, and the statistics used at validation lag the weights
# (demo single3fc, seeds 0-2: test SRCC 0.650 ± 0.130 with 0.99, 0.713 ± 0.018 with 0.9; design.md 13).
BN_MOMENTUM = 0.9


def fc_layers(x, prefix: str = "fc", first: int = 1, last: int = 3, width: int = FC3_UNITS[0]):
    """Layers `first`..`last` of the 3FC stack: Dense(units, relu) → BN → Dropout, named `<prefix><i>`;
    the first layer is `width` wide (the paper's X: 2048 in Single-3FC, the block's channels in Multi-3FC)."""
    from keras import layers

    for i in range(first, last + 1):
        units, rate = (width if i == 1 else FC3_UNITS[i - 1]), FC3_DROPOUT[i - 1]
        x = layers.Dense(units, activation="relu", kernel_initializer="he_normal", name=f"{prefix}{i}")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{prefix}{i}_bn")(x)
        x = layers.Dropout(rate, name=f"{prefix}{i}_dropout")(x)
    return x


def fc3(x, prefix: str = "fc", outputs: int = 1, activation: str = "linear", width: int = FC3_UNITS[0]):
    """Dense(X = width, relu) → BN → Dropout(.25) → Dense(1024) → BN → Dropout(.25) → Dense(256) → BN →
    Dropout(.5) → Dense(outputs)."""
    from keras import layers

    return layers.Dense(outputs, activation=activation, name=f"{prefix}_out")(fc_layers(x, prefix, width=width))


def _input(input_shape: Sequence[int]):
    import keras

    return keras.Input(tuple(input_shape), name="features")


def Single1FC(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0):
    """Single-1FC: one linear Dense(1) on the narrow MLSP vector.

    Reference: Hosu et al. 2019, section 3.2.1.

    Args:
        input_shape: `(C,)`, the narrow MLSP vector (16,928 on IRNv2: 16,929 parameters).
        n_bins, blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "single1fc".
    """
    import keras
    from keras import layers

    inp = _input(input_shape)
    return keras.Model(inp, layers.Dense(1, name="score")(inp), name="single1fc")


def Single3FC(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0):
    """Single-3FC: the 3FC block on the whole narrow MLSP vector.

    Reference: Hosu et al. 2019, section 3.2.1 (figure 4).

    Args:
        input_shape: `(C,)` (IRNv2: 37,044,737 parameters).
        n_bins, blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "single3fc".
    """
    import keras

    inp = _input(input_shape)
    return keras.Model(inp, fc3(inp), name="single3fc")


def Multi3FC(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0):
    """Multi-3FC: a 3FC per MLSP block whose first layer is as wide as the block (X = b_i), joined by a
    learned linear layer.

    Reference: Hosu et al. 2019, section 3.2.1 (figure 5).

    Args:
        input_shape: `(C,)`, the concatenated narrow MLSP vector.
        blocks: `(name, start, stop)` channel range of every block, from the store.
        n_bins, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "multi3fc".
    """
    import keras
    from keras import layers

    from heads.layers import ChannelSlice

    inp = _input(input_shape)
    outs = []
    for i, (name, start, stop) in enumerate(blocks):
        part = ChannelSlice(start, stop, name=f"slice{i}_{name}")(inp)
        outs.append(fc3(part, prefix=f"b{i}_fc", width=stop - start))  # X = b_i (figure 5)
    joined = layers.Concatenate(name="block_scores")(outs) if len(outs) > 1 else outs[0]
    return keras.Model(inp, layers.Dense(1, name="score")(joined), name="multi3fc")


# Batch 32 rather than the reference's 128: a few thousand photos give 128 only a handful of steps per
# epoch (the demo: 2), too few for BatchNorm's moving statistics and for early stopping to see progress.
SMALL_SET_BATCH = {"batch_size": 32}
# A linear head is ridge regression solved by Adam once its input is standardised and its kernel
# penalised (heads.regularisation), given stages long enough to converge. l2 3.0 is ridge's own choice on
# EfficientNet-Lite0 features of BIQ2021 (validated alpha about 4,800 at 1,440 training photos); 5-fold:
# l2 0.4 0.764, 1.0 0.787, 3.0 0.795 = ridge (README, "Trained heads against ridge"). On vgg16_hed 0.4 was
# best (ridge's alpha about 560 there): the penalty follows the features, so pass --l2 on other backbones.
LINEAR_RECIPE = {"input_norm": "log-standard", "l2": 3.0, "early_stop": "srcc", "max_epochs": 60, "patience": 20}

for _name, _build, _desc, _blocks, _recipe in (
    ("single1fc", Single1FC, "one linear layer on narrow MLSP features", False, LINEAR_RECIPE),
    ("single3fc", Single3FC, "3FC (2048-1024-256, BN, dropout) on narrow MLSP features", False, SMALL_SET_BATCH),
    ("multi3fc", Multi3FC, "a 3FC per MLSP block, combined by a learned linear layer", True, SMALL_SET_BATCH),
):
    register_head(HeadSpec(_name, _build, kinds=("mlsp_narrow",), target="mos", trainer="keras",
                           lr_stages=NARROW_STAGES, loss="mse", needs_blocks=_blocks, recipe=_recipe,
                           description=_desc, reference="Hosu et al. 2019, section 3.2.1"))
