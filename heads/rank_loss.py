"""Kong et al.'s regression + rank loss as a keras class (imported when the loss is built)."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="iaa")
class RegRankLoss(keras.losses.Loss):
    """Squared error + ω_r × pairwise hinge ranking loss within the batch (Kong et al. 2016, eq. 1-2).

    Column 0 of `y_true`/`y_pred` is the score; the per-sample value is `err_i² + ω_r · B/|P| · Σ_j
    hinge_ij`, so Keras' mean over the batch gives exactly `L_reg + ω_r · L_rank`. Further columns are
    attributes (Kong et al. eq. 3): `ω_a` × their error summed over the annotated (non-NaN) ones: the squared
    error, or for binary attributes (AVA's styles, `binary_attributes`) the two-way softmax loss of section 4.5,
    which for one 0/1 label is the logistic loss on the attribute output taken as a logit.
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
        binary_attributes: positions (0 = the first attribute) of the 0/1 attributes, learnt as logits.
    """

    def __init__(self, margin: float = 0.02, rank_weight: float = 1.0, low: float = 0.0, high: float = 1.0,
                 min_gap: float = 0.0, attribute_weight: float = 0.1, rater_columns: int = 0,
                 pairs: str = "same-rater", binary_attributes=(), name: str = "reg_rank", **kwargs):
        super().__init__(name=name, **kwargs)
        if not high > low:
            raise ValueError(f"score scale must have high > low; received ({low}, {high})")
        self.margin, self.rank_weight, self.min_gap = float(margin), float(rank_weight), float(min_gap)
        self.low, self.high = float(low), float(high)
        self.attribute_weight = float(attribute_weight)
        if pairs not in ("same-rater", "both"):
            raise ValueError(f"pairs must be 'same-rater' or 'both'; received {pairs!r}")
        self.rater_columns, self.pairs = int(rater_columns), pairs
        self.binary_attributes = tuple(int(i) for i in binary_attributes)

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
        t = ops.where(known, t, 0.0)
        err = ops.square(t - p)  # Kong et al.'s Euclidean loss: the squared norm over the attribute vector
        if self.binary_attributes:
            binary = ops.convert_to_tensor([float(i in self.binary_attributes) for i in range(p.shape[-1])])
            logistic = ops.relu(p) - p * t + ops.log1p(ops.exp(-ops.abs(p)))  # cross-entropy on the logit p
            err = ops.where(binary > 0, logistic, err)
        return ops.sum(ops.where(known, err, 0.0), axis=1)

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "rank_weight": self.rank_weight,
                "low": self.low, "high": self.high, "min_gap": self.min_gap,
                "attribute_weight": self.attribute_weight, "rater_columns": self.rater_columns,
                "pairs": self.pairs,
                **({"binary_attributes": list(self.binary_attributes)} if self.binary_attributes else {})}
