"""The stage-1 forward pass: uint8 views in, pooled float16 features of every requested kind out."""
from __future__ import annotations

import contextlib
from typing import Dict, List, Optional, Sequence

import numpy as np

from features.backbones import get_backbone
from features.backbones.base import CAFFE_MEAN_BGR, HED_MEAN_BGR, BackboneSpec
from features.core.errors import UsageError
from features.pooling import FC7_SIZE, get_kind, parse_kinds
from features.weights import WeightsSpec, build_model, parse_weights


PRECISIONS = {"float32": "float32", "mixed": "mixed_float16"}  # --precision → Keras dtype policy


def check_precision(precision: str, spec: BackboneSpec) -> str:
    """`precision` if the backbone can run with it; else a UsageError saying why."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}; received {precision!r}")
    if precision == "mixed" and spec.no_mixed_precision:
        raise UsageError(f"{spec.name} cannot extract with --precision mixed: {spec.no_mixed_precision}. "
                         f"Use --precision float32")
    return precision


@contextlib.contextmanager
def _dtype_policy(name: str):
    """Keras' global dtype policy while models are built (layers keep the policy they were built with)."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def preprocess(x, mode: str):
    """RGB float32 in [0, 255] → the backbone's input convention (in the graph)."""
    import tensorflow as tf

    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "raw":
        return x
    if mode == "tflite":
        return (x - 127.0) / 128.0
    mean = {"caffe": CAFFE_MEAN_BGR, "hed": HED_MEAN_BGR}[mode]
    return x[..., ::-1] - tf.constant(mean, dtype=x.dtype)


class Extractor:
    """Runs one backbone once per batch of same-sized views and pools every kind in the graph.

    One `tf.function` with a `[None, None, None, 3]` signature serves every image size, so no
    re-tracing happens per size (keras `predict` would re-trace).

    Reference: Hosu et al. 2019, section 3.1 (MLSP features); design.md sections 3 and 5.

    Args:
        backbone: the parsed backbone (`features.backbones.get_backbone`).
        weights: the parsed weights (`features.weights.parse_weights`).
        kinds: feature kind names, already validated for the backbone (`features.pooling.parse_kinds`).
        precision: "float32", or "mixed" (float16 compute, float32 weights; block maps are cast to float32
            before pooling, whose sums would overflow float16).

    Example:
        ex = Extractor.from_names("efficientnet_lite0", None, "mlsp_narrow,mlsp_wide")
        feats = ex(views)          # {"mlsp_narrow": (B, 3088), "mlsp_wide": (B, 5, 5, 3088)} float16
    """

    @classmethod
    def from_names(cls, backbone: str, weights: Optional[str], kinds: Sequence[str] | str,
                   precision: str = "float32") -> "Extractor":
        """Parses and validates the command-line names (`--backbone`, `--weights`, `--features`, `--precision`)."""
        spec = get_backbone(backbone)
        text = ",".join(kinds) if not isinstance(kinds, str) else kinds
        return cls(spec, parse_weights(weights, spec), parse_kinds(text, spec), precision)

    def __init__(self, backbone: BackboneSpec, weights: WeightsSpec, kinds: Sequence[str],
                 precision: str = "float32"):
        import tensorflow as tf

        self.spec = backbone
        self.weights = weights
        self.kinds: List[str] = list(kinds)
        self.precision = check_precision(precision, backbone)
        with _dtype_policy(PRECISIONS[self.precision]):
            self._build()
        self._map_sides: Dict[tuple, int] = {}
        self._fn = tf.function(
            self._forward, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)]
        )

    def _build(self) -> None:
        import keras

        sources = {get_kind(k).source for k in self.kinds}

        self._fc7_model = None
        if "fc7" in sources:
            top = build_model(self.spec, self.weights, include_top=True)
            self._fc7_model = keras.Model(top.input, top.get_layer("fc2").output)
        conv_sources = sources - {"fc7"}
        self._layers: List[str] = []
        self._conv_model = None
        if conv_sources:
            base = build_model(self.spec, self.weights, include_top=False)
            if self._fc7_model is not None:  # one set of weights for both passes
                for layer in base.layers:
                    if layer.weights:
                        layer.set_weights(top.get_layer(layer.name).get_weights())
            if "blocks" in conv_sources:
                self._layers += list(self.spec.blocks)
            if "last" in conv_sources and self.spec.last_block not in self._layers:
                self._layers.append(self.spec.last_block)
            outputs = [base.get_layer(name).output for name in self._layers]
            self._conv_model = keras.Model(base.input, outputs)

    def _forward(self, views):
        import tensorflow as tf

        return {k: tf.cast(v, tf.float16) for k, v in self.pooled(tf.cast(views, tf.float32)).items()}

    def pooled(self, x):
        """(B, H, W, 3) float32 RGB in [0, 255] → {kind: float32 tensor}: the graph every stored feature
        comes from, differentiable with respect to the pixels (explanations take its gradient)."""
        import tensorflow as tf

        out = {}
        if self._conv_model is not None:
            maps = self._conv_model(preprocess(x, self.spec.preprocessing), training=False)
            maps = [tf.cast(m, tf.float32) for m in (maps if isinstance(maps, (list, tuple)) else [maps])]
            by_name = dict(zip(self._layers, maps))
            block_maps = [by_name[b] for b in self.spec.blocks if b in by_name]
            last = by_name.get(self.spec.last_block)
        for name in self.kinds:
            kind = get_kind(name)
            if kind.source == "blocks":
                out[name] = kind.pool(block_maps)
            elif kind.source == "last":
                out[name] = kind.pool(last)
            else:
                small = tf.image.resize(x, (FC7_SIZE, FC7_SIZE), method="bilinear", antialias=True)
                out[name] = tf.cast(self._fc7_model(preprocess(small, self.spec.preprocessing), training=False),
                                    tf.float32)
        return out

    def smallest_map_side(self, height: int, width: int) -> int:
        """The shortest side of the block maps this extractor pools, for views of this size (no compute)."""
        if self._conv_model is None:
            return 1 << 30
        key = (int(height), int(width))
        if key not in self._map_sides:  # a trace gives static shapes (some backbones' nested models refuse
            import tensorflow as tf     # compute_output_shape for sizes other than the one they were built at)

            traced = tf.function(self._conv_model).get_concrete_function(tf.TensorSpec((1, *key, 3), tf.float32))
            outputs = tf.nest.flatten(traced.structured_outputs)
            self._map_sides[key] = int(min(min(o.shape[1], o.shape[2]) for o in outputs))
        return self._map_sides[key]

    @property
    def models(self) -> list:
        """The Keras models the forward pass runs (block maps, fc7), e.g. to save their weights with it."""
        return [m for m in (self._conv_model, self._fc7_model) if m is not None]

    @property
    def block_model(self):
        """(the Keras model from preprocessed pixels to block maps, the layer name of each output), or
        (None, []) when only fc7 is extracted."""
        return self._conv_model, list(self._layers)

    def shapes(self) -> Dict[str, tuple]:
        """Per-view shape of each kind."""
        return {k: tuple(get_kind(k).shape(self.spec)) for k in self.kinds}

    def __call__(self, views: np.ndarray) -> Dict[str, np.ndarray]:
        """(B, H, W, 3) uint8 views of one size → {kind: (B, *shape) float16}."""
        if views.ndim != 4 or views.shape[-1] != 3 or views.dtype != np.uint8:
            raise ValueError(f"expected (B, H, W, 3) uint8 views; received {views.shape} {views.dtype}")
        return {k: v.numpy() for k, v in self._fn(views).items()}
