"""Serialisable layers of the `keras` export: a run's image-to-score graph as one `.keras` model.

Loading the file needs this package (`import pipeline.scoring.export_layers` registers the layers; the
heads' own layers come with `heads.layers`), since Keras rebuilds custom layers from code: for serving
without the package, export `saved_model` or `onnx`. The layers reuse the extraction code (views,
preprocessing, pooling), so the model computes what `iaa score` computes.
"""
from __future__ import annotations

import keras

import heads.layers  # noqa: F401  (the heads' layers, for loading)


def crop_views(image, views):
    """(H, W, 3) → (V, h, w, 3) in the graph, with `View.box`'s arithmetic (floor of fraction × side)."""
    import tensorflow as tf

    shape = tf.shape(image)
    h, w = shape[0], shape[1]
    out = []
    for v in views:
        ch = tf.cast(tf.floor(v.fraction * tf.cast(h, tf.float64)), tf.int32)
        cw = tf.cast(tf.floor(v.fraction * tf.cast(w, tf.float64)), tf.int32)
        top = h - ch if v.row else 0
        left = w - cw if v.col else 0
        crop = image[top:top + ch, left:left + cw]
        out.append(tf.reverse(crop, axis=[1]) if v.flip else crop)
    return tf.stack(out)


@keras.saving.register_keras_serializable(package="iaa_export")
class CropViews(keras.layers.Layer):
    """(1, H, W, 3) uint8 → (V, h, w, 3) float32: the run's views, cropped and flipped in the graph."""

    def __init__(self, views: list, **kwargs):
        super().__init__(**kwargs)
        self.views = [dict(v) for v in views]

    def call(self, image):
        import tensorflow as tf

        from features.augment import View

        return tf.cast(crop_views(image[0], [View(**v) for v in self.views]), tf.float32)

    def compute_output_shape(self, input_shape):
        return (len(self.views), None, None, 3)

    def get_config(self):
        return {**super().get_config(), "views": self.views}


@keras.saving.register_keras_serializable(package="iaa_export")
class PoolKind(keras.layers.Layer):
    """Block maps (or the last block) → one feature kind, by its registered pooling, rounded to float16 as
    the store keeps it."""

    def __init__(self, kind: str, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind

    def call(self, maps):
        import tensorflow as tf

        from features.pooling import get_kind

        pooled = get_kind(self.kind).pool(maps)
        return tf.cast(tf.cast(pooled, tf.float16), tf.float32)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


@keras.saving.register_keras_serializable(package="iaa_export")
class Preprocess(keras.layers.Layer):
    """RGB float32 in [0, 255] → the backbone's input convention (`features.extractor.preprocess`)."""

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, x):
        from features.extractor import preprocess

        return preprocess(x, self.mode)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="iaa_export")
class MeanOverViews(keras.layers.Layer):
    """(V, out) head outputs → (1, 1) score, the test protocol's mean over views; for distribution heads
    the expected bin (1..K) of the mean histogram, and the histogram as a second output."""

    def __init__(self, distribution: bool, **kwargs):
        super().__init__(**kwargs)
        self.distribution = bool(distribution)

    def call(self, out):
        from keras import ops

        mean = ops.mean(ops.cast(out, "float32"), axis=0, keepdims=True)
        if not self.distribution:
            return mean[:, :1]
        p = ops.relu(mean)
        p = p / ops.maximum(ops.sum(p, axis=-1, keepdims=True), 1e-12)
        bins = ops.arange(1, p.shape[-1] + 1, dtype="float32")
        return ops.concatenate([ops.sum(p * bins, axis=-1, keepdims=True), p], axis=-1)

    def get_config(self):
        return {**super().get_config(), "distribution": self.distribution}
