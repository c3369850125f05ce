"""Backbone registry: one file per family registers its `BackboneSpec`s on import."""
from features.backbones.base import (  # noqa: F401
    BACKBONES,
    PREPROCESSING,
    BackboneSpec,
    get_backbone,
    list_backbones,
    register_backbone,
)
from features.backbones import inception, resnet, vgg  # noqa: F401  (registration)
