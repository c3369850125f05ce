import numpy as np
import pytest
import tensorflow as tf

from features.backbones import get_backbone
from features.pooling import area_average_numpy as area_average_reference
from features.pooling import area_resize, get_kind, parse_kinds


@pytest.mark.parametrize("h,w", [(10, 15), (20, 5), (13, 17), (7, 9), (6, 11), (4, 4), (1, 1), (2, 9), (3, 13)])
def test_wide_pooling_equals_area_average(h, w):
    x = np.random.default_rng(h * w).normal(size=(1, h, w, 6)).astype(np.float32)
    got = area_resize(tf.constant(x), 5).numpy()[0]
    np.testing.assert_allclose(got, area_average_reference(x[0], 5), atol=1e-5)


def test_wide_pooling_equals_opencv_inter_area():
    import cv2

    x = np.random.default_rng(3).normal(size=(23, 31, 3)).astype(np.float32)
    ref = cv2.resize(x, (5, 5), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(area_resize(tf.constant(x[None]), 5).numpy()[0], ref, atol=2e-5)


def test_a_4_row_map_is_enlarged_with_area_weights_as_the_reference():
    # the reference's Lambda (tf.image.resize area) on rows 0, 1, 2, 3: no replication (pooling revision 2)
    x = np.arange(4, dtype=np.float32)[None, :, None, None] * np.ones((1, 4, 7, 2), np.float32)
    got = area_resize(tf.constant(x), 5).numpy()[0, :, 0, 0]
    np.testing.assert_allclose(got, [0, 0.75, 1.5, 2.25, 3], atol=1e-6)
    np.testing.assert_allclose(area_average_reference(x[0], 5)[:, 0, 0], got, atol=1e-6)


def test_stores_record_the_pooling_revision_and_older_ones_say_so():
    from features.pooling import stale_pooling, stale_pooling_lines

    spec = get_backbone("vgg16")
    now = {k: get_kind(k).record(spec) for k in ("mlsp_narrow", "mlsp_wide", "spp")}
    assert now["mlsp_wide"]["pooling_revision"] == 2 and stale_pooling({"kinds": now}) == {}
    old = {k: {"shape": v["shape"]} for k, v in now.items()}  # schema 2: no revision recorded
    assert stale_pooling({"kinds": old}) == {"mlsp_wide": (1, 2), "spp": (1, 2)}
    lines = stale_pooling_lines({"kinds": old}, "store s")
    assert len(lines) == 2 and "5x5" in lines[0] and "Re-extract" in lines[0]


@pytest.mark.parametrize("shape", [(12, 17), (25, 10), (5, 5)])
def test_narrow_equals_mean_of_wide_per_block(shape):
    rng = np.random.default_rng(0)
    maps = [tf.constant(rng.random((2,) + shape + (c,), dtype=np.float32)) for c in (4, 8, 3)]
    narrow = get_kind("mlsp_narrow").pool(maps).numpy()
    wide = get_kind("mlsp_wide").pool(maps).numpy()
    assert narrow.shape == (2, 15) and wide.shape == (2, 5, 5, 15)
    np.testing.assert_allclose(wide.mean(axis=(1, 2)), narrow, rtol=1e-5, atol=1e-6)


def test_spp_is_a_3x3_grid_l2_normalised():
    x = np.random.default_rng(1).random((2, 9, 12, 4), dtype=np.float32)
    out = get_kind("spp").pool(tf.constant(x)).numpy()
    assert out.shape == (2, 36)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    grid = area_average_reference(x[0], 3).reshape(-1)
    np.testing.assert_allclose(out[0], grid / np.linalg.norm(grid), rtol=1e-4)


@pytest.mark.parametrize("shape", [(9, 12), (7, 5), (2, 1)])
def test_spp_max_is_spp_nets_max_pooled_adaptive_bins(shape):
    """APM's SPP follows SPP-net: max over bins [floor(i·n/3), ceil((i+1)·n/3)), never empty (V-A3)."""
    import math

    x = np.random.default_rng(3).random((2,) + shape + (4,), dtype=np.float32)
    out = get_kind("spp_max").pool(tf.constant(x)).numpy()
    assert out.shape == (2, 36)
    h, w = shape
    cells = [x[0, math.floor(i * h / 3):math.ceil((i + 1) * h / 3), math.floor(j * w / 3):math.ceil((j + 1) * w / 3)]
             .max(axis=(0, 1)) for i in range(3) for j in range(3)]
    grid = np.concatenate(cells)
    np.testing.assert_allclose(out[0], grid / np.linalg.norm(grid), rtol=1e-5)
    assert not np.allclose(out, get_kind("spp").pool(tf.constant(x)).numpy(), atol=1e-3)


def test_gmp_is_global_max():
    x = np.random.default_rng(2).random((1, 6, 7, 5), dtype=np.float32)
    np.testing.assert_allclose(get_kind("gmp").pool(tf.constant(x)).numpy()[0], x[0].max(axis=(0, 1)))


def test_kind_shapes_per_backbone():
    irnv2 = get_backbone("irnv2")
    assert get_kind("mlsp_wide").shape(irnv2) == (5, 5, 16928)
    assert get_kind("spp").shape(irnv2) == (9 * 1536,)
    assert get_kind("fc7").shape(get_backbone("vgg16")) == (4096,)


def test_fc7_needs_vgg16():
    with pytest.raises(ValueError, match="fc7"):
        parse_kinds("mlsp_narrow,fc7", get_backbone("irnv2"))
    with pytest.raises(KeyError, match="Did you mean 'mlsp_wide'"):
        parse_kinds("mlsp_wdie", get_backbone("irnv2"))


def test_extractor_outputs_every_kind_from_one_pass():
    from features.extractor import Extractor

    ex = Extractor.from_names("vgg16", "random:0", "mlsp_narrow,mlsp_wide,spp,gmp,fc7")
    views = np.random.default_rng(0).integers(0, 256, (3, 40, 52, 3), dtype=np.uint8)
    out = ex(views)
    assert {k: v.shape for k, v in out.items()} == {
        "mlsp_narrow": (3, 1472), "mlsp_wide": (3, 5, 5, 1472), "spp": (3, 4608),
        "gmp": (3, 512), "fc7": (3, 4096)}
    assert all(v.dtype == np.float16 and np.isfinite(v).all() for v in out.values())
    # gmp is the max over the last block, which the widest block of the narrow vector averages
    assert (out["gmp"].astype(np.float32) + 1e-2 >= out["mlsp_narrow"][:, -512:].astype(np.float32)).all()


def test_numpy_reference_is_block_mean_for_integer_ratios():
    x = np.random.default_rng(5).random((10, 15, 2))
    blocks = x.reshape(5, 2, 5, 3, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(area_average_reference(x, 5), blocks, rtol=1e-12)
