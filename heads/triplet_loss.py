"""Schwarz et al.'s directional triplet loss as a keras class (imported when the loss is built)."""
from __future__ import annotations

import keras
from keras import ops


def accepted_triplets(s, ratio: float):
    """(B, B, B) float mask of the triplets (a, p, n) of scores `s` that pass the rejection rule."""
    s = ops.cast(s, "float32")
    d = ops.abs(ops.expand_dims(s, 1) - ops.expand_dims(s, 0))  # d[i, j] = |S(i) - S(j)|
    d_ap, d_an, d_pn = ops.expand_dims(d, 2), ops.expand_dims(d, 1), ops.expand_dims(d, 0)
    rule = ops.logical_and(d_ap <= ratio * d_an, d_ap <= ratio * d_pn)
    rule = ops.logical_and(rule, d_an > 0)
    not_self = ops.expand_dims(1.0 - ops.eye(ops.shape(s)[0]), 2)
    return ops.cast(rule, "float32") * not_self


@keras.saving.register_keras_serializable(package="iaa")
class DirectionalTripletLoss(keras.losses.Loss):
    """Mean of L_e + L_d over the accepted triplets of the batch (`heads.triplet` explains the terms); one
    value per anchor, so Keras' mean over the batch gives exactly that mean. `y_true[:, 0]` is the score S,
    `y_pred` is `[‖φ‖, φ]`.

    Args:
        margin: m of L_e.
        direction_margin: m̃ of L_d.
        ratio: the rejection rule's 0.7.
    """

    def __init__(self, margin: float = 0.2, direction_margin: float = 1.0, ratio: float = 0.7,
                 name: str = "directional_triplet", **kwargs):
        super().__init__(name=name, **kwargs)
        if not (margin >= 0 and direction_margin >= 0 and 0 < ratio < 1):
            raise ValueError(f"margins must be >= 0 and ratio in (0, 1). Received: margin={margin}, "
                             f"direction_margin={direction_margin}, ratio={ratio}")
        self.margin, self.direction_margin, self.ratio = float(margin), float(direction_margin), float(ratio)

    def call(self, y_true, y_pred):
        s = ops.cast(y_true[:, 0], "float32")
        y_pred = ops.cast(y_pred, "float32")
        norm, phi = y_pred[:, 0], y_pred[:, 1:]
        unit = phi / ops.expand_dims(norm, 1)
        dist = ops.maximum(2.0 - 2.0 * ops.matmul(unit, ops.transpose(unit)), 0.0)  # ‖Φi − Φj‖²
        embed = ops.relu(self.margin + ops.expand_dims(dist, 2) - ops.expand_dims(dist, 1))  # [a, p, n]
        order = ops.sign(ops.expand_dims(s, 0) - ops.expand_dims(s, 1))  # [a, n] = sgn(S(n) − S(a))
        gap = ops.expand_dims(norm, 0) - ops.expand_dims(norm, 1)  # [a, n] = ‖φn‖ − ‖φa‖
        direction = ops.expand_dims(ops.relu(self.direction_margin - order * gap), 1)
        mask = accepted_triplets(s, self.ratio)
        batch = ops.cast(ops.shape(s)[0], "float32")
        per_anchor = ops.sum((embed + direction) * mask, axis=(1, 2))
        return per_anchor * batch / ops.maximum(ops.sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "direction_margin": self.direction_margin,
                "ratio": self.ratio}
