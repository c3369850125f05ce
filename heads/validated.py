"""Validated baselines: `ridge` and `svr`, their regularisation chosen on the validation split.

The yardstick every trained head must beat on the same store; both take log1p and standardise their
input unless the run's `--input-norm` says otherwise (fitted on the training split by the trainer and
saved with the estimator). The estimators live in
`heads.validated_estimators` (scikit-learn is imported only when one is built).
"""
from __future__ import annotations

from heads.baselines import MAX_RBF_ROWS
from heads.registry import POOLED_KINDS, HeadSpec, register_head


def Ridge(input_shape=(), *, n_bins: int = 0, blocks=(), seed: int = 0):
    """`ridge`: ridge regression, penalty chosen on validation (see `ValidatedRidge`)."""
    from heads.validated_estimators import ValidatedRidge

    return ValidatedRidge()


def SVRValidated(input_shape=(), *, n_bins: int = 0, blocks=(), seed: int = 0):
    """`svr`: RBF SVR, C and gamma chosen on validation (see `ValidatedSVR`)."""
    from heads.validated_estimators import ValidatedSVR

    return ValidatedSVR()


# log1p then standardisation: ridge 0.544 -> 0.577 test SRCC on BIQ2021 at half resolution (README)
_VALIDATED = dict(trainer="sklearn", lr_stages=None, loss=None, uses_validation=True,
                  recipe={"input_norm": "log-standard"})
register_head(HeadSpec("ridge", Ridge, POOLED_KINDS, "mos", **_VALIDATED,
                       saved_types=("heads.validated_estimators.ValidatedRidge",),
                       description="ridge regression, penalty chosen on validation SRCC (25 values, 6 decades)",
                       reference="the fair linear yardstick (issue 9)"))
register_head(HeadSpec("svr", SVRValidated, POOLED_KINDS, "mos", max_rows=MAX_RBF_ROWS, **_VALIDATED,
                       saved_types=("heads.validated_estimators.ValidatedSVR",),
                       description="RBF SVR, C in {1, 10, 100} and gamma in {0.1, 1, 10}/d chosen on validation",
                       reference="photo-critic's SVM with its parameters tuned"))
