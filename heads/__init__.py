"""Heads on stored features: the registry and factory, one file per head family (registration on import)."""
from heads.registry import (  # noqa: F401
    HEADS,
    HeadMismatchError,
    HeadSpec,
    create_head,
    get_head,
    head_options,
    list_heads,
    option_users,
    register_head,
)
from heads import adaptive, baselines, distribution, mlp, mlsp_fc, personal, pool3fc, rank, triplet, validated  # noqa: F401  (registration)
