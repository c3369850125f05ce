"""`--resize`: APM's shorter side 500 (V-A5) and MLSP's warp to 256 x 256 (Table 2's rescaled input, M19)."""
import numpy as np
import pytest

from features import store as st
from features.augment import get_views, make_views
from features.core.errors import UsageError
from features.core.registry import UnknownNameError
from features.images import decode_image
from features.resize import output_size, parse_resize, resize_input
from pipeline.extraction.extract import ExtractConfig, ExtractError, run_extract
from tests.conftest import random_photo


def test_rules_give_the_papers_sizes_and_are_idempotent():
    assert output_size("short-side:500", 600, 1000) == (500, 833)
    assert output_size("short-side:500", 300, 200) == (750, 500)  # enlarges too: APM's fixed scale
    assert output_size("warp:256", 600, 1000) == (256, 256)
    image = random_photo(90, 130, seed=1)
    for rule in ("short-side:64", "warp:48"):
        once = resize_input(image, rule)
        assert resize_input(once, rule) is once
    assert resize_input(image, None) is image


def test_bad_rules_are_refused_with_what_was_received():
    assert parse_resize("short-side:500") == "short-side:500" and parse_resize(None) is None
    with pytest.raises(UnknownNameError, match="Did you mean 'short-side'"):
        parse_resize("short_side:500")
    with pytest.raises(UsageError, match="Received: 'warp:0'"):
        parse_resize("warp:0")
    with pytest.raises(UsageError, match="Received: 'warp'"):
        parse_resize("warp")


def _cfg(folder, store, **kw):
    return ExtractConfig(dataset="folder", data_dir=str(folder), store=str(store), backbone="vgg16_hed",
                         weights="random:0", features="mlsp_narrow", views="crop_flip", scheduler="inprocess", **kw)


def test_a_warped_store_records_its_rule_and_holds_the_warped_photos_features(tiny_folder, tmp_path):
    from features.extractor import Extractor

    store = tmp_path / "warp.zarr"
    res = run_extract(_cfg(tiny_folder, store, resize="warp:40"), log=lambda m: None)
    assert res.counts["done"] == 7  # the 12 x 12 photo too small at full resolution is warped to 40 x 40
    ex = Extractor.from_names("vgg16_hed", "random:0", "mlsp_narrow")
    with st.FeatureStore(store) as fs:
        assert fs.attrs["resize"] == "warp:40" and fs.attrs["settings"]["resize"] == "warp:40"
        i = list(fs.ids).index("img1.jpg")
        warped = resize_input(decode_image(tiny_folder / "images" / "img1.jpg"), "warp:40")
        direct = ex(make_views(warped, get_views("crop_flip")))["mlsp_narrow"]
        np.testing.assert_allclose(fs.features("mlsp_narrow")[i].astype(np.float32), direct.astype(np.float32),
                                   rtol=2e-2, atol=1e-2)
        record = fs.extraction("mlsp_narrow")
    with pytest.raises(ExtractError, match="resize"):
        run_extract(_cfg(tiny_folder, store, resize="warp:48"), log=lambda m: None)

    from pipeline.extraction.worker import prepare_image
    from pipeline.scoring.sources import job_from_record

    job = job_from_record(record, ["mlsp_narrow"], None)  # what scoring new photos rebuilds from a run
    assert job.resize == "warp:40"
    views, (h, w) = prepare_image(tiny_folder / "images" / "img1.jpg", job)
    assert (h, w) == (40, 40) and views.shape == (8, 35, 35, 3)


def test_resize_and_max_side_together_or_too_small_are_refused(tiny_folder, tmp_path):
    with pytest.raises(ExtractError, match="give one"):
        run_extract(_cfg(tiny_folder, tmp_path / "a.zarr", resize="warp:64", max_side=64), log=lambda m: None)
    with pytest.raises(ExtractError, match="below what vgg16_hed needs"):
        run_extract(_cfg(tiny_folder, tmp_path / "b.zarr", resize="short-side:8"), log=lambda m: None)


def test_cli_resize_short_is_short_side(tiny_folder, tmp_path, capsys):
    from pipeline.cli import main

    store = tmp_path / "s.zarr"
    code = main(["extract", "--dataset", "folder", "--data-dir", str(tiny_folder), "--store", str(store),
                 "--backbone", "vgg16_hed", "--weights", "random:0", "--features", "mlsp_narrow", "--views", "none",
                 "--scheduler", "inprocess", "--resize-short", "50"])
    assert code == 1  # the folder's broken and missing photos
    with st.FeatureStore(store) as fs:
        assert fs.attrs["resize"] == "short-side:50"
    assert main(["extract", "--dataset", "folder", "--data-dir", str(tiny_folder), "--store", str(store),
                 "--resize", "short-side:50", "--resize-short", "50"]) == 2
    assert "not both" in capsys.readouterr().err
