"""Estimators of the validated baselines (`heads.validated`): imported when a head is built.

Fair linear and kernel baselines whose regularisation is chosen on the validation split.

`ridge`: ridge regression over a grid of 25 penalties spanning six decades relative to the largest
squared singular value of the (normalised) training features, solved once through an SVD; `svr`: RBF
SVR over a 3 x 3 grid of C and gamma (gamma relative to 1 / features). Both pick the setting with the
best validation SRCC (ties: the stronger regularisation) and use the run's `--input-norm` (fitted on the
training split by the trainer and saved with the estimator). They are the yardstick every trained head
must beat on the same store (a ridge on log1p-standardised VGG16-HED MLSP features reached SRCC 0.68 on
BIQ2021, design.md section 13).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

RIDGE_GRID = np.logspace(-6, 0, 25)
SVR_C = (1.0, 10.0, 100.0)
SVR_GAMMA = (0.1, 1.0, 10.0)  # times 1 / n_features (sklearn's "scale" on standardised inputs)


def _srcc(y, pred) -> float:
    from scipy.stats import spearmanr

    value = spearmanr(y, pred).statistic
    return float(value) if np.isfinite(value) else -np.inf


def _pick(scores: list) -> int:
    """Index of the best score; among equal ones, the last (the grids end in stronger regularisation)."""
    best = max(scores)
    return max(i for i, s in enumerate(scores) if s >= best - 1e-12)


class ValidatedRidge(RegressorMixin, BaseEstimator):
    """Ridge regression whose penalty is the grid value with the best validation SRCC.

    Args:
        grid: penalties as fractions of the largest squared singular value of the centred training features.
    """

    def __init__(self, grid=tuple(RIDGE_GRID)):
        self.grid = grid

    def fit(self, x, y, x_val: Optional[np.ndarray] = None, y_val: Optional[np.ndarray] = None):
        if x_val is None or y_val is None:
            raise ValueError("ValidatedRidge chooses its penalty on validation data: pass x_val and y_val")
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self.x_mean_, self.y_mean_ = x.mean(axis=0), y.mean()
        u, s, vt = np.linalg.svd(x - self.x_mean_, full_matrices=False)
        uty = u.T @ (y - self.y_mean_)
        alphas = float(s[0] ** 2) * np.asarray(self.grid, np.float64) if s.size else np.asarray(self.grid)
        xv = np.asarray(x_val, np.float64) - self.x_mean_
        coefs = [vt.T @ (s / (s**2 + a) * uty) for a in alphas[::-1]]  # strongest penalty last
        scores = [_srcc(y_val, xv @ c) for c in coefs]
        best = _pick(scores)
        self.coef_, self.alpha_ = coefs[best], float(alphas[::-1][best])
        self.val_srcc_ = scores[best]
        return self

    def predict(self, x):
        return (np.asarray(x, np.float64) - self.x_mean_) @ self.coef_ + self.y_mean_


class ValidatedSVR(RegressorMixin, BaseEstimator):
    """RBF SVR on standardised scores with (C, gamma) chosen by validation SRCC."""

    def __init__(self, c_grid=SVR_C, gamma_grid=SVR_GAMMA):
        self.c_grid, self.gamma_grid = c_grid, gamma_grid

    def fit(self, x, y, x_val: Optional[np.ndarray] = None, y_val: Optional[np.ndarray] = None):
        from heads.baselines import _scaled_target

        if x_val is None or y_val is None:
            raise ValueError("ValidatedSVR chooses C and gamma on validation data: pass x_val and y_val")
        from sklearn.svm import SVR

        d = np.asarray(x).shape[1]
        candidates = [_scaled_target(SVR(kernel="rbf", C=c, gamma=g / d))
                      for g in self.gamma_grid for c in self.c_grid]
        scores = []
        for model in candidates:
            model.fit(x, y)
            scores.append(_srcc(y_val, model.predict(x_val)))
        best = _pick(scores)
        self.model_ = candidates[best]
        self.params_ = self.model_.regressor_.get_params()
        self.val_srcc_ = scores[best]
        return self

    def predict(self, x):
        return self.model_.predict(x)
