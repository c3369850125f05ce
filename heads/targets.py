"""What a head learns (`HeadSpec.target`): the labels it needs, the target matrix, how its output starts.

- `mos`: the mean opinion score. Keras heads end in `score = mean + std × output` (training-split
  statistics, a `Rescaling` layer saved with the model), so the head works in standard units on any
  scale (AVA 1-10, AADB 0-1, KonIQ 0-100): with dropout and batch normalisation a fresh head's output
  spread is about 1, which swamps a 0-1 target's spread of about 0.15 and leaves wide heads at low
  learning rates unable to fit. The loss is still computed on the dataset's own scale.
- `dist`: the l1-normalised K-bin vote histogram. The output bias starts at the mean histogram
  (log-mean under a softmax), so small sets do not spend their few steps learning the mean.
- `mos_attributes`: the MOS, then the store's attributes (`labels/attributes`, NaN where not annotated:
  the loss skips those); only the score is rescaled.
- `binary`: high (1) / low (0) at the dataset's threshold (low = at or below), for classifiers.
- `embedding`: the score only orders training examples (triplets); the head outputs `[score, embedding]`
  on its own scale (no rescaling), ranked by column 0.
- `top_bottom`: photo-critic's task: the top (1) and bottom (0) 20 % of the labelled photos by score (cuts
  over all splits, recorded in the run), the middle left out of every split.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import numpy as np

from features.core.errors import UsageError
from features.core.registry import Registry

SCALE_LAYER = "to_score_scale"
TOP_BOTTOM_FRACTION = 0.2  # photo-critic: "we focus on top and bottom 20% of the dataset"


@dataclass(frozen=True)
class TargetSpec:
    """A kind of training target.

    Attributes:
        name: the `HeadSpec.target` value.
        label: store label it is made from: "mos" (`labels/mos`) or "hist" (`labels/hist`).
        make: `make(mos, hist, threshold)` → (n, T) float32 targets for the given rows' labels.
        prepare: `prepare(model, train_targets)` → the Keras model to train (output scaling or bias).
        rank_score: `rank_score(values)` → (n,) scores to rank by, for targets or outputs of shape (n, T)
            (early stopping on validation SRCC ranks both the same way).
        extra: store labels beyond `label` that `make` takes as keywords (e.g. "attributes").
        classifier: the target is a class (0/1): evaluated by accuracy, precision, recall and F1.
        extremes: keep only the photos in the top and bottom `extremes` fraction by score; the threshold
            passed to `make` is then the midpoint of the two cuts.
        scale_free: the head's score is not on the label's scale (an embedding's norm): evaluated by ranking
            metrics only (SRCC, PLCC, pairwise accuracy), not accuracy at a threshold or errors.
    """

    name: str
    label: str
    make: Callable = field(repr=False, compare=False)
    prepare: Callable = field(repr=False, compare=False)
    rank_score: Callable = field(repr=False, compare=False)
    extra: Tuple[str, ...] = ()
    classifier: bool = False
    extremes: Optional[float] = None
    scale_free: bool = False


TARGETS: Registry[TargetSpec] = Registry("target")


def register_target(spec: TargetSpec) -> TargetSpec:
    """Adds a target kind to the registry."""
    return TARGETS.register(spec)


def get_target(name: str) -> TargetSpec:
    """The target kind registered as `name`."""
    return TARGETS.get(name)


def on_score_scale(model, train_targets: np.ndarray):
    """Appends score = mean + std * output (training-split statistics, saved with the model)."""
    import keras

    y = np.asarray(train_targets, np.float64).ravel()
    mean, std = float(y.mean()), float(y.std())
    if not std > 0:
        raise UsageError(f"all {len(y)} training scores equal {mean:g}; a head cannot learn a ranking from them")
    out = keras.layers.Rescaling(scale=std, offset=mean, dtype="float32", name=SCALE_LAYER)(model.output)
    return keras.Model(model.input, out, name=model.name)


def score_then_attributes(model, train_targets: np.ndarray):
    """Like `on_score_scale` for the score (column 0) only; attribute outputs keep their own scale."""
    import keras

    from heads.layers import ChannelSlice

    y = np.asarray(train_targets, np.float64)[:, 0]
    mean, std = float(y.mean()), float(y.std())
    if not std > 0:
        raise UsageError(f"all {len(y)} training scores equal {mean:g}; a head cannot learn a ranking from them")
    width = int(model.output.shape[-1])
    score = ChannelSlice(0, 1, name="score_column")(model.output)
    score = keras.layers.Rescaling(scale=std, offset=mean, dtype="float32", name=SCALE_LAYER)(score)
    attributes = ChannelSlice(1, width, name="attribute_columns")(model.output)
    out = keras.layers.Concatenate(name="score_and_attributes", dtype="float32")([score, attributes])
    return keras.Model(model.input, out, name=model.name)


def score_scale(model) -> Optional[dict]:
    """{"mean", "std"} of a model's output scaling layer, or None when it has none."""
    from heads.inputs import find_layer

    layer = find_layer(model, SCALE_LAYER)
    if layer is None:
        return None
    c = layer.get_config()
    return {"mean": c["offset"], "std": c["scale"]}


def output_layer(model):
    """The last layer with weights: the output layer, also behind weightless ones (the float32 cast that
    mixed precision adds, activations)."""
    for layer in reversed(model.layers):
        if layer.weights:
            return layer
    raise ValueError(f"model {model.name!r} has no layer with weights. Received: {[x.name for x in model.layers]}")


def init_output_bias(model, train_targets: np.ndarray):
    """Starts the output layer's bias at the training mean (log-mean under a softmax output): the
    reference's zero bias spends the first epochs learning the mean, which small sets never finish.
    Both the Huber (ReLU output) and the EMD (softmax) heads thus start at the mean histogram."""
    import keras

    out = output_layer(model)
    if getattr(out, "bias", None) is None:
        raise ValueError(f"the output layer {out.name!r} of {model.name!r} has no bias to start at the mean "
                         f"histogram. Received: {type(out).__name__}")
    mean = np.asarray(train_targets, np.float64).reshape(len(train_targets), -1).mean(axis=0)
    softmax = getattr(out, "activation", None) is keras.activations.softmax
    bias = np.log(np.clip(mean, 1e-6, None)) if softmax else mean
    out.bias.assign(bias.astype(np.float32).reshape(out.bias.shape))
    return model


def _mos(mos, hist, threshold):
    return np.asarray(mos, np.float32).reshape(-1, 1)


def _mos_attributes(mos, hist, threshold, attributes=None):
    return np.concatenate([np.asarray(mos, np.float32).reshape(-1, 1), np.asarray(attributes, np.float32)], axis=1)


def _dist(mos, hist, threshold):
    h = np.asarray(hist, np.float64)
    return (h / h.sum(axis=1, keepdims=True)).astype(np.float32)


def _binary(mos, hist, threshold):
    return (np.asarray(mos) > threshold).astype(np.float32).reshape(-1, 1)


def _first_column(values):
    return np.asarray(values, np.float64)[:, 0]


def _expected_bin(values):
    p = np.asarray(values, np.float64)
    return p @ np.arange(1, p.shape[1] + 1) / np.maximum(p.sum(axis=1), 1e-12)


register_target(TargetSpec("mos", "mos", _mos, on_score_scale, _first_column))
register_target(TargetSpec("mos_attributes", "mos", _mos_attributes, score_then_attributes, _first_column,
                           extra=("attributes",)))
register_target(TargetSpec("dist", "hist", _dist, init_output_bias, _expected_bin))
register_target(TargetSpec("embedding", "mos", _mos, lambda model, y: model, _first_column, scale_free=True))
register_target(TargetSpec("binary", "mos", _binary, lambda model, y: model, _first_column, classifier=True))
register_target(TargetSpec("top_bottom", "mos", _binary, lambda model, y: model, _first_column, classifier=True,
                           extremes=TOP_BOTTOM_FRACTION))
