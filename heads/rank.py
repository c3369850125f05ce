"""Kong et al. 2016: a regression head trained with an added pairwise ranking loss (Reg+Rank).

    L = L_reg + ω_r · L_rank,   L_rank = 1/|P| Σ_(i,j)∈P max(0, α − sign(y_i − y_j)(ŷ_i − ŷ_j))

on scores rescaled to [0, 1] by the dataset's scale (the paper's α and ω_r are on that scale). P is
every pair of one batch whose scores differ (at least `min_gap` apart when asked: the paper's "bias
towards pairs with a large score difference", whose order most raters agree on); tied pairs carry no
order and are left out. With rater ids (`same_rater` targets, see `pipeline.datasets`) only pairs rated
by the same person count. Batches are shuffled draws of the training split, so every batch of B photos
holds B(B−1)/2 candidate pairs.

Reference: Kong, Shen, Lin, Mech, Fowlkes, "Photo Aesthetics Ranking Network with Attributes and
Content Adaptation", ECCV 2016, section 4.2, eq. 1-2; α = 0.15 / ω_r = 0.1 on AVA and α = 0.02 /
ω_r = 1 on AADB (section 5, Table 4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from heads.losses import LossContext, LossSpec, register_loss
from heads.options import HeadOption, declare_options
from heads.mlsp_fc import Single3FC
from heads.pool3fc import Pool3FC
from heads.registry import NARROW_STAGES, WIDE_STAGES, Block, HeadSpec, register_head


@dataclass(frozen=True)
class RankSettings:
    """The rank loss's margin α and weight ω_r (on scores rescaled to [0, 1])."""

    margin: float
    weight: float
    source: str


# The paper set α and ω_r on validation data for its two datasets; other datasets get AADB's (closer in
# size to what our users bring), and `--rank-margin` / `--rank-weight` override either.
PAPER_RANK_SETTINGS = {
    "ava": RankSettings(0.15, 0.1, "Kong et al. 2016 on AVA"),
    "aadb": RankSettings(0.02, 1.0, "Kong et al. 2016 on AADB"),
}
ATTRIBUTE_WEIGHT = 0.1  # ω_a, Kong et al. 2016, section 5
OTHER_RANK_SETTINGS = RankSettings(0.02, 1.0, "Kong et al. 2016's AADB values (no published setting for this dataset)")


def rank_settings(dataset: str) -> RankSettings:
    """The published α and ω_r for a dataset name (AADB's for datasets the paper did not use)."""
    return PAPER_RANK_SETTINGS.get(dataset, OTHER_RANK_SETTINGS)


def rank_loss_numpy(y_true: np.ndarray, y_pred: np.ndarray, margin: float, min_gap: float = 0.0) -> float:
    """L_rank by the formula, pair by pair (the reference the Keras loss is tested against)."""
    total, count = 0.0, 0
    for i in range(len(y_true)):
        for j in range(len(y_true)):
            if i != j and abs(y_true[i] - y_true[j]) > min_gap:
                total += max(0.0, margin - np.sign(y_true[i] - y_true[j]) * (y_pred[i] - y_pred[j]))
                count += 1
    return total / max(count, 1)


def rater_rank_loss_numpy(ratings: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, margin: float,
                          pairs: str = "same-rater") -> float:
    """L_rank over rater pairs, pair by pair: (i, j) counts when the raters who scored both disagree with
    a tie in sum; ordered by the sum of their signs ("both": other untied pairs by the mean scores)."""
    total, count = 0.0, 0
    for i in range(len(y_true)):
        for j in range(len(y_true)):
            if i == j:
                continue
            both = ~np.isnan(ratings[i]) & ~np.isnan(ratings[j])
            votes = float(np.sign(ratings[i, both] - ratings[j, both]).sum())
            if votes != 0:
                sign = np.sign(votes)
            elif pairs == "both" and y_true[i] != y_true[j]:
                sign = np.sign(y_true[i] - y_true[j])
            else:
                continue
            total += max(0.0, margin - sign * (y_pred[i] - y_pred[j]))
            count += 1
    return total / max(count, 1)


def rater_matrix(ratings: dict, rows: np.ndarray) -> np.ndarray:
    """(len(rows), R) each rater's score of each photo (mean if they scored it twice; NaN: not rated),
    one column per rater of the store, for the store rows `rows`."""
    raters, column = np.unique(ratings["rater"], return_inverse=True)
    where = np.full(int(max(ratings["image"].max(initial=0), rows.max(initial=0))) + 1, -1)
    where[rows] = np.arange(len(rows))
    picked = where[ratings["image"]] >= 0
    total = np.zeros((len(rows), len(raters)))
    count = np.zeros((len(rows), len(raters)))
    np.add.at(total, (where[ratings["image"][picked]], column[picked]), ratings["score"][picked])
    np.add.at(count, (where[ratings["image"][picked]], column[picked]), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan).astype(np.float32)


def same_rater_pairs_per_batch(matrix: np.ndarray, batch: int, seed: int = 0, samples: int = 20_000) -> float:
    """Expected pairs of a random batch that some rater scored differently (a sampled estimate)."""
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, len(matrix), samples), rng.integers(0, len(matrix), samples)
    a, b = matrix[i], matrix[j]
    both = ~np.isnan(a) & ~np.isnan(b)
    differ = (np.where(both, np.sign(np.nan_to_num(a) - np.nan_to_num(b)), 0).sum(axis=1) != 0) & (i != j)
    return float(differ.mean() * batch * (batch - 1) / 2)


def RegRank(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0):
    """Reg+Rank on narrow MLSP features: the Single-3FC trunk, trained with `RegRankLoss`.

    Reference: Kong et al. 2016, figure 3(a); trunk: Hosu et al. 2019, figure 4.

    Args:
        input_shape: `(C,)`, the narrow MLSP vector.
        n_bins, blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "reg_rank".
    """
    import keras

    model = Single3FC(input_shape)
    return keras.Model(model.input, model.output, name="reg_rank")


def RegRankWide(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0):
    """Reg+Rank on wide MLSP features: the Pool-3FC trunk, trained with `RegRankLoss`.

    Reference: Kong et al. 2016, figure 3(a); trunk: Hosu et al. 2019, figure 6.

    Args:
        input_shape: `(5, 5, C)`, wide MLSP features.
        n_bins, blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "reg_rank_wide".
    """
    import keras

    model = Pool3FC(input_shape)
    return keras.Model(model.input, model.output, name="reg_rank_wide")


RANK_PAIRS = ("auto", "all", "same-rater", "both")
RANK_OPTIONS = declare_options(
    HeadOption("rank_margin", "float", "margin alpha of the rank loss on scores rescaled to [0, 1] (default: "
               "Kong et al.'s, 0.15 on AVA, 0.02 on AADB and others)", minimum=0),
    HeadOption("rank_weight", "float", "weight omega_r of the rank term (default: Kong et al.'s, 0.1 on AVA, 1 on "
               "AADB and others)", minimum=0),
    HeadOption("rank_min_gap", "float", "leave out pairs whose scores (rescaled to [0, 1]) differ by less",
               default=0.0, minimum=0, below=1),
    HeadOption("rank_pairs", "str", "rank-loss pairs: all (by mean score), same-rater (pairs a rater scored both "
               "of, in that rater's order), both; auto: same-rater when the store has rater ids, else all",
               default="auto", choices=RANK_PAIRS),
    HeadOption("attribute_weight", "float", "weight omega_a of the attribute loss (default: Kong et al.'s 0.1)",
               minimum=0),
)


def _reg_rank(context: LossContext):
    from heads.rank_loss import RegRankLoss

    paper, given = rank_settings(context.dataset), context.options
    return RegRankLoss(given.get("rank_margin", paper.margin), given.get("rank_weight", paper.weight),
                       *context.scale, min_gap=given.get("rank_min_gap", 0.0),
                       attribute_weight=given.get("attribute_weight", ATTRIBUTE_WEIGHT),
                       rater_columns=context.rater_columns,
                       pairs="both" if given.get("rank_pairs") == "both" else "same-rater",
                       binary_attributes=context.binary_attributes)


register_loss(LossSpec("reg_rank", _reg_rank,
                       "squared error + ω_r × pairwise hinge rank loss within the batch, on scores rescaled "
                       "to [0, 1] (Kong et al. 2016, eq. 1-2)", uses_raters=True, options=RANK_OPTIONS))
_REF = "Kong et al. 2016, section 4.2"
register_head(HeadSpec("reg_rank", RegRank, kinds=("mlsp_narrow",), target="mos", trainer="keras",
                       lr_stages=NARROW_STAGES, loss="reg_rank", reference=_REF,
                       description="Single-3FC trained with regression + pairwise rank loss"))
register_head(HeadSpec("reg_rank_wide", RegRankWide, kinds=("mlsp_wide",), target="mos", trainer="keras",
                       lr_stages=WIDE_STAGES, loss="reg_rank", reference=_REF,
                       description="Pool-3FC trained with regression + pairwise rank loss"))
