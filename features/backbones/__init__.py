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
from features.backbones import efficientnet_lite, inception, resnet, vgg  # noqa: F401  (registration)
