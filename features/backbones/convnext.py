"""ConvNeXt-Tiny (`convnext_tiny`) from keras.applications: every block's residual output as a tap.

Four stages of 3, 3, 9, 3 blocks (96, 192, 384, 768 wide). keras' graph adds each block's residual with an
unnamed operation, so the builder finds the add that consumes each block's `..._identity` layer and names
its output `stage{S}_block{B}_out` (deterministic names, whatever keras numbered the adds). The model
normalises [0, 255] pixels itself. ImageNet weights come through keras' download (`--weights imagenet`
where the network allows); offline it builds with `--weights random:SEED` or a file.

Reference: Liu et al., "A ConvNet for the 2020s", CVPR 2022.
"""
from __future__ import annotations

from features.backbones.base import BackboneSpec, keras_application_builder, register_backbone

BPP = 1300  # bench-memory: 811-989 bytes per pixel measured at 1-4 MP (random weights)
STAGES = ((96, 3), (192, 3), (384, 9), (768, 3))
_PREFIX = "convnext_tiny"
_TAPS = tuple((f"stage{s}_block{b}_out", f"{_PREFIX}_stage_{s}_block_{b}_identity", width)
              for s, (width, blocks) in enumerate(STAGES) for b in range(blocks))


def _build(weights, include_top=False):
    """keras' ConvNeXtTiny with one named Identity per block on the residual sum."""
    import keras

    if include_top:
        raise ValueError("convnext_tiny has no fc7; use --backbone vgg16 for fc7")
    base = keras_application_builder("ConvNeXtTiny")(weights)
    outputs = []
    for tap, identity, _ in _TAPS:
        adds = [node for node in base.get_layer(identity)._outbound_nodes
                if type(node.operation).__name__ == "Add"]
        if len(adds) != 1:
            raise RuntimeError(f"{identity}: expected one residual add after it in keras' ConvNeXt graph, "
                               f"found {len(adds)} (keras {keras.__version__} changed the graph)")
        outputs.append(keras.layers.Identity(name=tap)(adds[0].outputs[0]))
    return keras.Model(base.input, outputs, name=_PREFIX)


register_backbone(BackboneSpec(
    name="convnext_tiny",
    blocks=tuple(t[0] for t in _TAPS),
    channels=tuple(t[2] for t in _TAPS),
    last_block=_TAPS[-1][0],
    last_channels=768,
    preprocessing="raw",
    min_side=32,
    default_weights="imagenet",
    build=_build,
    imagenet_files=("convnext_tiny_notop.h5",),
    bytes_per_pixel=BPP,
    reference="Liu et al. 2022, ConvNeXt (keras.applications; blocks = each block's residual output)",
))
