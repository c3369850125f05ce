"""Kong et al. 2016's attribute- and content-adaptive heads on narrow MLSP features (Reg+Rank+Att,
Reg+Rank+Cont, Reg+Rank+Att+Cont), trained with `RegRankLoss` (score: regression + rank; attributes: ω_a ×
Euclidean, or the softmax loss for binary attributes).

Attribute-adaptive (figure 3b): an attribute branch (one linear output per attribute) on the second
FC layer of the Single-3FC trunk; its predictions are concatenated with the third FC layer's features
to predict the score. Content-adaptive (figure 3c): K content branches, each with its own layer of
content-specific features on the shared trunk (Dense 256 + ReLU, BN, dropout), joined with the attribute
predictions when the head has them, and its own score output; the K scores are mixed by soft cluster
membership. The paper fine-tunes a content classifier on k-means clusters of unit-length AlexNet fc7 features
(AADB has no content labels); here the clusters are k-means on the head's own (normalised) input scaled to
unit length, over the training split (scikit-learn, K = 10 by default as in the paper, `--content-clusters K`
for the paper's sweep of figure 5), fitted before training, and membership is softmax(−‖x − c_k‖² / τ) with τ
the mean squared distance of a training photo to its nearest centre. Centres and τ are weights of the saved
model, so scoring new photos assigns them the same way.

Outputs: column 0 the score, then one column per attribute (saved and evaluated per attribute).

Reference: Kong, Shen, Lin, Mech, Fowlkes, ECCV 2016, sections 4.3-4.4, eq. 3; ω_a = 0.1 (section 5); Table 2's
Reg+Rank+Cont (`reg_rank_cont`) has no attribute branch.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from heads.mlsp_fc import BN_MOMENTUM, FC3_DROPOUT, fc_layers
from heads.options import HeadOption, declare_options
from heads.registry import NARROW_STAGES, Block, HeadSpec, register_head

CONTENT_CLUSTERS = 10
CONTENT_UNITS = 256  # each branch's own features: the width of the Single-3FC trunk's third layer
KMEANS_ROWS = 10_000  # training photos the clusters are fitted on (view 0 of each); more add little


def _trunk(input_shape: Sequence[int], n_attributes: int):
    """Input → fc1, fc2 → (attribute predictions, joined = [fc3 features ‖ attributes])."""
    import keras
    from keras import layers

    inp = keras.Input(tuple(input_shape), name="features")
    shared = fc_layers(inp, "fc", 1, 2)
    attributes = layers.Dense(n_attributes, name="attributes")(shared)
    joined = layers.Concatenate(name="score_features")([fc_layers(shared, "fc", 3, 3), attributes])
    return inp, attributes, joined


def RegRankAtt(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0,
               n_attributes: int = 11):
    """Reg+Rank+Att: Single-3FC trunk with an attribute branch joined into the score path.

    Reference: Kong et al. 2016, section 4.3 (figure 3b).

    Args:
        input_shape: `(C,)`, the narrow MLSP vector.
        n_attributes: attribute outputs (the store's `labels/attributes` columns; 11 on AADB).
        n_bins, blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "reg_rank_att" with outputs (score, attribute_1..A).
    """
    import keras
    from keras import layers

    inp, attributes, joined = _trunk(input_shape, n_attributes)
    score = layers.Dense(1, name="score")(joined)
    return keras.Model(inp, layers.Concatenate(name="outputs")([score, attributes]), name="reg_rank_att")


def _content_score(inp, shared, attributes, clusters: int):
    """K content branches (own features ‖ attributes → score) mixed by soft membership of the unit-length input.

    The K branches are computed together: one Dense of K × 256 units is K Dense(256) layers side by side (its
    BatchNormalization normalises each unit alone, so per branch too), and an `EinsumDense` with a (K, F) kernel
    gives each branch its own score layer; the parameters are those of K separate branches.
    """
    from keras import layers

    from heads.layers import SoftAssign

    own = layers.Dense(CONTENT_UNITS * clusters, activation="relu", kernel_initializer="he_normal",
                       name="content_fc3")(shared)
    own = layers.BatchNormalization(momentum=BN_MOMENTUM, name="content_fc3_bn")(own)
    own = layers.Dropout(FC3_DROPOUT[2], name="content_fc3_dropout")(own)
    own = layers.Reshape((clusters, CONTENT_UNITS), name="content_features")(own)  # (B, K, 256): one row per branch
    if attributes is not None:
        repeated = layers.RepeatVector(clusters, name="attributes_per_branch")(attributes)
        own = layers.Concatenate(name="content_and_attributes")([own, repeated])
    branch_scores = layers.EinsumDense("bkf,kf->bk", output_shape=(clusters,), bias_axes="k",
                                       name="content_scores")(own)
    weights = SoftAssign(clusters, unit=True, name="content_membership")(inp)
    return layers.Dot(axes=1, name="score")([weights, branch_scores])


def RegRankAttCont(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0,
                   n_attributes: int = 11, content_clusters: int = CONTENT_CLUSTERS):
    """Reg+Rank+Att+Cont: K content branches, each with its own features joined with the attribute predictions.

    Reference: Kong et al. 2016, section 4.4 (figure 3c).

    Args:
        input_shape: `(C,)`, the narrow MLSP vector.
        n_attributes: attribute outputs.
        content_clusters: K content clusters (fitted by `fit_content_clusters` before training).
        n_bins, blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "reg_rank_att_cont" with outputs (score, attribute_1..A).
    """
    import keras
    from keras import layers

    inp = keras.Input(tuple(input_shape), name="features")
    shared = fc_layers(inp, "fc", 1, 2)
    attributes = layers.Dense(n_attributes, name="attributes")(shared)
    score = _content_score(inp, shared, attributes, content_clusters)
    return keras.Model(inp, layers.Concatenate(name="outputs")([score, attributes]), name="reg_rank_att_cont")


def RegRankCont(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0,
                content_clusters: int = CONTENT_CLUSTERS):
    """Reg+Rank+Cont: the content-adaptive head without attributes (Table 2), for any store with a MOS.

    Reference: Kong et al. 2016, section 4.4 (figure 3c without the attribute branch), Table 2.

    Args:
        input_shape: `(C,)`, the narrow MLSP vector.
        content_clusters: K content clusters (fitted by `fit_content_clusters` before training).
        n_bins, blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "reg_rank_cont" with one output, the score.
    """
    import keras

    inp = keras.Input(tuple(input_shape), name="features")
    return keras.Model(inp, _content_score(inp, fc_layers(inp, "fc", 1, 2), None, content_clusters),
                       name="reg_rank_cont")


def fit_content_clusters(model, features: np.ndarray, seed: int) -> dict:
    """k-means on the head's (normalised) training input at unit length; sets the membership layer's centres and τ.

    Args:
        model: the head, possibly behind its input normalisation (`heads.inputs.with_input_norm`).
        features: (n, C) raw training features (one view per photo).
        seed: k-means seed.
    Returns:
        What the run records: K, photos per cluster, τ, rows used.
    """
    from sklearn.cluster import KMeans

    from heads.inputs import find_layer, normalise_input

    layer = find_layer(model, "content_membership")
    x = np.asarray(normalise_input(model, features), np.float64)
    if layer.unit:  # Kong et al. cluster unit-length features (section 5.1)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = min(layer.clusters, len(x))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
    centres = np.zeros((layer.clusters, x.shape[1]), np.float32)
    centres[:k] = km.cluster_centers_
    if k < layer.clusters:  # fewer photos than clusters: unused centres far away
        centres[k:] = 1e6
    nearest = km.transform(x).min(axis=1) ** 2
    temperature = float(max(nearest.mean(), 1e-6))
    layer.centres.assign(centres)
    layer.temperature.assign(temperature)
    return {"clusters": int(layer.clusters), "fitted": int(k), "rows": int(len(x)), "temperature": temperature,
            "sizes": np.bincount(km.labels_, minlength=layer.clusters).astype(int).tolist(),
            "inertia": float(km.inertia_)}


CONTENT_OPTIONS = declare_options(
    HeadOption("content_clusters", "int", f"K content clusters of Kong et al.'s content-adaptive heads (default: "
               f"the paper's {CONTENT_CLUSTERS}; its figure 5 sweeps K on validation)", default=CONTENT_CLUSTERS,
               minimum=1),
)
_REF = "Kong et al. 2016, sections 4.3-4.4"
_KONG = dict(kinds=("mlsp_narrow",), trainer="keras", lr_stages=NARROW_STAGES, loss="reg_rank", reference=_REF)
register_head(HeadSpec("reg_rank_att", RegRankAtt, target="mos_attributes", needs_attributes=True, **_KONG,
                       description="Reg+Rank with an attribute branch joined into the score path"))
register_head(HeadSpec("reg_rank_att_cont", RegRankAttCont, target="mos_attributes", needs_attributes=True,
                       fit_to_data=fit_content_clusters, options=CONTENT_OPTIONS, **_KONG,
                       description="Reg+Rank+Att with K content branches mixed by k-means cluster membership"))
register_head(HeadSpec("reg_rank_cont", RegRankCont, target="mos", fit_to_data=fit_content_clusters,
                       options=CONTENT_OPTIONS, **_KONG,
                       description="Reg+Rank with K content branches mixed by k-means cluster membership "
                                   "(Table 2's Reg+Rank+Cont: no attributes needed)"))
