"""scikit-learn baselines on pooled features: RBF SVM (regression, and photo-critic's binary task),
linear SVM for large sets, random forest, and the RBF SVM through a Nystroem kernel map for sets too
large for an exact kernel fit (photo-critic's 513k photos).

Reference: the photo-critic baseline (section IV-A: AlexNet's "activations from the sixth layer" + SVM with RBF
kernel, C = 10, gamma = 1e-6, and a 10-tree random forest, on the top and bottom 20 % of photos by
popularity); VGG16's fc7 (`--features fc7`) stands in for AlexNet's layer. design.md section 7.
"""
from __future__ import annotations

from heads.registry import HEADS, POOLED_KINDS, HeadSpec, register_head

SVM_C = 10.0
SVM_GAMMA = 1e-6
RF_TREES = 10
MAX_RBF_ROWS = 20_000  # an RBF SVM's fit grows about quadratically: beyond this, hours
NYSTROEM_COMPONENTS = 2_000  # kernel map rank: rows x components floats in memory during the fit


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


def _rf_classifier(input_shape=(), *, n_bins: int = 0, blocks=(), seed: int = 0):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=RF_TREES, random_state=seed, n_jobs=-1)


def _nystroem_svc(input_shape=(), *, n_bins: int = 0, blocks=(), seed: int = 0):
    """The same RBF kernel (gamma 1e-6) approximated by a Nystroem map of rank `NYSTROEM_COMPONENTS`, then a
    linear SVM with the same C: linear in rows, so photo-critic's 513k photos fit in minutes, not days."""
    from sklearn.kernel_approximation import Nystroem
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    return make_pipeline(Nystroem(kernel="rbf", gamma=SVM_GAMMA, n_components=NYSTROEM_COMPONENTS, random_state=seed),
                         LinearSVC(C=SVM_C, dual="auto", max_iter=10_000, random_state=seed))


def _linear_svr(input_shape=(), *, n_bins: int = 0, blocks=(), seed: int = 0):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVR

    return _scaled_target(make_pipeline(StandardScaler(), LinearSVR(C=1.0, max_iter=10_000, random_state=seed)))


def _rf(input_shape=(), *, n_bins: int = 0, blocks=(), seed: int = 0):
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=RF_TREES, random_state=seed, n_jobs=-1)


_SKLEARN = dict(trainer="sklearn", lr_stages=None, loss=None, input_norm="none")  # as published
_TREES = ("sklearn.tree._tree.Tree",)  # the forests' fitted trees (skops does not trust them by default)
for _spec in (
    HeadSpec("svm_photo_critic", _svr, POOLED_KINDS, "mos", max_rows=MAX_RBF_ROWS, **_SKLEARN,
             description="photo-critic's fixed setting: SVR, RBF kernel, C=10, gamma=1e-6, on standardised "
                         "scores (`svr` chooses C and gamma on validation)",
             reference="photo-critic baseline"),
    HeadSpec("svm_binary", _svc, POOLED_KINDS, "top_bottom", max_rows=MAX_RBF_ROWS, **_SKLEARN,
             description="SVC (RBF, C=10, gamma=1e-6) on the top vs bottom 20 % by score",
             reference="photo-critic baseline"),
    HeadSpec("svm_binary_nystroem", _nystroem_svc, POOLED_KINDS, "top_bottom", **_SKLEARN,
             description=f"svm_binary for large sets: Nystroem RBF map (gamma=1e-6, {NYSTROEM_COMPONENTS} "
                         f"components) + linear SVC (C=10)", reference="photo-critic baseline, approximated"),
    HeadSpec("rf_binary", _rf_classifier, POOLED_KINDS, "top_bottom", saved_types=_TREES, **_SKLEARN,
             description="random forest classifier, 10 trees, on the top vs bottom 20 % by score",
             reference="photo-critic baseline"),
    HeadSpec("svm_linear", _linear_svr, POOLED_KINDS, "mos", **_SKLEARN,
             description="standardised features + linear SVR: the RBF SVM's stand-in for large sets"),
    HeadSpec("rf", _rf, POOLED_KINDS, "mos", saved_types=_TREES, **_SKLEARN, description="random forest regressor, 10 trees",
             reference="photo-critic baseline"),
):
    register_head(_spec)
HEADS.alias("svm", "svm_photo_critic")  # its name before the tuned `svr` sat beside it
