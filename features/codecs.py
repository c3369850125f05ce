"""How stored features are compressed on disk: a registry of the codecs measured to keep features
bit-for-bit (`benchmarks/bench_compact.py`; lossy codes did not meet the quality target, so none is offered).

`iaa extract --compress NAME` writes new stores (and kinds or groups added later) with it; `iaa compact`
rewrites an existing store. Each inner chunk (one view of one image) is compressed alone, so single-view
reads stay single-chunk reads inside a shard.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from features.core.registry import Registry


@dataclass(frozen=True)
class CompressionSpec:
    """A codec users name with `--compress`.

    Attributes:
        name: registry name (recorded in the store's `compression` attribute).
        make: `make()` → zarr's `compressors` argument (None: stored raw).
        description: what it is and what it was measured to save.
    """

    name: str
    make: Callable[[], Optional[tuple]]
    description: str


COMPRESSIONS: Registry[CompressionSpec] = Registry("compression")


def _zstd():
    from zarr.codecs import ZstdCodec

    return (ZstdCodec(level=3),)


COMPRESSIONS.register(CompressionSpec("none", lambda: None, "raw float16 (fastest reads)"))
COMPRESSIONS.register(CompressionSpec(
    "zstd", _zstd, "zstd level 3, lossless: 0.79x the bytes of BIQ2021's vgg16_hed wide features, reads 0.8x as fast"))


def get_compression(name: Optional[str]) -> CompressionSpec:
    """The spec of `name` ("none" when None); unknown names get a "did you mean"."""
    return COMPRESSIONS.get(name or "none")
