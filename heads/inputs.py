"""Input normalisation of Keras heads (`--input-norm`), fitted on the training split, saved in the model.

Stored MLSP features are unnormalised ReLU activations whose scales differ by orders of magnitude
between channels and blocks; a head fed them raw is badly conditioned (a linear head lost 0.3 SRCC to a
ridge regression on the same BIQ2021 store). `standard` standardises every channel with the training
split's mean and variance (a Keras `Normalization` layer); `log-standard` takes a signed `log1p` first
(sign(x)·log(1 + |x|): log1p on ReLU features, defined on the signed ones of linear bottlenecks). The
statistics are computed by streaming the training rows of the store once (`features.loader.
feature_moments`), and the layers are saved inside `model.keras`, so scoring goes through them too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from features.loader import signed_log1p
from features.core.registry import Registry

INPUT_LAYER_NAMES = ("input_log1p", "input_standardise")
DEAD_RELATIVE_STD = 1e-4  # float16 features carry about 3 decimal digits
DEAD_VARIANCE = 1e30


@dataclass(frozen=True)
class InputNorm:
    """A way to normalise a head's input.

    Attributes:
        name: the `--input-norm` value.
        log1p: take sign(x)·log(1 + |x|) first (log1p on non-negative features).
        standardise: subtract the training mean and divide by the training standard deviation, per channel.
        description: one line for the help and the run config.
    """

    name: str
    log1p: bool
    standardise: bool
    description: str = ""


INPUT_NORMS: Registry[InputNorm] = Registry("input normalisation")


def register_input_norm(spec: InputNorm) -> InputNorm:
    """Adds an input normalisation to the registry."""
    return INPUT_NORMS.register(spec)


def get_input_norm(name: str) -> InputNorm:
    """The input normalisation registered as `name`."""
    return INPUT_NORMS.get(name)


def with_input_norm(model, norm: InputNorm, moments: Optional[dict] = None):
    """`model` behind the normalisation layers (a new functional model; the head is nested inside).

    Args:
        model: the head.
        norm: the normalisation.
        moments: {"mean", "variance", "min"} per channel of the (signed-log-transformed, when `norm.log1p`)
            training features, from `features.loader.feature_moments`.
    Returns:
        `model` itself for `none`, else the wrapped model.
    """
    import keras

    from heads.layers import Log1p

    if not (norm.log1p or norm.standardise):
        return model
    if moments is None:
        raise ValueError(f"input normalisation {norm.name!r} needs the training split's moments")
    inp = keras.Input(model.input_shape[1:], name="features")
    x = Log1p(name=INPUT_LAYER_NAMES[0], dtype="float32")(inp) if norm.log1p else inp
    if norm.standardise:
        mean, variance = standardisation(moments)
        x = keras.layers.Normalization(axis=-1, mean=mean, variance=variance,
                                       name=INPUT_LAYER_NAMES[1], dtype="float32")(x)
    return keras.Model(inp, model(x), name=model.name)


def dead_channels(moments: dict) -> np.ndarray:
    """Channels constant over the training split (to float16 precision): nothing to learn from them."""
    mean, variance = np.asarray(moments["mean"], np.float64), np.asarray(moments["variance"], np.float64)
    return variance <= np.square(DEAD_RELATIVE_STD * np.abs(mean)) + 1e-24


def standardisation(moments: dict):
    """(mean, variance) for the `Normalization` layer; dead channels are scaled to zero.

    A channel that never varies in training (all-zero ReLU channels are common: 56 of 1,472 VGG16-HED
    channels on BIQ2021) would otherwise be divided by the variance floor, so one test photo that
    activates it gets a prediction off by orders of magnitude (test PLCC fell to -0.02 while SRCC was
    0.44). Dividing it by a huge scale instead makes the head ignore it, as ridge regression does.
    """
    dead = dead_channels(moments)
    mean = np.where(dead, 0.0, moments["mean"]).astype(np.float32)
    variance = np.where(dead, DEAD_VARIANCE, np.maximum(moments["variance"], 1e-24)).astype(np.float32)
    return mean, variance


def normalise_input(model, features: np.ndarray) -> np.ndarray:
    """`features` as the head inside `model` sees them: through the model's saved normalisation layers."""
    x = np.asarray(features, np.float32)
    for name in INPUT_LAYER_NAMES:
        layer = find_layer(model, name)
        if layer is not None:
            x = np.asarray(layer(x))
    return x


def find_layer(model, name: str):
    """A layer by name, also inside nested models (the head inside its normalisation); None if absent."""
    for layer in model.layers:
        if layer.name == name:
            return layer
        if hasattr(layer, "layers"):
            found = find_layer(layer, name)
            if found is not None:
                return found
    return None


register_input_norm(InputNorm("none", False, False, "raw stored features (the MLSP reference)"))
register_input_norm(InputNorm("standard", False, True, "per-channel standardisation (training mean and std)"))
register_input_norm(InputNorm("log-standard", True, True,
                              "sign(x)·log(1 + |x|) (log1p of ReLU features), then per-channel standardisation"))


def sklearn_normaliser(norm: InputNorm):
    """An unfitted scikit-learn transformer doing `norm` (None for `none`)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    steps = ([FunctionTransformer(signed_log1p)] if norm.log1p else []) + ([StandardScaler()] if norm.standardise else [])
    return make_pipeline(*steps) if steps else None
