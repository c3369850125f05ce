import numpy as np
import pytest

from features.augment import get_views, make_views, view_size


def test_crop_flip_has_the_reference_order():
    views = get_views("crop_flip")
    assert [(v.row, v.col, v.flip) for v in views] == [
        (1, 1, False), (1, 1, True), (1, 0, False), (1, 0, True),
        (0, 1, False), (0, 1, True), (0, 0, False), (0, 0, True),
    ]


def test_crop_geometry_is_proportional_and_corner_aligned():
    h, w = 497, 629
    views = get_views("crop_flip")
    ch, cw = int(0.875 * h), int(0.875 * w)
    assert view_size(views, h, w) == (ch, cw)
    assert views[0].box(h, w) == (h - ch, w - cw, ch, cw)  # bottom-right
    assert views[2].box(h, w) == (h - ch, 0, ch, cw)  # bottom-left
    assert views[4].box(h, w) == (0, w - cw, ch, cw)  # top-right
    assert views[6].box(h, w) == (0, 0, ch, cw)  # top-left


def test_make_views_crops_then_flips():
    h, w = 16, 24
    img = np.arange(h * w * 3, dtype=np.uint32).reshape(h, w, 3).astype(np.uint8)
    img = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = make_views(img, get_views("crop_flip"))
    ch, cw = int(0.875 * h), int(0.875 * w)
    assert out.shape == (8, ch, cw, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0], img[h - ch:, w - cw:])
    np.testing.assert_array_equal(out[1], img[h - ch:, w - cw:][:, ::-1])
    np.testing.assert_array_equal(out[6], img[:ch, :cw])
    np.testing.assert_array_equal(out[7], img[:ch, :cw][:, ::-1])


def test_none_is_the_whole_image():
    img = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    out = make_views(img, get_views("none"))
    assert out.shape == (1, 9, 11, 3)
    np.testing.assert_array_equal(out[0], img)


def test_unknown_view_set():
    with pytest.raises(KeyError, match="crop_flip"):
        get_views("cropflip")
