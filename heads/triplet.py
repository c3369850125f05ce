"""Schwarz et al.'s directional triplet embedding on stored features.

A linear projection φ of the (normalised) features to d dimensions (1000 in the paper); the embedding is
Φ = φ / ‖φ‖ and the score is ‖φ‖. The model outputs `[‖φ‖, φ]`, so every tool that reads column 0 (metrics,
`iaa score`, the server) ranks photos by the norm, and `iaa score --embeddings` keeps Φ.

Loss over the triplets (a, p, n) of a batch that pass the paper's rejection rule (|S(a) − S(p)| at most
`ratio` = 0.7 times both |S(a) − S(n)| and |S(p) − S(n)|, a ≠ p):
    L_e = [m + ‖Φa − Φp‖² − ‖Φa − Φn‖²]+                          (eq. 2)
    L_d = [m̃ − sgn(S(n) − S(a)) · (‖φn‖ − ‖φa‖)]+                  (eq. 3, see below)
averaged over the accepted triplets. The paper samples random triplets and rejects those that fail the
rule; the mean over every accepted triplet of a random batch is that procedure's expected loss on the batch.
Eq. 3 as printed, sgn(S(n) − S(a)) · [‖φa‖ − ‖φn‖ + m̃]+, equals ours when n is the better photo; when n is the
worse one it is a negative hinge, unbounded below (it rewards ever larger norms of a), so we mirror the
hinge instead: the better photo of (a, n) needs the larger norm by m̃ either way.

Reference: Schwarz, Wieschollek, Lensch 2018, "Will people like your image? Learning the aesthetic space",
sections 4.2 and 5.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from heads.losses import LossContext, LossSpec, register_loss
from heads.options import HeadOption, declare_options
from heads.registry import POOLED_KINDS, Block, HeadSpec, register_head

EMBEDDING_DIM = 1000  # the paper's projection from pool5
TRIPLET_MARGIN = 0.2  # m: unstated in the paper; FaceNet's value for squared distances on the unit sphere
DIRECTION_MARGIN = 1.0  # m̃: unstated; about 3 % of a fresh head's norm (≈ 35 for d = 1000, standardised input)
REJECT_RATIO = 0.7  # the paper's rejection rule
# A linear projection trained from scratch on stored features needs larger steps than the paper's fine-tuning
# (SGD at 1e-3): at 1e-3 a synthetic linear store reached test SRCC 0.12 in 15 epochs, at 1e-2 then 1e-3 0.91.
TRIPLET_STAGES = (1e-2, 1e-3, 1e-4)


def TripletEmbedding(input_shape: Sequence[int], *, n_bins: int = 0, blocks: Sequence[Block] = (), seed: int = 0,
                     embedding_dim: int = EMBEDDING_DIM):
    """A linear projection to the aesthetic embedding φ; outputs `[‖φ‖, φ]`.

    Reference: Schwarz et al. 2018, section 5 (a 1000-d projection of ResNet-50's pool5).

    Args:
        input_shape: `(D,)`, a pooled feature vector (narrow MLSP, GMP, SPP, fc7).
        embedding_dim: d.
        n_bins, blocks, seed: unused (the factory's common signature).
    Returns:
        A `keras.Model` named "triplet" with 1 + d outputs.
    """
    import keras

    from heads.layers import NormAndEmbedding

    if embedding_dim < 2:
        raise ValueError(f"embedding_dim must be at least 2. Received: embedding_dim={embedding_dim}")
    inp = keras.Input(tuple(input_shape), name="features")
    phi = keras.layers.Dense(embedding_dim, name="phi")(inp)
    return keras.Model(inp, NormAndEmbedding(name="norm_and_embedding", dtype="float32")(phi), name="triplet")


def directional_triplet_numpy(s, phi, margin=TRIPLET_MARGIN, direction_margin=DIRECTION_MARGIN,
                              ratio=REJECT_RATIO) -> float:
    """The loss triplet by triplet, straight from the paper's equations: the reference for tests."""
    s, phi = np.asarray(s, np.float64), np.asarray(phi, np.float64)
    norm = np.linalg.norm(phi, axis=1)
    unit = phi / norm[:, None]
    total, count = 0.0, 0
    for a in range(len(s)):
        for p in range(len(s)):
            for n in range(len(s)):
                d_ap, d_an, d_pn = abs(s[a] - s[p]), abs(s[a] - s[n]), abs(s[p] - s[n])
                if a == p or d_an == 0 or d_ap > ratio * d_an or d_ap > ratio * d_pn:
                    continue
                l_e = max(0.0, margin + np.sum((unit[a] - unit[p]) ** 2) - np.sum((unit[a] - unit[n]) ** 2))
                l_d = max(0.0, direction_margin - np.sign(s[n] - s[a]) * (norm[n] - norm[a]))
                total, count = total + l_e + l_d, count + 1
    return total / max(count, 1)


TRIPLET_LOSS_OPTIONS = declare_options(
    HeadOption("triplet_margin", "float", "margin m of the embedding loss", default=TRIPLET_MARGIN, minimum=0),
    HeadOption("direction_margin", "float", "margin of the direction loss on the norms", default=DIRECTION_MARGIN,
               minimum=0),
)
TRIPLET_HEAD_OPTIONS = declare_options(
    HeadOption("embedding_dim", "int", "embedding size d", default=EMBEDDING_DIM, minimum=2),
)


def _directional_triplet(context: LossContext):
    from heads.triplet_loss import DirectionalTripletLoss

    given = context.options
    return DirectionalTripletLoss(given.get("triplet_margin", TRIPLET_MARGIN),
                                  given.get("direction_margin", DIRECTION_MARGIN), REJECT_RATIO)


register_loss(LossSpec("directional_triplet", _directional_triplet,
                       "triplet loss on the unit-norm embedding + direction hinge on the norms, over the batch's "
                       "triplets that pass the 0.7 rejection rule (Schwarz et al. 2018, eq. 2-3)",
                       options=TRIPLET_LOSS_OPTIONS))


register_head(HeadSpec(
    "triplet", TripletEmbedding, POOLED_KINDS, "embedding", "keras", TRIPLET_STAGES, "directional_triplet",
    has_embedding=True, options=TRIPLET_HEAD_OPTIONS, recipe={"input_norm": "log-standard", "early_stop": "srcc", "max_epochs": 30},
    description=f"linear projection to a {EMBEDDING_DIM}-d embedding; directional triplet loss; score = ‖φ‖",
    reference="Schwarz et al. 2018"))
