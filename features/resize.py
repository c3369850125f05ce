"""Rescaling a decoded photo to a paper's fixed input scale before the views (`iaa extract --resize RULE`).

MLSP's point is full resolution, so no rule is the default. Two papers' comparisons need another scale:

- `short-side:N` scales the photo so that its shorter side is N pixels, aspect ratio kept (Murray & Gordo
  2017, section 3.4: "the smaller side of the image is resized to 500 pixels"; `short-side:500`).
- `warp:N` warps it to N x N pixels, aspect ratio ignored (Hosu et al. 2019, Table 2's rescaled input:
  "images rescaled to 256 x 256", then 224 x 224 crops, which `--views crop_flip`'s 87.5 % crops give).

Shrinking uses INTER_AREA, enlarging bicubic interpolation. Every rule is idempotent (a photo already at the
rule's size is returned unchanged), so scoring an image that was resized beforehand gives the same features.
A store records its rule (`resize` in its extraction record) and scoring applies the run's rule to new photos.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from features.core.errors import UsageError
from features.core.registry import Registry


@dataclass(frozen=True)
class ResizeRule:
    """A registered rescaling: `size(h, w, n)` gives the output (height, width) for the rule's number n."""

    name: str
    size: Callable[[int, int, int], Tuple[int, int]]
    description: str
    reference: str


RESIZE_RULES: Registry[ResizeRule] = Registry("resize rule")


def _short_side(h: int, w: int, n: int) -> Tuple[int, int]:
    scale = n / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


RESIZE_RULES.register(ResizeRule("short-side", _short_side, "shorter side to N px, aspect ratio kept",
                                 "Murray & Gordo 2017, section 3.4 (N = 500)"))
RESIZE_RULES.register(ResizeRule("warp", lambda h, w, n: (n, n), "warped to N x N px, aspect ratio ignored",
                                 "Hosu et al. 2019, Table 2's rescaled input (N = 256)"))


def parse_resize(text: Optional[str]) -> Optional[str]:
    """`short-side:500` → the normalised rule text (None or "" → None).

    Raises:
        UnknownNameError: an unknown rule name (with the closest one).
        UsageError: a missing or non-positive N.
    """
    if not text:
        return None
    name, _, number = str(text).partition(":")
    RESIZE_RULES.get(name.strip())
    try:
        n = int(number)
    except ValueError:
        n = 0
    if n <= 0:
        raise UsageError(f"--resize expects RULE:N with N pixels > 0, e.g. short-side:500 or warp:256. "
                         f"Received: {text!r}")
    return f"{name.strip()}:{n}"


def rule_size(rule: str) -> int:
    """N of a parsed rule."""
    return int(rule.split(":")[1])


def output_size(rule: Optional[str], h: int, w: int) -> Tuple[int, int]:
    """(height, width) an h x w photo gets under `rule`."""
    if not rule:
        return h, w
    name, n = rule.split(":")
    return RESIZE_RULES.get(name).size(h, w, int(n))


def resize_input(image: np.ndarray, rule: Optional[str]) -> np.ndarray:
    """The (H, W, 3) image rescaled by `rule` (unchanged without one, or when already at its size)."""
    import cv2

    h, w = image.shape[:2]
    oh, ow = output_size(rule, h, w)
    if (oh, ow) == (h, w):
        return image
    shrinking = oh * ow < h * w
    return cv2.resize(image, (ow, oh), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)
