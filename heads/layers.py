"""Small serialisable layers (safe `.keras` loading: no Lambda layers)."""
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
