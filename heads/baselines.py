"""scikit-learn baselines on pooled features: RBF SVM (regression, and binary at the score
threshold), linear SVM for large sets, random forest.

Reference: the photo-critic baseline (fc7 features + SVM with RBF kernel, C = 10, gamma = 1e-6,
and a 10-tree random forest), design.md section 7.
"""
from __future__ import annotations

from heads.registry import POOLED_KINDS, HeadSpec, register_head

SVM_C = 10.0
SVM_GAMMA = 1e-6
RF_TREES = 10
MAX_RBF_ROWS = 20_000  # an RBF SVM's fit grows about quadratically: beyond this, hours


def _scaled_target(regressor):
    """Fits on standardised scores: SVR's epsilon tube (0.1) would swallow a 0-1 scale whole."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler

    return TransformedTargetRegressor(regressor=regressor, transformer=StandardScaler())


def _svr(input_shape=(), *, n_bins: int = 0, blocks=(), seed: int = 0):
    from sklearn.svm import SVR

    return _scaled_target(SVR(kernel="rbf", C=SVM_C, gamma=SVM_GAMMA))


def _svc(input_shape=(), *, n_bins: int = 0, blocks=(), seed: int = 0):
    from sklearn.svm import SVC

    return SVC(kernel="rbf", C=SVM_C, gamma=SVM_GAMMA, random_state=seed)


def _linear_svr(input_shape=(), *, n_bins: int = 0, blocks=(), seed: int = 0):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVR

    return _scaled_target(make_pipeline(StandardScaler(), LinearSVR(C=1.0, max_iter=10_000, random_state=seed)))


def _rf(input_shape=(), *, n_bins: int = 0, blocks=(), seed: int = 0):
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=RF_TREES, random_state=seed, n_jobs=-1)


_SKLEARN = dict(trainer="sklearn", lr_stages=None, loss=None, input_norm="none")  # as published
for _spec in (
    HeadSpec("svm", _svr, POOLED_KINDS, "mos", max_rows=MAX_RBF_ROWS, **_SKLEARN,
             description="SVR, RBF kernel, C=10, gamma=1e-6, on standardised scores",
             reference="photo-critic baseline"),
    HeadSpec("svm_binary", _svc, POOLED_KINDS, "binary", max_rows=MAX_RBF_ROWS, **_SKLEARN,
             description="SVC (RBF, C=10, gamma=1e-6) on high/low at the score threshold",
             reference="photo-critic baseline"),
    HeadSpec("svm_linear", _linear_svr, POOLED_KINDS, "mos", **_SKLEARN,
             description="standardised features + linear SVR: the RBF SVM's stand-in for large sets"),
    HeadSpec("rf", _rf, POOLED_KINDS, "mos", **_SKLEARN, description="random forest regressor, 10 trees",
             reference="photo-critic baseline"),
):
    register_head(_spec)
