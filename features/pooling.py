"""Feature kinds: how block maps become fixed-size vectors (all pooling runs in the TF graph).

Reference: Hosu et al. 2019 (MLSP narrow/wide), Murray & Gordo 2017 (SPP, GMP), the
photo-critic baseline (VGG16 fc7 on a 224x224 resize). design.md section 5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple

from features.backbones.base import BackboneSpec
from features.errors import UsageError
from features.registry import Registry

WIDE_SIZE = 5
SPP_GRID = 3
FC7_SIZE = 224


@dataclass(frozen=True)
class FeatureKind:
    """A stored feature kind.

    Attributes:
        name: registry name (`mlsp_wide`).
        source: "blocks" (all MLSP blocks), "last" (last conv block) or "fc7".
        shape: per-view shape given the backbone.
        pool: TF function from the source tensors to a (B, *shape) tensor.
        description: one line for `describe` and the store attributes.
        onnx_exact: its pooling converts to ONNX without approximation (ONNX has no area resizing and no
            antialiased resize; tf2onnx approximates them, moving demo scores by up to 0.1).
    """

    name: str
    source: str
    shape: Callable[[BackboneSpec], Tuple[int, ...]]
    pool: Callable
    description: str
    onnx_exact: bool = True

    def check_backbone(self, spec: BackboneSpec) -> None:
        if self.source == "fc7" and not spec.supports_fc7:
            raise UsageError(
                f"feature kind 'fc7' needs VGG16's fully connected layers; backbone {spec.name!r} has "
                f"none. Use --backbone vgg16, or drop fc7 from --features."
            )


FEATURE_KINDS: Registry[FeatureKind] = Registry("feature kind")


def register_kind(kind: FeatureKind) -> FeatureKind:
    """Adds a feature kind to the registry."""
    return FEATURE_KINDS.register(kind)


def area_resize(x, size: int):
    """Area-average resize of NHWC maps to size x size.

    Equals OpenCV INTER_AREA when shrinking. A side smaller than `size` is first enlarged by
    nearest-neighbour replication, so tiny maps still give a size x size grid.
    """
    import tensorflow as tf

    h, w = tf.shape(x)[1], tf.shape(x)[2]
    x = tf.cond(
        tf.logical_or(h < size, w < size),
        lambda: tf.image.resize(x, (tf.maximum(h, size), tf.maximum(w, size)), method="nearest"),
        lambda: x,
    )
    return tf.image.resize(x, (size, size), method="area")


def area_average_numpy(x, size: int):
    """Exact area average of an (H, W, C) map onto a size x size grid, in numpy (H, W >= size).

    The independent reference for `area_resize`, and the pooling of the reference-style loop in
    `benchmarks/bench_extract.py`.
    """
    import numpy as np

    def weights(n):
        edges = np.arange(size + 1) * n / size
        lo, hi = edges[:-1, None], edges[1:, None]
        j = np.arange(n)[None, :]
        m = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
        return m / m.sum(axis=1, keepdims=True)

    h, w = x.shape[:2]
    return np.einsum("ih,jw,hwc->ijc", weights(h), weights(w), np.asarray(x, dtype=np.float64))


def _narrow(maps):
    import tensorflow as tf

    return tf.concat([tf.reduce_mean(m, axis=[1, 2]) for m in maps], axis=-1)


def _wide(maps):
    import tensorflow as tf

    return tf.concat([area_resize(m, WIDE_SIZE) for m in maps], axis=-1)


def _spp(last):
    import tensorflow as tf

    grid = area_resize(last, SPP_GRID)  # (B, 3, 3, C): cell-major, channels last
    flat = tf.reshape(grid, (tf.shape(grid)[0], -1))
    return tf.math.l2_normalize(flat, axis=-1, epsilon=1e-12)


def _gmp(last):
    import tensorflow as tf

    return tf.reduce_max(last, axis=[1, 2])


def _identity(x):
    return x


for _kind in (
    FeatureKind("mlsp_narrow", "blocks", lambda s: (s.total_channels,), _narrow,
                "global average pool of every block, concatenated in block order"),
    FeatureKind("mlsp_wide", "blocks", lambda s: (WIDE_SIZE, WIDE_SIZE, s.total_channels), _wide,
                "every block area-resized to 5x5 in the graph, concatenated on channels", onnx_exact=False),
    FeatureKind("spp", "last", lambda s: (SPP_GRID * SPP_GRID * s.last_channels,), _spp,
                "last conv block, 3x3 grid of area averages, flattened cell-major, L2-normalised", onnx_exact=False),
    FeatureKind("gmp", "last", lambda s: (s.last_channels,), _gmp,
                "global max pool of the last conv block"),
    FeatureKind("fc7", "fc7", lambda s: (4096,), _identity,
                "VGG16 fc2 (fc7) on the view resized to 224x224", onnx_exact=False),
):
    register_kind(_kind)


def get_kind(name: str) -> FeatureKind:
    """The feature kind registered as `name`."""
    return FEATURE_KINDS.get(name)


def parse_kinds(text: str, spec: BackboneSpec):
    """`mlsp_narrow,mlsp_wide` → validated list of kind names (order kept, duplicates dropped)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--features is empty: give one or more of " + ", ".join(FEATURE_KINDS.names()))
    out = []
    for n in names:
        get_kind(n).check_backbone(spec)
        if n not in out:
            out.append(n)
    return out
