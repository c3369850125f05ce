"""What every backbone family declares: its blocks, preprocessing and how to build it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

from features.registry import Registry

# Mean pixel values subtracted in BGR order.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)

PREPROCESSING = {
    "tf": "RGB float, x / 127.5 - 1",
    "caffe": f"RGB -> BGR, minus ImageNet mean {CAFFE_MEAN_BGR}",
    "hed": f"RGB -> BGR, minus HED mean {HED_MEAN_BGR}",
}


@dataclass(frozen=True)
class BackboneSpec:
    """A CNN backbone seen as an ordered list of feature blocks.

    Attributes:
        name: registry name users type (`irnv2`).
        blocks: layer names whose outputs form the MLSP features, in order.
        channels: channels of each block, same order.
        last_block: layer whose output feeds `spp` and `gmp` (the last conv block).
        last_channels: its channels.
        preprocessing: key of `PREPROCESSING`.
        min_side: smallest image side (pixels) the network accepts.
        default_weights: weights used when the user names none.
        build: `build(weights, include_top) -> keras.Model`; `weights` is None or a
            name the family understands ("imagenet", "hed").
        weight_names: weight names this family accepts besides paths and random:SEED.
        imagenet_files: keras cache file names of the imagenet weights (notop, top).
        bytes_per_pixel: peak memory of one forward pass per input pixel (float32, CPU; measured by
            `benchmarks/bench_memory.py`, with a margin), for `features.memory`'s estimates.
        reference: paper / code the block list follows.
        no_mixed_precision: why the backbone cannot run under Keras' `mixed_float16` policy (empty: it can;
            `iaa extract --precision mixed`).
    """

    name: str
    blocks: Tuple[str, ...]
    channels: Tuple[int, ...]
    last_block: str
    last_channels: int
    preprocessing: str
    min_side: int
    default_weights: str
    build: Callable = field(repr=False, compare=False)
    weight_names: Tuple[str, ...] = ("imagenet",)
    imagenet_files: Tuple[str, ...] = ()
    supports_fc7: bool = False
    bytes_per_pixel: int = 1000
    reference: str = ""
    no_mixed_precision: str = ""

    def __post_init__(self):
        if len(self.blocks) != len(self.channels):
            raise ValueError(
                f"{self.name}: {len(self.blocks)} block names but {len(self.channels)} channel counts"
            )
        if self.preprocessing not in PREPROCESSING:
            raise ValueError(f"{self.name}: unknown preprocessing {self.preprocessing!r}")

    @property
    def total_channels(self) -> int:
        return int(sum(self.channels))

    def block_offsets(self) -> Dict[str, Tuple[int, int]]:
        """Channel range [start, stop) of each block inside the concatenated MLSP vector."""
        out, start = {}, 0
        for name, ch in zip(self.blocks, self.channels):
            out[name] = (start, start + ch)
            start += ch
        return out

    def describe(self) -> dict:
        return {
            "name": self.name,
            "blocks": list(self.blocks),
            "channels": list(self.channels),
            "n_blocks": len(self.blocks),
            "total_channels": self.total_channels,
            "block_offsets": {k: list(v) for k, v in self.block_offsets().items()},
            "last_block": self.last_block,
            "last_channels": self.last_channels,
            "preprocessing": self.preprocessing,
            "preprocessing_text": PREPROCESSING[self.preprocessing],
            "min_side": self.min_side,
            "default_weights": self.default_weights,
            "weight_names": list(self.weight_names),
            "supports_fc7": self.supports_fc7,
            "bytes_per_pixel": self.bytes_per_pixel,
            "reference": self.reference,
        }


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Adds a backbone to the registry (one call per family file, after its build function)."""
    return BACKBONES.register(spec)


def get_backbone(name: str) -> BackboneSpec:
    """The backbone registered as `name` (a typo raises `UnknownNameError` with a suggestion)."""
    return BACKBONES.get(name)


def list_backbones():
    """Registered backbone names, sorted."""
    return BACKBONES.names()


def keras_weights_arg(weights: Optional[str]) -> Optional[str]:
    """keras.applications takes "imagenet" or None; anything else is loaded by us."""
    return "imagenet" if weights == "imagenet" else None


def keras_application_builder(class_name: str) -> Callable:
    """`build(weights, include_top)` for a keras.applications model without its top."""

    def build(weights, include_top=False):
        import keras

        cls = getattr(keras.applications, class_name)
        return cls(include_top=False, weights=keras_weights_arg(weights), input_shape=(None, None, 3))

    return build
