"""Small serialisable layers and losses (safe `.keras` loading: no Lambda layers; `model.keras` files
load with their compile settings once this module is imported)."""
from __future__ import annotations

import keras


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
class HuberPerBin(keras.losses.Loss):
    """Huber loss per histogram bin, summed over bins (APM, Murray & Gordo 2017, eq. 1)."""

    def __init__(self, delta: float = 1.0 / 9.0, name: str = "huber_dist", **kwargs):
        super().__init__(name=name, **kwargs)
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        from heads.losses import huber_dist_loss

        return huber_dist_loss(self.delta)(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


@keras.saving.register_keras_serializable(package="iaa")
class EarthMoversDistance(keras.losses.Loss):
    """EMD between score distributions over their CDFs, with exponent r (NIMA, Talebi & Milanfar 2018)."""

    def __init__(self, r: float = 2.0, name: str = "emd", **kwargs):
        super().__init__(name=name, **kwargs)
        self.r = float(r)

    def call(self, y_true, y_pred):
        from heads.losses import emd_loss

        return emd_loss(self.r)(y_true, y_pred)

    def get_config(self):
        return {**super().get_config(), "r": self.r}


@keras.saving.register_keras_serializable(package="iaa")
class Log1p(keras.layers.Layer):
    """log(1 + max(x, 0)): ReLU features spread over orders of magnitude, compressed before standardising."""

    def call(self, x):
        return keras.ops.log1p(keras.ops.maximum(x, 0.0))

    def compute_output_shape(self, input_shape):
        return input_shape
