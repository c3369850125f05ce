"""ResNet family (`resnet50`, `resnet101`): the four stage outputs as blocks.

Reference: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016; APM (Murray &
Gordo 2017) uses ResNet-101's last block for SPP features.
"""
from __future__ import annotations

from features.backbones.base import BackboneSpec, keras_application_builder, register_backbone

RESNET_CHANNELS = (256, 512, 1024, 2048)


def _blocks(depths):
    return tuple(f"conv{stage}_block{n}_out" for stage, n in zip(range(2, 6), depths))


for _name, _cls, _depths, _file, _bpp in (
    ("resnet50", "ResNet50", (3, 4, 6, 3), "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", 320),
    ("resnet101", "ResNet101", (3, 4, 23, 3), "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5", 380),
):
    _blk = _blocks(_depths)
    register_backbone(
        BackboneSpec(
            name=_name,
            blocks=_blk,
            channels=RESNET_CHANNELS,
            last_block=_blk[-1],
            last_channels=2048,
            preprocessing="caffe",
            min_side=32,
            default_weights="imagenet",
            build=keras_application_builder(_cls),
            imagenet_files=(_file,),
            bytes_per_pixel=_bpp,
            reference="He et al. 2016, Deep Residual Learning for Image Recognition",
        )
    )
