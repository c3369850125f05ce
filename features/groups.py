"""Feature groups: one store, several backbones, kinds concatenated across them.

A store's first backbone keeps its kinds at `features/<kind>` (stores made before groups open unchanged).
`iaa extract --backbone B` on a finished Zarr store of the same photos, views and max side adds B's kinds
as a group, `features/B/<kind>` with their own status (`kind_status/B/<kind>`), described in the store's
`groups` attribute. A kind is named `<kind>` (first group), `<backbone>/<kind>` (any group) or a
concatenation of those, `irnv2/mlsp_narrow+vgg16_hed/mlsp_narrow`: the parts joined on their channel axis,
which a head trains on as one kind.
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import numpy as np

CONCAT = "+"


def parts(kind: str) -> List[str]:
    """The kinds a (possibly concatenated) kind name is made of."""
    names = [p.strip() for p in kind.split(CONCAT)]
    if not all(names):
        from features.core.errors import UsageError

        raise UsageError(f"feature kind {kind!r} has an empty part: join kinds with '+', e.g. "
                         f"irnv2/mlsp_narrow+vgg16_hed/mlsp_narrow")
    return names


def base_kind(part: str) -> str:
    """The pooling kind of one part (`vgg16/mlsp_narrow` → `mlsp_narrow`)."""
    return part.rsplit("/", 1)[-1]


def is_plain(kind: str) -> bool:
    """A kind of the store's first group, named without its backbone."""
    return CONCAT not in kind and "/" not in kind


def combined_status(statuses: Sequence[np.ndarray], done: int, failed: int, pending: int) -> np.ndarray:
    """Per image: failed when any part failed, done when every part is done, else pending."""
    stack = np.stack(statuses)
    return np.where((stack == failed).any(axis=0), failed,
                    np.where((stack == done).all(axis=0), done, pending)).astype(np.int8)


def concatenated_blocks(members: Sequence[Tuple[str, int, List[Tuple[str, int, int]]]]) -> List[Tuple[str, int, int]]:
    """Blocks of a concatenation: each part's MLSP blocks (named `<part>:<block>`) shifted by the channels before
    it; a part without blocks (gmp, spp, fc7) is one block of its own.

    Args:
        members: (part name, channels, its blocks) in concatenation order.
    """
    out, offset = [], 0
    for name, channels, blocks in members:
        if blocks:
            out += [(f"{name}:{b}", offset + start, offset + stop) for b, start, stop in blocks]
        else:
            out.append((name, offset, offset + channels))
        offset += channels
    return out


class ConcatFeatures:
    """A read-only `(N, V, ..., C1 + C2 + ...)` view of kinds' arrays joined on their channel axis; indexing
    reads each part (lazily, like the arrays) and concatenates.

    Raises:
        ValueError: parts whose images, views or spatial shapes differ (the message names them).
    """

    def __init__(self, arrays: Dict[str, object]):
        self.names, self.arrays = list(arrays), list(arrays.values())
        first = self.arrays[0].shape
        for name, arr in arrays.items():
            if tuple(arr.shape[:-1]) != tuple(first[:-1]):
                raise ValueError(f"cannot concatenate {' + '.join(self.names)}: {name} has shape {tuple(arr.shape)}, "
                                 f"{self.names[0]} {tuple(first)} (images, views and cells must agree)")
        self.shape = tuple(first[:-1]) + (sum(int(a.shape[-1]) for a in self.arrays),)
        self.ndim, self.dtype = len(self.shape), np.dtype(np.float16)

    def __getitem__(self, key) -> np.ndarray:
        return np.concatenate([np.asarray(a[key]) for a in self.arrays], axis=-1)

    def __len__(self) -> int:
        return self.shape[0]
