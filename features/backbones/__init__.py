"""Backbone registry: one file per family registers its `BackboneSpec`s on import."""
from features.backbones.base import (  # noqa: F401
    BACKBONES,
    PREPROCESSING,
    BackboneSpec,
    PackagedWeights,
    get_backbone,
    list_backbones,
    register_backbone,
)
from features.backbones import (  # noqa: F401  (registration)
    convnext, efficientnet_lite, efficientnet_v2, inception, resnet, vgg)

# The backbone a user gets when naming none: ImageNet weights that install offline (README: why Lite0).
DEFAULT_BACKBONE = "efficientnet_lite0"
