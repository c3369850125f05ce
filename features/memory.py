"""Memory of the backbone's forward pass: estimated from a photo's size before it runs.

A CNN's activations grow with the input's pixels: VGG16 at full resolution needs about 0.7 GB per
megapixel of view on CPU (measured, `BackboneSpec.bytes_per_pixel` keeps each backbone's figure with a
margin), so a 24-megapixel photo cannot go through it on a 24 GB machine and eight views of it never
could at once. Extraction and scoring therefore (1) put only as many views in one forward pass as the
budget allows, (2) record a photo that would not fit even alone as failed, naming the estimate and the
`--max-side` that fits, and (3) hand freed memory back to the system after a large photo.
"""
from __future__ import annotations

import ctypes
import math
import os
from typing import Optional

from features.core.errors import UsageError

MEMORY_FRACTION = 0.7  # of the RAM available when a task starts
MEMORY_ENV = "IAA_MEMORY_GB"
RELEASE_ABOVE_BYTES = 1 << 30  # after a forward pass this large, trim the allocator


def available_ram() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def memory_budget(gigabytes: Optional[float] = None) -> int:
    """Bytes one forward pass may use: the given GB, else `IAA_MEMORY_GB`, else 70 % of available RAM."""
    if gigabytes is None and os.environ.get(MEMORY_ENV):
        try:
            gigabytes = float(os.environ[MEMORY_ENV])
        except ValueError:
            raise UsageError(f"{MEMORY_ENV} must be a number of gigabytes; "
                             f"received {os.environ[MEMORY_ENV]!r}") from None
    if gigabytes is not None:
        if not gigabytes > 0:
            raise UsageError(f"the memory budget must be > 0 GB; received {gigabytes}")
        return int(gigabytes * 1e9)
    return int(MEMORY_FRACTION * available_ram())


def pass_bytes(bytes_per_pixel: int, view_height: int, view_width: int, n_views: int = 1) -> int:
    """Estimated peak memory of one forward pass over `n_views` views of one size."""
    return int(bytes_per_pixel) * int(view_height) * int(view_width) * int(n_views)


def side_that_fits(bytes_per_pixel: int, height: int, width: int, view_pixels: int, budget: int) -> int:
    """The largest `--max-side` (a multiple of 16) at which one view of this photo fits the budget."""
    scale = math.sqrt(budget / max(pass_bytes(bytes_per_pixel, 1, 1, view_pixels), 1))
    return max(16, int(max(height, width) * scale) // 16 * 16)


def release_memory() -> None:
    """Returns freed heap pages to the system (glibc keeps them otherwise), so one large photo does not
    leave its peak as the worker's resident size for the rest of the run."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
