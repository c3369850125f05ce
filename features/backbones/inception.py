"""Inception family: InceptionResNet-v2 (`irnv2`) and Inception-v3 (`iv3`).

Reference: Hosu et al., "Effective Aesthetics Prediction with Multi-level Spatially Pooled
Features", CVPR 2019 (block lists of the authors' code, design.md section 3).
"""
from __future__ import annotations

from features.backbones.base import BackboneSpec, keras_application_builder, register_backbone

# The branch concatenations *before* each residual up-projection (not the residual outputs).
IRNV2_BLOCKS = (
    ("mixed_5b",)
    + tuple(f"block35_{i}_mixed" for i in range(1, 11))
    + ("mixed_6a",)
    + tuple(f"block17_{i}_mixed" for i in range(1, 21))
    + ("mixed_7a",)
    + tuple(f"block8_{i}_mixed" for i in range(1, 11))
)
IRNV2_CHANNELS = (320,) + (128,) * 10 + (1088,) + (384,) * 20 + (2080,) + (448,) * 10

# By explicit name: mixed9_0 / mixed9_1 are inner concatenations, not blocks.
IV3_BLOCKS = tuple(f"mixed{i}" for i in range(11))
IV3_CHANNELS = (256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048)


register_backbone(
    BackboneSpec(
        name="irnv2",
        blocks=IRNV2_BLOCKS,
        channels=IRNV2_CHANNELS,
        last_block="conv_7b_ac",
        last_channels=1536,
        preprocessing="tf",
        min_side=75,
        default_weights="imagenet",
        build=keras_application_builder("InceptionResNetV2"),
        imagenet_files=("inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",),
        bytes_per_pixel=250,
        reference="Szegedy et al. 2017, Inception-v4/Inception-ResNet; MLSP blocks of Hosu et al. 2019",
    )
)

register_backbone(
    BackboneSpec(
        name="iv3",
        blocks=IV3_BLOCKS,
        channels=IV3_CHANNELS,
        last_block="mixed10",
        last_channels=2048,
        preprocessing="tf",
        min_side=75,
        default_weights="imagenet",
        build=keras_application_builder("InceptionV3"),
        imagenet_files=("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",),
        bytes_per_pixel=250,
        reference="Szegedy et al. 2016, Rethinking the Inception Architecture; MLSP blocks of Hosu et al. 2019",
    )
)
