"""EfficientNetV2-S (`efficientnetv2_s`) from keras.applications: every block's output as a tap.

Fused-MBConv stages 1-3, MBConv stages 4-6 (40 blocks: 24 ×2, 48 ×4, 64 ×4, 128 ×6, 160 ×9, 256 ×15) and
the 1280-wide head. A block ends in its residual add (`blockNx_add`) or, where the stride or width changes,
in its projection (`blockNa_project_bn`; `_project_activation` in the fused first stage, where the add
follows it). The model rescales [0, 255] pixels itself. ImageNet weights come through keras' download
(`--weights imagenet` where the network allows); offline it builds with `--weights random:SEED` or a file.

Reference: Tan & Le, "EfficientNetV2: Smaller Models and Faster Training", ICML 2021.
"""
from __future__ import annotations

from features.backbones.base import BackboneSpec, keras_application_builder, register_backbone

BPP = 240  # bench-memory: 155-165 bytes per pixel measured at 1-4 MP (random weights)
STAGES = ((24, 2), (48, 4), (64, 4), (128, 6), (160, 9), (256, 15))  # (width, blocks) per stage


def _block_end(stage: int, index: int, width: int, previous: int) -> str:
    name = f"block{stage}{chr(ord('a') + index)}"
    if index > 0 or width == previous:
        return f"{name}_add"
    return f"{name}_project_bn"


def _taps():
    names, channels, previous = [], [], 24  # the stem is 24 wide
    for stage, (width, blocks) in enumerate(STAGES, start=1):
        for index in range(blocks):
            names.append(_block_end(stage, index, width, previous))
            channels.append(width)
            previous = width
    return tuple(names) + ("top_activation",), tuple(channels) + (1280,)


_BLOCKS, _CHANNELS = _taps()

register_backbone(BackboneSpec(
    name="efficientnetv2_s",
    blocks=_BLOCKS,
    channels=_CHANNELS,
    last_block="top_activation",
    last_channels=1280,
    preprocessing="raw",
    min_side=32,
    default_weights="imagenet",
    build=keras_application_builder("EfficientNetV2S"),
    imagenet_files=("efficientnetv2-s_notop.h5",),
    bytes_per_pixel=BPP,
    reference="Tan & Le 2021, EfficientNetV2 (keras.applications; blocks = each block's output)",
))
