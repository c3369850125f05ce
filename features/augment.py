"""Views of an image: proportional corner crops with and without a horizontal flip.

Reference: Hosu et al. 2019, section 3.1; order of the authors' code (design.md section 4):
crop positions (row, col) = (1,1), (1,0), (0,1), (0,0), 1 meaning bottom/right aligned, and for
each position flip 0 then 1. Order of operations: decode → crop → flip → preprocess.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, Tuple

import numpy as np

from features.core.registry import Registry

CROP_FRACTION = 0.875
CROP_POSITIONS = ((1, 1), (1, 0), (0, 1), (0, 0))


@dataclass(frozen=True)
class View:
    """One augmentation: a crop at a corner (or the whole image), optionally mirrored."""

    row: int  # 1 = bottom aligned
    col: int  # 1 = right aligned
    flip: bool
    fraction: float  # crop side as a fraction of the image side; 1.0 = whole image

    def box(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """(top, left, crop_height, crop_width) for an image of the given size."""
        ch, cw = int(self.fraction * height), int(self.fraction * width)
        top = height - ch if self.row else 0
        left = width - cw if self.col else 0
        return top, left, ch, cw

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ViewSet:
    """A named list of views, stored in this order (`--views NAME`)."""

    name: str
    views: Tuple[View, ...]
    description: str = ""


VIEW_SETS: Registry[ViewSet] = Registry("view set")


def register_view_set(view_set: ViewSet) -> ViewSet:
    """Adds a view set to the registry."""
    return VIEW_SETS.register(view_set)


register_view_set(ViewSet(
    "crop_flip", tuple(View(r, c, bool(f), CROP_FRACTION) for (r, c) in CROP_POSITIONS for f in (0, 1)),
    "8 views: 87.5 % crops at the four corners, each without and with a horizontal flip"))
register_view_set(ViewSet("none", (View(0, 0, False, 1.0),), "1 view: the whole image"))


def get_views(name: str) -> Tuple[View, ...]:
    """The views of the view set registered as `name`, in stored order."""
    return VIEW_SETS.get(name).views


def view_size(views: Tuple[View, ...], height: int, width: int) -> Tuple[int, int]:
    """Common (height, width) of all views of an image."""
    _, _, ch, cw = views[0].box(height, width)
    return ch, cw


def make_views(image: np.ndarray, views: Tuple[View, ...]) -> np.ndarray:
    """(H, W, 3) uint8 → (V, h, w, 3) uint8, in the order of `views` (all views share a size)."""
    out: List[np.ndarray] = []
    for v in views:
        top, left, ch, cw = v.box(*image.shape[:2])
        crop = image[top: top + ch, left: left + cw]
        out.append(crop[:, ::-1] if v.flip else crop)
    return np.ascontiguousarray(np.stack(out))
