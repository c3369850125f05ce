"""A small MLP with dropout on its input: the head that beats ridge on ImageNet features of a few thousand
photos.

MLSP's 3FC heads were made for AVA's 230,000 training photos; on the 1,000-10,000 photos of most user
datasets a 2048-wide first layer on a few thousand standardised channels over-fits before it generalises.
Dropping a quarter of the input channels at random (a cheap ensemble over feature subsets), two narrow
layers and decoupled weight decay keep it in check: cross-validated on BIQ2021 (README, "Trained heads
against ridge") it is the one Keras head ahead of ridge regression on the same features.

Reference: Hosu et al. 2019 (MLSP features, section 3.2.1) for the input; the recipe is this project's,
measured on biq2021-dev.
"""
from __future__ import annotations

from typing import Sequence

from heads.registry import POOLED_KINDS, Block, HeadSpec, register_head

MLP_UNITS = (512, 128)
INPUT_DROPOUT = 0.25
HIDDEN_DROPOUT = 0.5
MLP_STAGES = (3e-4, 3e-5)


def MLP(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0):
    """Dropout(0.25) on the input → Dense(512, relu) → Dropout(0.5) → Dense(128, relu) → Dropout(0.5) →
    Dense(1).

    Args:
        input_shape: `(C,)`, a pooled feature vector (narrow MLSP: 3,088 on EfficientNet-Lite0).
        n_bins, blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "mlp".
    """
    import keras
    from keras import layers

    inp = keras.Input(tuple(input_shape), name="features")
    x = layers.Dropout(INPUT_DROPOUT, name="input_dropout")(inp)
    for i, units in enumerate(MLP_UNITS, start=1):
        x = layers.Dense(units, activation="relu", kernel_initializer="he_normal", name=f"fc{i}")(x)
        x = layers.Dropout(HIDDEN_DROPOUT, name=f"fc{i}_dropout")(x)
    return keras.Model(inp, layers.Dense(1, name="score")(x), name="mlp")


MLP_RECIPE = {"input_norm": "log-standard", "early_stop": "srcc", "batch_size": 32, "weight_decay": 1e-2,
              "max_epochs": 80, "patience": 15}

register_head(HeadSpec("mlp", MLP, kinds=POOLED_KINDS, target="mos", trainer="keras", lr_stages=MLP_STAGES,
                       loss="mse", recipe=MLP_RECIPE,
                       description="MLP 512-128 with input dropout 0.25 on pooled features (small-set recipe)",
                       reference="this project (input: Hosu et al. 2019 MLSP features)"))
