"""Feature kinds: how block maps become fixed-size vectors (all pooling runs in the TF graph).

Reference: Hosu et al. 2019 (MLSP narrow/wide), Murray & Gordo 2017 (SPP, GMP), the
photo-critic baseline (VGG16 fc7 on a 224x224 resize). design.md section 5.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Tuple

from features.backbones.base import BackboneSpec
from features.core.errors import UsageError
from features.core.registry import Registry

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
        pooling_revision: bumped when the pooling's numbers change (2: area resize also when enlarging;
            the kinds recorded without it were made with revision 1).
        onnx_exact: its pooling converts to ONNX without approximation (ONNX has no area resizing and no
            antialiased resize; tf2onnx approximates them, moving demo scores by up to 0.1).
    """

    name: str
    source: str
    shape: Callable[[BackboneSpec], Tuple[int, ...]]
    pool: Callable
    description: str
    onnx_exact: bool = True
    pooling_revision: int = 1

    def record(self, spec: BackboneSpec) -> dict:
        """What a store records of this kind (and a run or predictor compares)."""
        return {"shape": list(self.shape(spec)), "description": self.description,
                "pooling_revision": self.pooling_revision}

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
    """TF's area resize of NHWC maps to size x size, for every map size (the reference's Lambda).

    Equals OpenCV INTER_AREA when shrinking. A side smaller than `size` is enlarged with the same area
    weights (a 4-row map gives rows 0, 0.75, 1.5, 2.25, 3), not by replication (pooling revision 1,
    schema 2 and older stores).
    """
    import tensorflow as tf

    return tf.image.resize(x, (size, size), method="area")


def area_average_numpy(x, size: int):
    """Exact area average of an (H, W, C) map onto a size x size grid, in numpy, for any H and W.

    Each output cell averages the input over its span [i·H/size, (i+1)·H/size) weighted by overlap, which is
    TF's area resize when enlarging too. The independent reference for `area_resize`, and the pooling of the
    reference-style loop in `benchmarks/bench_extract.py`.
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


def spp_cell_edges(n, cells: int = SPP_GRID):
    """SPP-net's adaptive bins over a side of n pixels: cell i spans [floor(i·n/cells), ceil((i+1)·n/cells)),
    so cells overlap when n is not a multiple and never come out empty (He et al. 2014, section 2.3)."""
    import tensorflow as tf

    n = tf.cast(n, tf.float32)
    return [(tf.cast(tf.floor(i * n / cells), tf.int32), tf.cast(tf.math.ceil((i + 1) * n / cells), tf.int32))
            for i in range(cells)]


def _spp_max(last):
    import tensorflow as tf

    rows, cols = spp_cell_edges(tf.shape(last)[1]), spp_cell_edges(tf.shape(last)[2])
    cells = [tf.reduce_max(last[:, r0:r1, c0:c1, :], axis=[1, 2]) for r0, r1 in rows for c0, c1 in cols]
    flat = tf.concat(cells, axis=-1)  # cell-major, channels last, as `spp`
    return tf.math.l2_normalize(flat, axis=-1, epsilon=1e-12)


def _gmp(last):
    import tensorflow as tf

    return tf.reduce_max(last, axis=[1, 2])


def _gap(last):
    import tensorflow as tf

    return tf.reduce_mean(last, axis=[1, 2])


def _identity(x):
    return x


for _kind in (
    FeatureKind("mlsp_narrow", "blocks", lambda s: (s.total_channels,), _narrow,
                "global average pool of every block, concatenated in block order"),
    FeatureKind("mlsp_wide", "blocks", lambda s: (WIDE_SIZE, WIDE_SIZE, s.total_channels), _wide,
                "every block area-resized to 5x5 in the graph (TF area weights, also when enlarging), concatenated "
                "on channels", onnx_exact=False, pooling_revision=2),
    FeatureKind("spp", "last", lambda s: (SPP_GRID * SPP_GRID * s.last_channels,), _spp,
                "last conv block, 3x3 grid of area averages, flattened cell-major, L2-normalised", onnx_exact=False,
                pooling_revision=2),
    FeatureKind("spp_max", "last", lambda s: (SPP_GRID * SPP_GRID * s.last_channels,), _spp_max,
                "last conv block, 3x3 grid of SPP-net's max-pooled adaptive bins, flattened cell-major, "
                "L2-normalised (APM's SPP, which follows SPP-net)"),
    FeatureKind("gmp", "last", lambda s: (s.last_channels,), _gmp,
                "global max pool of the last conv block"),
    FeatureKind("gap", "last", lambda s: (s.last_channels,), _gap,
                "global average pool of the last conv block (ResNet's pool5: Schwarz et al.'s features)"),
    FeatureKind("fc7", "fc7", lambda s: (4096,), _identity,
                "VGG16 fc2 (fc7) on the view resized to 224x224", onnx_exact=False),
):
    register_kind(_kind)


def stale_pooling(record: dict) -> dict:
    """{kind: (recorded revision, current)} for the kinds of an extraction record pooled otherwise than today."""
    out = {}
    for name, kind_record in (record.get("kinds") or {}).items():
        if name in FEATURE_KINDS:
            old, now = kind_record.get("pooling_revision", 1), get_kind(name).pooling_revision
            if old != now:
                out[name] = (old, now)
    return out


def stale_pooling_lines(record: dict, what: str) -> list:
    """One line per stale kind of `record`, saying what differs for `what` (a store, a run)."""
    def size(name):
        return WIDE_SIZE if name == "mlsp_wide" else SPP_GRID

    return [f"{what}'s {name} features were pooled with revision {old} (block maps under {size(name)}x{size(name)} "
            f"enlarged by replication before the area resize); this installation makes revision {now} (TF's area "
            f"weights, as the reference): photos with block maps that small get other features. Re-extract to match"
            for name, (old, now) in stale_pooling(record).items()]


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
