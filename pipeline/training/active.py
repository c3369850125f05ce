"""Which two photos to ask about next, when teaching a personal model (`heads.personal`).

The first answers are random pairs (a model fitted on a handful of answers is too unsure of itself for
its uncertainty to mean anything: plain uncertainty sampling lost to random choice below 20 answers in the
issue's simulation). Afterwards the next pair is the candidate with the largest expected information
about the personal weights (BALD, Houlsby et al. 2011, with the probit approximation of a logistic model
under its Laplace posterior): pairs the model cannot call yet and whose outcome would move it, not pairs of
near-identical photos (uncertain but uninformative) nor pairs it is sure about.
"""
from __future__ import annotations

from typing import Iterable, Optional, Tuple

import numpy as np

RANDOM_FIRST = 10
CANDIDATES = 3000


def _bits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def expected_information(model, da: np.ndarray) -> np.ndarray:
    """BALD score (bits) of pairs whose code differences are the rows of `da`, under the model's posterior.

    The logistic σ(m) is taken as the probit Φ(m·√(π/8)); with m ~ N(μ, s²) the answer's entropy is
    h(Φ(μ'/√(1+s'²))) and its expected entropy given the weights C/√(s'²+C²)·exp(−μ'²/(2(s'²+C²))),
    C = √(π ln 2 / 2) (Houlsby et al. 2011, eq. 3-4)."""
    from scipy.special import ndtr

    mu = (da @ model.theta_) * np.sqrt(np.pi / 8)
    var = np.einsum("ij,jk,ik->i", da, model.covariance_, da) * (np.pi / 8)
    c2 = np.pi * np.log(2) / 2
    return _bits(ndtr(mu / np.sqrt(1 + var))) - np.sqrt(c2 / (var + c2)) * np.exp(-mu ** 2 / (2 * (var + c2)))


def random_pair(n: int, asked: set, rng: np.random.Generator) -> Tuple[int, int]:
    """A uniformly random pair of distinct photos not asked about before."""
    for _ in range(1000):
        a, b = (int(v) for v in rng.choice(n, size=2, replace=False))
        if (a, b) not in asked and (b, a) not in asked:
            return a, b
    raise ValueError("every pair of the library has been asked already")


def next_pair(model, codes: Optional[np.ndarray], n: int, asked: Iterable[Tuple[int, int]], n_answers: int,
              rng: np.random.Generator) -> Tuple[int, int]:
    """Row indices (a, b) of the next pair to ask about.

    Args:
        model: the current fitted `PersonalHead` (None before any answer).
        codes: the library's rows encoded by the model (`model.encode`), or None.
        n: photos in the library.
        asked: pairs already asked (answered or skipped): never asked again.
        n_answers: answers so far.
    """
    asked = set(map(tuple, asked))
    if model is None or codes is None or n_answers < RANDOM_FIRST or n < 3:
        return random_pair(n, asked, rng)
    cand = rng.integers(0, n, size=(CANDIDATES, 2))
    keep = [i for i, (a, b) in enumerate(cand) if a != b and (a, b) not in asked and (b, a) not in asked]
    if not keep:
        return random_pair(n, asked, rng)
    cand = cand[keep]
    score = expected_information(model, codes[cand[:, 0]] - codes[cand[:, 1]])
    a, b = cand[int(np.argmax(score))]
    return int(a), int(b)
