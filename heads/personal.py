"""`personal`: one person's taste learnt from their answers, on top of a general run's score.

A Bradley-Terry model of the person's choices: photo a is preferred to b with probability
σ(u(a) − u(b)), where u(x) = α·z(x) + w·φ(x). z is the general run's score, standardised over the
person's library (the prior: with w = 0 the personal ranking is the general one), φ the library's
features projected on their top principal components and scaled to unit variance (the residual space).
α and w are fitted by penalised maximum likelihood on the answered pairs (ratings become the pairs they
imply); the penalty on w shrinks the personal model toward the prior, and its strength is chosen by
k-fold cross-validation on the person's own answers among a grid that includes w = 0 (the prior alone):
with answers that say nothing new the general ranking is kept.

Reference: the personalised-aesthetics setting of Ren et al., "Personalized Image Aesthetics", ICCV 2017
(a generic model adapted with a user's 10-100 rated photos); the pairwise model is Bradley and Terry (1952).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from sklearn.base import BaseEstimator

from heads.registry import HeadSpec, register_head

COMPONENTS = 64
PENALTIES = (1.0, 3.0, 10.0, 30.0, 100.0)  # on w; the prior alone is always a candidate too
ALPHA_PRIOR, ALPHA_PENALTY = 1.0, 1.0  # α's prior: a few answers cannot turn the general score around
MIN_ALPHA = 0.05
FOLDS = 5
MARGIN_SE = 1.0  # a personal model must beat the prior on held-back answers by this many standard errors
MIN_ANSWERS = 12  # below it the general ranking is kept (k-fold on 10 answers chose wrongly too often)
NEWTON_STEPS = 25


def _sigmoid(v):
    return 0.5 * (1.0 + np.tanh(0.5 * v))


def fit_bradley_terry(diff: np.ndarray, penalty: Optional[float]):
    """(θ = [α, w...], Hessian) maximising Σ log σ(diff·θ) − penalty/2·|w|² − ALPHA_PENALTY/2·(α − ALPHA_PRIOR)²,
    with α ≥ MIN_ALPHA.

    `penalty=None` fits α alone (w = 0, the prior). Newton's method: the problem is convex and small."""
    dims = diff.shape[1] if penalty is not None else 1
    d = diff[:, :dims]
    reg = np.full(dims, penalty if penalty is not None else 0.0)
    reg[0] = ALPHA_PENALTY
    center = np.zeros(dims)
    center[0] = ALPHA_PRIOR
    theta = center.copy()
    for _ in range(NEWTON_STEPS):
        p = _sigmoid(d @ theta)
        grad = d.T @ (1.0 - p) - reg * (theta - center)
        hess = (d * (p * (1.0 - p))[:, None]).T @ d + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        theta = theta + step
        theta[0] = max(theta[0], MIN_ALPHA)  # the general score never counts against a photo
        if np.abs(step).max() < 1e-8:
            break
    p = _sigmoid(d @ theta)
    hess = (d * (p * (1.0 - p))[:, None]).T @ d + np.diag(reg)
    full = np.zeros(diff.shape[1])
    full[:dims] = theta
    return full, hess


class PersonalHead(BaseEstimator):
    """The personal model (see the module's docstring). `fit(X, pairs)`, `predict(X)`.

    X's first column is the general run's score, the rest the photo's pooled features; `pairs` are (better,
    worse) row indices into X. After `fit`: `choice_` ("personal" or "general"), `penalty_`,
    `cv_accuracy_` / `cv_accuracy_general_` (agreement with held-back answers, k-fold), `n_answers_`.

    Args:
        components: principal components of the residual space.
        seed: the folds' shuffle.
    """

    def __init__(self, components: int = COMPONENTS, seed: int = 0):
        self.components = components
        self.seed = seed

    # the library's projection: computed once per library, reused by every refit ------------------------
    def fit_library(self, X) -> "PersonalHead":
        """Standardisation of the general score and of each feature, and the features' principal directions,
        over the library."""
        from sklearn.utils.extmath import randomized_svd

        X = np.asarray(X, np.float64)
        g, f = X[:, 0], X[:, 1:]
        self.g_mean_, self.g_std_ = float(g.mean()), float(g.std() or 1.0)
        self.f_mean_, self.f_std_ = f.mean(axis=0), f.std(axis=0) + 1e-6
        k = int(min(self.components, max(1, min(f.shape) - 1)))
        _, s, vt = randomized_svd((f - self.f_mean_) / self.f_std_, k, random_state=self.seed)
        self.components_ = vt
        self.f_scale_ = np.maximum(s / np.sqrt(max(1, len(f) - 1)), 1e-12)
        return self

    def encode(self, X) -> np.ndarray:
        """Rows [z, φ] of photos: the standardised general score and the unit-variance projections."""
        X = np.asarray(X, np.float64)
        z = (X[:, :1] - self.g_mean_) / self.g_std_
        phi = ((X[:, 1:] - self.f_mean_) / self.f_std_) @ self.components_.T / self.f_scale_
        return np.hstack([z, phi])

    # the answers -----------------------------------------------------------------------------------
    def fit(self, X, pairs, library_fitted: bool = False, unbiased=None) -> "PersonalHead":
        """Learns the answers `pairs` ((better, worse) rows of X). `unbiased`: a mask of the answers whose pairs
        were drawn at random (the others were chosen by a model), on which alone the prior and the personal
        model are compared; None: all."""
        if not library_fitted or not hasattr(self, "components_"):
            self.fit_library(X)
        pairs = np.asarray(pairs, int).reshape(-1, 2)
        codes = self.encode(X)
        diff = codes[pairs[:, 0]] - codes[pairs[:, 1]]
        self.n_answers_ = int(len(pairs))
        candidates = [None] + list(PENALTIES)
        losses, accuracies = self._cross_validate(diff, candidates)
        judged = np.ones(len(pairs), bool) if unbiased is None else np.asarray(unbiased, bool)[:len(pairs)]
        enough = len(pairs) >= MIN_ANSWERS and judged.sum() >= 2
        best = _one_standard_error_choice(losses[:, judged] if enough else losses[:, :0])
        self.penalty_ = candidates[best]
        self.choice_ = "general" if self.penalty_ is None else "personal"
        self.cv_accuracy_, self.cv_accuracy_general_ = accuracies[best], accuracies[0]
        self.theta_, _ = fit_bradley_terry(diff, self.penalty_) if len(diff) else (np.eye(codes.shape[1])[0], None)
        best_personal = candidates[1 + int(np.argmin(losses[1:].mean(axis=1)))]
        if len(diff):
            self.theta_personal_, hess = fit_bradley_terry(diff, best_personal)
        else:
            self.theta_personal_, hess = np.eye(codes.shape[1])[0] * ALPHA_PRIOR, np.eye(codes.shape[1])
        self.covariance_ = np.linalg.inv(hess)  # the personal posterior (mean, spread): for choosing the next pair
        u = codes @ self.theta_
        self.u_mean_, self.u_std_ = float(u.mean()), float(u.std() or 1.0)
        return self

    def _cross_validate(self, diff: np.ndarray, candidates: list):
        """Held-out log loss of each answer under each candidate penalty ((candidates, n), k-fold over the
        answers) and each candidate's held-out accuracy."""
        n = len(diff)
        if n < 2:
            return np.zeros((len(candidates), max(n, 1))), [float("nan")] * len(candidates)
        folds = np.array_split(np.random.default_rng(self.seed).permutation(n), min(FOLDS, n))
        losses, hits = np.zeros((len(candidates), n)), np.zeros(len(candidates))
        for held in folds:
            train = np.setdiff1d(np.arange(n), held)
            for i, pen in enumerate(candidates):
                theta, _ = fit_bradley_terry(diff[train], pen)
                margin = diff[held] @ theta
                losses[i, held] = np.logaddexp(0.0, -margin)
                hits[i] += (margin > 0).sum() + 0.5 * (margin == 0).sum()
        return losses, list(hits / n)

    def utility(self, X) -> np.ndarray:
        return self.encode(X) @ self.theta_

    def predict(self, X) -> np.ndarray:
        """Personal scores on the general run's scale (same mean and spread over the library)."""
        return self.g_mean_ + self.g_std_ * (self.utility(X) - self.u_mean_) / self.u_std_


def _one_standard_error_choice(losses: np.ndarray) -> int:
    """The candidate to keep: the prior (row 0) unless a personal penalty's held-out log loss beats it by more
    than `MARGIN_SE` standard errors of the paired difference; then the best such one."""
    n = losses.shape[1]
    if n < 2:
        return 0
    gain = losses[0] - losses[1:]  # per answer: how much better each personal candidate predicted it
    mean, se = gain.mean(axis=1), gain.std(axis=1, ddof=1) / np.sqrt(n)
    ok = np.flatnonzero(mean > MARGIN_SE * se)
    return 0 if not len(ok) else 1 + int(ok[np.argmax(mean[ok])])


def _personal(input_shape=(), *, n_bins: int = 0, blocks=(), seed: int = 0):
    return PersonalHead(seed=seed)


register_head(HeadSpec(
    "personal", _personal, target="mos", trainer="personal", lr_stages=None, loss=None, input_norm="none",
    saved_types=("heads.personal.PersonalHead",),
    description="a person's taste from their answers on top of a general run (iaa personalize, serve --teach-dir)",
    reference="Ren et al. 2017, personalized image aesthetics; Bradley-Terry pairwise model"))
