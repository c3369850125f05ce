"""Decoding photos into 8-bit RGB at full resolution, with EXIF orientation applied.

Every photo's header is read first (Pillow's format plugins, nothing decoded): its format must be one we
accept and its pixel count within the limit, so a 60 KB file declaring 60000 x 60000 pixels is refused
with its size before any decoder allocates memory for it.
"""
from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from features.core.errors import IAAError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Pillow's names of the formats we decode (MPO: a JPEG with extra pictures, decoded as its first).
FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP", "TIFF": "TIFF"}
FORMAT_NAMES = "JPEG, PNG, WebP, BMP or TIFF"
# OpenCV's own decoder limit is 2^30 pixels (CV_IO_MAX_IMAGE_PIXELS); stay under it with a round figure.
MAX_MEGAPIXELS = 1000.0


class ImageError(IAAError):
    """A photo that cannot be used; the message is the per-image failure reason in the store."""

    status = 422  # the HTTP answer to an upload failing this way: understood, but cannot be processed


class ImageTooLarge(ImageError):
    """More pixels than the limit, read from the header (or a decoder's own bomb check)."""

    status = 413


class UnsupportedImage(ImageError):
    """Not an image in a format we accept (judged by its content, not its name)."""

    status = 415


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header declares: its format (Pillow's name) and size in pixels."""

    format: str
    width: int
    height: int

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def read_header(data: bytes) -> ImageHeader:
    """The format and size an image declares, from its header alone (no pixel is decoded).

    Pillow's own plugins for the accepted formats parse the header, without `Image.open`'s bomb check
    (which raises above 179 MP before the size could be reported); WebP's size is read here, since its
    plugin allocates the canvas while parsing. A multi-page TIFF's first page is the
    one decoded, so its size is the one checked.

    Raises:
        UnsupportedImage: no accepted format recognises the content.
    """
    from PIL import Image

    webp = _webp_size(data)
    if webp is not None:  # Pillow's WebP plugin allocates the canvas while parsing: read the size here first
        return ImageHeader("WebP", *webp)
    Image.init()
    prefix = data[:16]
    for name in FORMATS:
        factory, accept = Image.OPEN.get(name, (None, None))
        if factory is None or (accept and accept(prefix) is not True):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a damaged header's complaints: the decoder's verdict follows
                with factory(io.BytesIO(data), "") as img:
                    width, height = img.size
        except (SyntaxError, IndexError, TypeError, ValueError, struct.error, OSError, EOFError,
                ZeroDivisionError, KeyError, MemoryError, RecursionError):
            continue
        return ImageHeader(FORMATS[name], int(width), int(height))
    raise UnsupportedImage(f"not an image we accept: its content is no {FORMAT_NAMES}")


def _webp_size(data: bytes) -> Optional[tuple]:
    """(width, height) from a WebP's first chunk (VP8X canvas, VP8L or VP8 frame header), or None if not WebP."""
    if len(data) < 30 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def check_pixels(header: ImageHeader, max_megapixels: float) -> None:
    """Raises `ImageTooLarge` when the header declares more than `max_megapixels`."""
    if header.width <= 0 or header.height <= 0:
        raise ImageError(f"{header.format} header declares an empty image ({header.width}x{header.height})")
    if header.megapixels > max_megapixels:
        raise ImageTooLarge(f"too many pixels: {header.width}x{header.height} = {header.megapixels:,.0f} MP > "
                            f"{max_megapixels:g} MP")


def _looks_truncated(data: bytes) -> bool:
    # libjpeg fills a cut-off JPEG with grey and only warns; require the end-of-image marker.
    return data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-65536:]


def decode_image(path: str | Path, max_side: Optional[int] = None,
                 max_megapixels: float = MAX_MEGAPIXELS) -> np.ndarray:
    """Reads an image file as (H, W, 3) uint8 RGB.

    EXIF orientation is applied; grayscale, CMYK, alpha and 16-bit inputs become 8-bit RGB (alpha is
    dropped). `max_side` shrinks (INTER_AREA) images whose longer side exceeds it; never enlarges.

    Raises:
        ImageError: missing, empty, truncated or undecodable files, with the reason; `ImageTooLarge` for
            more than `max_megapixels` (from the header, before decoding), `UnsupportedImage` for other
            formats.
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
    return decode_bytes(data, max_side, max_megapixels)


def decode_bytes(data: bytes, max_side: Optional[int] = None, max_megapixels: float = MAX_MEGAPIXELS) -> np.ndarray:
    """`decode_image` for an image already in memory (an upload): the same checks and conversions."""
    import cv2

    if not data:
        raise ImageError("empty file (0 bytes)")
    header = read_header(data)
    check_pixels(header, max_megapixels)
    if _looks_truncated(data):
        raise ImageError("truncated JPEG (no end-of-image marker)")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:  # IMREAD_COLOR applies EXIF orientation and converts gray/CMYK/alpha/16-bit to 8-bit BGR.
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as exc:  # OpenCV's own size checks, when a header disagrees with what it decodes
        if "validateInputImageSize" in str(exc):
            raise ImageTooLarge("too many pixels for OpenCV's decoder (its limit is 2^30 pixels)") from None
        raise ImageError(f"OpenCV cannot decode it: {str(exc).strip().splitlines()[-1]}") from None
    if image is None:
        raise ImageError(f"{header.format} data that cannot be decoded: truncated or corrupt "
                         f"(its header declares {header.width}x{header.height})")
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
