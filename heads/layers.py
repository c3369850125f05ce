"""Small serialisable layers and losses (safe `.keras` loading: no Lambda layers; `model.keras` files
load with their compile settings once this module is imported)."""
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
    """sign(x) · log(1 + |x|): features spread over orders of magnitude, compressed before standardising.

    log1p itself on ReLU features (all the runs saved before signed features existed); odd and monotonic on
    the signed outputs of linear bottlenecks (EfficientNet-Lite's blocks), where log1p alone is undefined.
    """

    def call(self, x):
        return keras.ops.sign(x) * keras.ops.log1p(keras.ops.abs(x))

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="iaa")
class RegRankLoss(keras.losses.Loss):
    """Squared error + ω_r × pairwise hinge ranking loss within the batch (Kong et al. 2016, eq. 1-2).

    Column 0 of `y_true`/`y_pred` is the score; the per-sample value is `err_i² + ω_r · B/|P| · Σ_j
    hinge_ij`, so Keras' mean over the batch gives exactly `L_reg + ω_r · L_rank`. Further columns are
    attributes (Kong et al. eq. 3): `ω_a` × their mean squared error, over the annotated (non-NaN) ones.
    With `rater_columns` R > 0 the last R columns are each rater's own score of the photo (NaN: not rated
    by them) and pairs come from raters (section 4.2): a pair counts when a rater scored both photos
    differently, ordered by the sum of those raters' signs; `pairs="both"` adds every other untied pair,
    ordered by the mean scores.

    Args:
        margin: α.
        rank_weight: ω_r.
        low, high: the dataset's score scale; scores are rescaled to [0, 1] first.
        min_gap: pairs whose rescaled scores differ by less are left out (0: every untied pair).
        attribute_weight: ω_a (attribute columns only).
    """

    def __init__(self, margin: float = 0.02, rank_weight: float = 1.0, low: float = 0.0, high: float = 1.0,
                 min_gap: float = 0.0, attribute_weight: float = 0.1, rater_columns: int = 0,
                 pairs: str = "same-rater", name: str = "reg_rank", **kwargs):
        super().__init__(name=name, **kwargs)
        if not high > low:
            raise ValueError(f"score scale must have high > low; received ({low}, {high})")
        self.margin, self.rank_weight, self.min_gap = float(margin), float(rank_weight), float(min_gap)
        self.low, self.high = float(low), float(high)
        self.attribute_weight = float(attribute_weight)
        if pairs not in ("same-rater", "both"):
            raise ValueError(f"pairs must be 'same-rater' or 'both'; received {pairs!r}")
        self.rater_columns, self.pairs = int(rater_columns), pairs

    def _unit(self, y):
        return (ops.cast(y[:, 0], "float32") - self.low) / (self.high - self.low)

    def call(self, y_true, y_pred):
        t, p = self._unit(y_true), self._unit(y_pred)
        reg = ops.square(t - p)
        d = ops.expand_dims(t, 1) - ops.expand_dims(t, 0)
        e = ops.expand_dims(p, 1) - ops.expand_dims(p, 0)
        pairs = ops.cast(ops.abs(d) > max(self.min_gap, 0.0), "float32")  # also drops i == j
        order = ops.sign(d)
        if self.rater_columns:
            order, pairs = self._rater_pairs(y_true, order, pairs)
        hinge = ops.relu(self.margin - order * e) * pairs
        batch = ops.cast(ops.shape(t)[0], "float32")
        rank = ops.sum(hinge, axis=1) * batch / ops.maximum(ops.sum(pairs), 1.0)
        out = reg + self.rank_weight * rank
        if y_true.shape[-1] is not None and y_true.shape[-1] - self.rater_columns > 1:
            out = out + self.attribute_weight * self._attribute_error(y_true, y_pred)
        return out

    def _rater_pairs(self, y_true, mean_order, mean_pairs):
        """(order, pair mask) from the raters' own scores; with "both", mean-score pairs fill the rest."""
        r = ops.cast(y_true[:, -self.rater_columns:], "float32")
        rated = ops.logical_not(ops.isnan(r))
        score = ops.where(rated, r, 0.0)
        both = ops.cast(ops.logical_and(ops.expand_dims(rated, 1), ops.expand_dims(rated, 0)), "float32")
        votes = ops.sum(ops.sign(ops.expand_dims(score, 1) - ops.expand_dims(score, 0)) * both, axis=2)
        rater_pairs = ops.cast(ops.not_equal(votes, 0.0), "float32")
        if self.pairs == "same-rater":
            return ops.sign(votes), rater_pairs
        return (ops.where(rater_pairs > 0, ops.sign(votes), mean_order),
                ops.maximum(rater_pairs, mean_pairs))

    def _attribute_error(self, y_true, y_pred):
        stop = y_true.shape[-1] - self.rater_columns
        t, p = ops.cast(y_true[:, 1:stop], "float32"), ops.cast(y_pred[:, 1:], "float32")
        known = ops.logical_not(ops.isnan(t))
        err = ops.where(known, ops.square(ops.where(known, t, 0.0) - p), 0.0)
        return ops.sum(err, axis=1) / ops.maximum(ops.sum(ops.cast(known, "float32"), axis=1), 1.0)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "rank_weight": self.rank_weight,
                "low": self.low, "high": self.high, "min_gap": self.min_gap,
                "attribute_weight": self.attribute_weight, "rater_columns": self.rater_columns,
                "pairs": self.pairs}


@keras.saving.register_keras_serializable(package="iaa")
class SoftAssign(keras.layers.Layer):
    """Soft content-cluster membership: softmax(−‖x − c_k‖² / τ) over K fixed centres (fitted by k-means on
    the training split and saved with the model, so new photos are assigned the same way)."""

    def __init__(self, clusters: int, **kwargs):
        super().__init__(**kwargs)
        self.clusters = int(clusters)

    def build(self, input_shape):
        dim = int(input_shape[-1])
        self.centres = self.add_weight(shape=(self.clusters, dim), initializer="zeros", trainable=False,
                                       name="centres")
        self.temperature = self.add_weight(shape=(), initializer="ones", trainable=False, name="temperature")

    def call(self, x):
        x = ops.cast(x, "float32")
        d2 = (ops.sum(ops.square(x), axis=1, keepdims=True) - 2.0 * ops.matmul(x, ops.transpose(self.centres))
              + ops.expand_dims(ops.sum(ops.square(self.centres), axis=1), 0))
        return ops.softmax(-d2 / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.clusters)

    def get_config(self):
        return {**super().get_config(), "clusters": self.clusters}


@keras.saving.register_keras_serializable(package="iaa")
class NormAndEmbedding(keras.layers.Layer):
    """φ → [‖φ‖, φ] (float32: norms of 1000 float16 squares can overflow)."""

    def call(self, phi):
        phi = ops.cast(phi, "float32")
        return ops.concatenate([ops.sqrt(ops.sum(ops.square(phi), axis=-1, keepdims=True) + 1e-12), phi], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + 1,)


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
