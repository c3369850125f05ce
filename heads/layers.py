"""Small serialisable layers shared by the head families (safe `.keras` loading: no Lambda layers; every
`model.keras` file loads once this module is imported). Each family's loss lives beside it (`*_loss.py`)."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="iaa")
class ChannelSlice(keras.layers.Layer):
    """x[..., start:stop]: one MLSP block out of the concatenated vector."""

    def __init__(self, start: int, stop: int, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= start < stop:
            raise ValueError(f"ChannelSlice needs 0 <= start < stop, got {start}, {stop}")
        self.start, self.stop = int(start), int(stop)

    def call(self, x):
        return x[..., self.start:self.stop]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.stop - self.start,)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}


@keras.saving.register_keras_serializable(package="iaa")
class ChannelGather(keras.layers.Layer):
    """x[..., indices]: the channels of selected MLSP blocks out of a whole stored kind (`iaa train --blocks`)."""

    def __init__(self, indices, **kwargs):
        super().__init__(**kwargs)
        self.indices = [int(i) for i in indices]

    def call(self, x):
        return ops.take(x, ops.convert_to_tensor(self.indices, dtype="int32"), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (len(self.indices),)

    def get_config(self):
        return {**super().get_config(), "indices": self.indices}


@keras.saving.register_keras_serializable(package="iaa")
class Log1p(keras.layers.Layer):
    """sign(x) · log(1 + |x|): features spread over orders of magnitude, compressed before standardising.

    log1p itself on ReLU features (all the runs saved before signed features existed); odd and monotonic on
    the signed outputs of linear bottlenecks (EfficientNet-Lite's blocks), where log1p alone is undefined.
    """

    def call(self, x):
        return keras.ops.sign(x) * keras.ops.log1p(keras.ops.abs(x))

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="iaa")
class SoftAssign(keras.layers.Layer):
    """Soft content-cluster membership: softmax(−‖x − c_k‖² / τ) over K fixed centres (fitted by k-means on
    the training split and saved with the model, so new photos are assigned the same way); with `unit`, x is
    scaled to unit length first (models saved before the option have it off)."""

    def __init__(self, clusters: int, unit: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.clusters, self.unit = int(clusters), bool(unit)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.centres = self.add_weight(shape=(self.clusters, dim), initializer="zeros", trainable=False,
                                       name="centres")
        self.temperature = self.add_weight(shape=(), initializer="ones", trainable=False, name="temperature")

    def call(self, x):
        x = ops.cast(x, "float32")
        if self.unit:
            x = x / ops.maximum(ops.sqrt(ops.sum(ops.square(x), axis=1, keepdims=True)), 1e-12)
        d2 = (ops.sum(ops.square(x), axis=1, keepdims=True) - 2.0 * ops.matmul(x, ops.transpose(self.centres))
              + ops.expand_dims(ops.sum(ops.square(self.centres), axis=1), 0))
        return ops.softmax(-d2 / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.clusters)

    def get_config(self):
        return {**super().get_config(), "clusters": self.clusters, "unit": self.unit}


@keras.saving.register_keras_serializable(package="iaa")
class NormAndEmbedding(keras.layers.Layer):
    """φ → [‖φ‖, φ] (float32: norms of 1000 float16 squares can overflow)."""

    def call(self, phi):
        phi = ops.cast(phi, "float32")
        return ops.concatenate([ops.sqrt(ops.sum(ops.square(phi), axis=-1, keepdims=True) + 1e-12), phi], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + 1,)
