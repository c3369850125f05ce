"""Head registry: one file per family registers its `HeadSpec`s on import."""
from heads.base import HEADS, HeadMismatchError, HeadSpec, get_head, list_heads  # noqa: F401
from heads import baselines, distribution, mlsp_fc, pool3fc  # noqa: F401  (registration)
