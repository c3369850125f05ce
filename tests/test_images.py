import io

import numpy as np
import pytest
from PIL import Image

from features.images import (ImageError, ImageHeader, ImageTooLarge, UnsupportedImage, decode_bytes, decode_image,
                             read_header)
from tests.conftest import random_photo, write_image
from tests.fuzz_corpus import header_bomb


def test_rgb_jpeg_round_trip(tmp_path):
    img = random_photo(40, 60)
    p = write_image(tmp_path / "a.png", img)
    np.testing.assert_array_equal(decode_image(p), img)


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(random_photo(30, 50))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    p = tmp_path / "rot.jpg"
    img.save(p, exif=exif.tobytes(), quality=95)
    assert decode_image(p).shape == (50, 30, 3)


def test_grayscale_becomes_rgb(tmp_path):
    p = tmp_path / "g.png"
    Image.fromarray(np.full((10, 12), 77, np.uint8), mode="L").save(p)
    out = decode_image(p)
    assert out.shape == (10, 12, 3) and (out == 77).all()


def test_alpha_is_dropped(tmp_path):
    rgba = np.zeros((8, 9, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    p = tmp_path / "a.png"
    Image.fromarray(rgba, mode="RGBA").save(p)
    out = decode_image(p)
    assert out.shape == (8, 9, 3) and (out[..., 0] == 200).all()


def test_16_bit_becomes_8_bit(tmp_path):
    import cv2

    p = tmp_path / "deep.png"
    cv2.imwrite(str(p), np.full((6, 7, 3), 65535 // 2, np.uint16))
    out = decode_image(p)
    assert out.dtype == np.uint8 and abs(int(out[0, 0, 0]) - 127) <= 1


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(p, quality=95)  # pure red
    out = decode_image(p)
    assert out.shape == (12, 16, 3)
    r, g, b = out[..., 0].mean(), out[..., 1].mean(), out[..., 2].mean()
    assert r > 200 and g < 60 and b < 60


def test_max_side_shrinks_only(tmp_path):
    p = write_image(tmp_path / "big.png", random_photo(100, 200))
    assert decode_image(p, max_side=50).shape == (25, 50, 3)
    assert decode_image(p, max_side=500).shape == (100, 200, 3)


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file"),
    (b"hello, not an image", "not an image we accept: its content is no JPEG, PNG"),
    (b"GIF89a" + bytes(64), "not an image we accept"),
])
def test_bad_files_give_reasons(tmp_path, content, reason):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageError, match=reason):
        decode_image(p)


def test_truncated_jpeg(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(random_photo(64, 64)).save(buf, format="JPEG")
    p = tmp_path / "cut.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated"):
        decode_image(p)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        decode_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize("fmt,side", [("PNG", 60000), ("BMP", 60000), ("JPEG", 60000), ("TIFF", 60000),
                                      ("WEBP", 16384)])
def test_header_bombs_are_refused_with_their_size_before_decoding(fmt, side):
    data = header_bomb(fmt, side)
    assert read_header(data) == ImageHeader({"WEBP": "WebP"}.get(fmt, fmt), side, side)
    with pytest.raises(ImageTooLarge, match=f"too many pixels: {side}x{side} = "):
        decode_bytes(data, max_megapixels=50)
    assert ImageTooLarge.status == 413 and UnsupportedImage.status == 415 and ImageError.status == 422


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_every_accepted_format_decodes_after_its_header_check(fmt):
    buf = io.BytesIO()
    Image.fromarray(random_photo(24, 40)).save(buf, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    assert read_header(buf.getvalue()).width == 40
    assert decode_bytes(buf.getvalue(), max_megapixels=0.001).shape == (24, 40, 3)


def test_multi_page_tiff_checks_and_decodes_its_first_page():
    buf = io.BytesIO()
    first, second = Image.fromarray(random_photo(20, 30)), Image.new("RGB", (300, 300))
    first.save(buf, "TIFF", save_all=True, append_images=[second])
    assert read_header(buf.getvalue()) == ImageHeader("TIFF", 30, 20)
    assert decode_bytes(buf.getvalue(), max_megapixels=0.001).shape == (20, 30, 3)
