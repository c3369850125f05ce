"""Seeded corpus of hostile image files for the fuzz tests: header bombs of every accepted format, and
mutated (bytes flipped, cut, spliced, header fields rewritten) JPEG, PNG, WebP, TIFF and BMP files.

`tests/data/fuzz_regressions/` keeps the files that once made a scorer fail (a 500, a traceback, OpenCV's
assertion text): they run first, every time.
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import List, Tuple

import numpy as np
from PIL import Image

REGRESSIONS = Path(__file__).parent / "data" / "fuzz_regressions"
SEED_FORMATS = (("JPEG", {"quality": 90}), ("PNG", {}), ("WEBP", {"quality": 80}), ("WEBP", {"lossless": True}),
                ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"}), ("BMP", {}))


def photo(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth random RGB photo (compresses like a real one)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


def encode(array: np.ndarray, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **params)
    return buf.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG (correct CRCs) whose header declares width x height RGB pixels over tiny data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(60_000))) + chunk(b"IEND", b"")


def tiff_declaring(side: int) -> bytes:
    """A little-endian TIFF whose one IFD declares side x side 8-bit RGB pixels in one tiny strip."""
    entries = [(256, 4, 1, side), (257, 4, 1, side), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 8), (277, 3, 1, 3), (278, 4, 1, side), (279, 4, 1, 3)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + bytes(4)
    return b"II*\x00" + struct.pack("<I", 11) + b"\x01\x02\x03" + ifd


def webp_declaring(side: int) -> bytes:
    """A lossless WebP (VP8L) whose header declares side x side pixels (14-bit fields: at most 16384)."""
    vp8l = b"\x2f" + struct.pack("<I", (side - 1) | ((side - 1) << 14)) + bytes(8)
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def header_bomb(fmt: str, side: int) -> bytes:
    """A small file of `fmt` whose header declares side x side pixels."""
    if fmt == "PNG":
        return png_declaring(side, side)
    if fmt == "TIFF":
        return tiff_declaring(side)
    if fmt == "WEBP":
        return webp_declaring(min(side, 16384))
    data = bytearray(encode(photo(5, 7), fmt))
    if fmt == "BMP":
        data[18:26] = struct.pack("<ii", side, side)
    elif fmt == "JPEG":
        sof = data.index(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", side, side)
    return bytes(data)


def _mutate(data: bytes, rng: np.random.Generator) -> Tuple[str, bytes]:
    """One random mutation of `data`: (what was done, the result)."""
    b = bytearray(data)
    how = rng.integers(0, 6)
    if how == 0:
        cut = int(rng.integers(1, len(b)))
        return f"cut at {cut}", bytes(b[:cut])
    if how == 1:
        for i in rng.integers(0, len(b), size=int(rng.integers(1, 12))):
            b[i] = int(rng.integers(0, 256))
        return "bytes flipped", bytes(b)
    if how == 2:  # the header region, where sizes and offsets live
        for i in rng.integers(0, min(len(b), 64), size=int(rng.integers(1, 4))):
            b[i] = int(rng.integers(0, 256))
        return "header bytes flipped", bytes(b)
    if how == 3:
        at, n = int(rng.integers(0, len(b))), int(rng.integers(1, 400))
        return f"{n} random bytes spliced at {at}", bytes(b[:at]) + rng.bytes(n) + bytes(b[at:])
    if how == 4:
        at = int(rng.integers(8, max(9, len(b) - 8)))
        return f"32-bit field at {at} set to 0xFFFF", bytes(b[:at]) + b"\x00\x00\xff\xff" + bytes(b[at + 4:])
    at = int(rng.integers(0, len(b)))
    return f"zeroed from {at}", bytes(b[:at]) + bytes(len(b) - at)


def corpus(n: int, seed: int = 0) -> List[Tuple[str, bytes]]:
    """(name, bytes) of: the regression files, header bombs of every format, and `n` seeded mutations."""
    cases = [(p.name, p.read_bytes()) for p in sorted(REGRESSIONS.glob("*")) if p.is_file()]
    cases += [(f"bomb_{fmt.lower()}_{side}", header_bomb(fmt, side))
              for fmt in ("PNG", "JPEG", "BMP", "TIFF", "WEBP") for side in (60000, 10000)]
    rng = np.random.default_rng(seed)
    seeds = [(fmt, encode(photo(seed=i), fmt, **params)) for i, (fmt, params) in enumerate(SEED_FORMATS)]
    for i in range(n):
        fmt, data = seeds[i % len(seeds)]
        what, mutated = _mutate(data, rng)
        cases.append((f"fuzz{i:03d}_{fmt.lower()} ({what})", mutated))
    return cases
