"""The trainable model of a Keras head, assembled in one place: the registered builder, a float32 output under
mixed precision, the target's output scaling, the recipe's L2 penalty and the input normalisation."""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from heads.inputs import get_input_norm, with_input_norm
from heads.registry import Block, HeadSpec, create_head
from heads.regularisation import add_kernel_l2
from heads.targets import get_target


def float32_output(model):
    """The model with its output cast to float32 (mixed precision: losses and saved scores in float32)."""
    import keras

    out = keras.layers.Activation("linear", dtype="float32", name="out_f32")(model.output)
    return keras.Model(model.input, out, name=model.name)


def trainable_model(spec: HeadSpec, *, input_shape: Sequence[int], train_targets: np.ndarray, input_norm: str,
                    moments: Optional[dict], l2: float = 0.0, n_bins: int = 0, blocks: Sequence[Block] = (),
                    seed: int = 0, n_attributes: int = 0, options: Optional[Mapping[str, object]] = None,
                    mixed: bool = False):
    """A Keras head ready to compile: built by its spec (`create_head`), its output prepared for the training
    targets (`heads.targets`), kernels penalised by `l2` (`heads.regularisation`), the input normalisation
    (`heads.inputs`, fitted `moments`) inside the model so that it travels with `model.keras`."""
    model = create_head(spec, input_shape=input_shape, n_bins=n_bins, blocks=blocks, seed=seed,
                        n_attributes=n_attributes, options=options)
    if mixed:
        model = float32_output(model)
    model = get_target(spec.target).prepare(model, train_targets)
    add_kernel_l2(model, l2, train_targets)
    return with_input_norm(model, get_input_norm(input_norm), moments)
