"""Decoding photos into 8-bit RGB at full resolution, with EXIF orientation applied."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from features.core.errors import IAAError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class ImageError(IAAError):
    """A photo that cannot be used; the message is the per-image failure reason in the store."""


def _looks_truncated(data: bytes) -> bool:
    # libjpeg fills a cut-off JPEG with grey and only warns; require the end-of-image marker.
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-65536:]


def decode_image(path: str | Path, max_side: Optional[int] = None) -> np.ndarray:
    """Reads an image file as (H, W, 3) uint8 RGB.

    EXIF orientation is applied; grayscale, CMYK, alpha and 16-bit inputs become 8-bit RGB (alpha is
    dropped). `max_side` shrinks (INTER_AREA) images whose longer side exceeds it; never enlarges.

    Raises:
        ImageError: missing, empty, truncated or undecodable files, with the reason.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except IsADirectoryError:
        raise ImageError("is a directory, not an image file") from None
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from None
    return decode_bytes(data, max_side)


def decode_bytes(data: bytes, max_side: Optional[int] = None) -> np.ndarray:
    """`decode_image` for an image already in memory (an upload): the same checks and conversions."""
    import cv2

    if not data:
        raise ImageError("empty file (0 bytes)")
    if _looks_truncated(data):
        raise ImageError("truncated JPEG (no end-of-image marker)")
    buf = np.frombuffer(data, dtype=np.uint8)
    # IMREAD_COLOR applies EXIF orientation and converts gray/CMYK/alpha/16-bit to 8-bit BGR.
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError("not a decodable image (unknown format or corrupt data)")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageError(f"unexpected decoded layout {image.shape} {image.dtype}")
    return shrink(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), max_side)


def shrink(image: np.ndarray, max_side: Optional[int]) -> np.ndarray:
    """Shrinks (INTER_AREA) an image whose longer side exceeds `max_side`; never enlarges."""
    import cv2

    if max_side and max(image.shape[:2]) > max_side:
        h, w = image.shape[:2]
        scale = max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image
