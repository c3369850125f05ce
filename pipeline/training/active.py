"""Which two photos to ask about next, when teaching a personal model (`heads.personal`).

The first answers are random pairs (a model fitted on a handful of answers is too unsure of itself for
its uncertainty to mean anything: plain uncertainty sampling lost to random choice below 20 answers in the
issue's simulation), and so is every third one later (`unbiased_mask`: the answers the choice between the
general and the personal ranking is judged on). Otherwise the next pair is the one, among a few thousand
random candidates never asked, the personal model is least sure about: until `SWITCH` answers, the pair
closest to a tie under its current weights (margin sampling); afterwards the tie-ness p(1−p) weighted by
how far the pair reaches along the posterior's spread (√(dᵀΣd)), so that near-identical photos (a tie the
answer cannot resolve) and pairs the weights already pin down are both passed over. Chosen on the
simulation of `benchmarks/bench_personal.py` (docs/personal.md), against BALD and the two rules alone.
"""
from __future__ import annotations

from typing import Iterable, Optional, Tuple

import numpy as np

RANDOM_FIRST = 10
RANDOM_EVERY = 3  # later, every third pair is still a random one: unbiased answers to validate on
CANDIDATES = 3000
SWITCH = 60


def is_random_turn(n_answers: int) -> bool:
    """Whether the pair after `n_answers` answers is drawn at random (not chosen by the model)."""
    return n_answers < RANDOM_FIRST or (n_answers - RANDOM_FIRST) % RANDOM_EVERY == RANDOM_EVERY - 1


def unbiased_mask(n_answers: int) -> np.ndarray:
    """Which of the first `n_answers` answers (asked by `next_pair`) came from random pairs: the model's choice
    between the general and the personal ranking is judged on those alone (pairs picked because the model was
    unsure would flatter a model that disagrees with the general one)."""
    return np.array([is_random_turn(k) for k in range(n_answers)], bool)


def informativeness(model, da: np.ndarray, n_answers: int) -> np.ndarray:
    """How much asking about each pair (rows of `da`: code differences) should teach the personal model."""
    mu = da @ model.theta_personal_
    if n_answers < SWITCH:
        return -np.abs(mu)
    p = 1.0 / (1.0 + np.exp(-mu))
    return p * (1 - p) * np.sqrt(np.einsum("ij,jk,ik->i", da, model.covariance_, da))


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
    if model is None or codes is None or is_random_turn(n_answers) or n < 3:
        return random_pair(n, asked, rng)
    cand = rng.integers(0, n, size=(CANDIDATES, 2))
    keep = [i for i, (a, b) in enumerate(cand) if a != b and (a, b) not in asked and (b, a) not in asked]
    if not keep:
        return random_pair(n, asked, rng)
    cand = cand[keep]
    score = informativeness(model, codes[cand[:, 0]] - codes[cand[:, 1]], n_answers)
    a, b = cand[int(np.argmax(score))]
    return int(a), int(b)
