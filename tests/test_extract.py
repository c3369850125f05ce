import numpy as np
import pytest

from features import store as st
from features.augment import get_views, make_views
from features.images import decode_image
from pipeline.extraction.extract import ExtractConfig, ExtractError, run_extract

KINDS = "mlsp_narrow,mlsp_wide,gmp"


def _cfg(folder, store, **kw):
    base = dict(dataset="folder", data_dir=str(folder), store=str(store), backbone="vgg16_hed",
                weights="random:0", features=KINDS, views="crop_flip", scheduler="inprocess")
    base.update(kw)
    return ExtractConfig(**base)


def test_end_to_end_on_a_tiny_folder(tiny_folder, tmp_path):
    store = tmp_path / "s.zarr"
    logs = []
    res = run_extract(_cfg(tiny_folder, store, batch_views=16), log=logs.append)
    assert res.counts == {"pending": 0, "done": 6, "failed": 3} and res.exit_code == 1
    reasons = dict(res.failures)
    assert "not an image we accept" in reasons["broken.jpg"]
    assert "too small" in reasons["small.png"] and "16 px" in reasons["small.png"]
    assert reasons["missing.jpg"] == "file not found"

    from features.extractor import Extractor

    ex = Extractor.from_names("vgg16_hed", "random:0", KINDS)
    with st.FeatureStore(store) as fs:
        a = fs.attrs
        assert a["backbone"] == "vgg16_hed" and a["weights"]["spec"] == "random:0"
        assert [b["name"] for b in a["blocks"]][-1] == "block5_conv3" and a["blocks"][-1]["offset"] == 960
        assert len(a["views"]) == 8 and a["preprocessing"]["name"] == "hed"
        assert "tensorflow" in a["versions"] and a["dataset"]["name"] == "folder"
        assert a["kinds"]["mlsp_wide"]["shape"] == [5, 5, 1472]
        ids = list(fs.ids)
        for image_id in ("img0.jpg", "img3.jpg"):
            i = ids.index(image_id)
            img = decode_image(tiny_folder / "images" / image_id)
            assert (fs.height[i], fs.width[i]) == img.shape[:2]
            direct = ex(make_views(img, get_views("crop_flip")))
            for kind in KINDS.split(","):
                np.testing.assert_allclose(fs.features(kind)[i].astype(np.float32),
                                           direct[kind].astype(np.float32), rtol=2e-2, atol=1e-2)
        broken = ids.index("broken.jpg")
        assert np.isnan(fs.features("mlsp_narrow")[broken]).all()
        np.testing.assert_allclose(fs.mos[:2], [3.0, 3.5])
        assert fs.hist.shape == (9, 10)

    again = run_extract(_cfg(tiny_folder, store), log=logs.append)
    assert again.processed == 0 and again.skipped == 9

    with pytest.raises(ExtractError, match="views: store has 'crop_flip', this run asks for 'none'"):
        run_extract(_cfg(tiny_folder, store, views="none"), log=logs.append)

    fresh = run_extract(_cfg(tiny_folder, store, views="none", overwrite=True), log=logs.append)
    assert fresh.counts["done"] == 6
    with st.FeatureStore(store) as fs:
        assert fs.features("mlsp_narrow").shape == (9, 1, 1472)


def test_hdf5_engine_matches_zarr(tiny_folder, tmp_path):
    z = run_extract(_cfg(tiny_folder, tmp_path / "a.zarr", views="none"), log=lambda m: None)
    h = run_extract(_cfg(tiny_folder, tmp_path / "a.h5", views="none"), log=lambda m: None)
    assert z.counts == h.counts
    assert not st.staging_path(tmp_path / "a.h5").exists()
    with st.FeatureStore(tmp_path / "a.zarr") as fz, st.FeatureStore(tmp_path / "a.h5") as fh:
        assert list(fz.ids) == list(fh.ids) and fh.engine == "hdf5"
        for kind in KINDS.split(","):
            np.testing.assert_array_equal(fz.features(kind)[:], fh.features(kind)[:])
        assert fz.failures() == fh.failures()
    done = run_extract(_cfg(tiny_folder, tmp_path / "a.h5", views="none"), log=lambda m: None)
    assert done.processed == 0


def test_disk_check_refuses_before_starting(tiny_folder, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    with pytest.raises(ExtractError, match="not enough disk space"):
        run_extract(_cfg(tiny_folder, tmp_path / "d.zarr"), log=lambda m: None)
    assert not (tmp_path / "d.zarr").exists()


def test_cli_extract_and_store_info(tiny_folder, tmp_path, capsys):
    import json

    from pipeline.cli import main

    store = tmp_path / "c.zarr"
    code = main(["extract", "--dataset", "folder", "--data-dir", str(tiny_folder), "--backbone", "vgg16_hed",
                 "--weights", "random:0", "--features", "mlsp_narrow", "--views", "none", "--store", str(store),
                 "--scheduler", "inprocess"])
    out = capsys.readouterr().out
    assert code == 1 and "3 images failed" in out and "broken.jpg" in out
    assert main(["store-info", str(store), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["counts"] == {"pending": 0, "done": 6, "failed": 3}
    assert info["arrays"]["features/mlsp_narrow"]["shape"] == [9, 1, 1472]
    assert info["attributes"]["settings"]["views"] == "none"
    assert main(["extract", "--dataset", "folder", "--data-dir", str(tiny_folder), "--backbone", "vgg16_hed",
                 "--weights", "random:0", "--features", "mlsp_narrow", "--views", "crop_flip",
                 "--store", str(store), "--scheduler", "inprocess"]) == 2
    assert "views: store has 'none', this run asks for 'crop_flip'" in capsys.readouterr().err


def test_a_store_pooled_before_revision_2_is_finished_without_mixing_poolings(tmp_path, capsys):
    import zarr

    from features.extractor import Extractor
    from pipeline.cli import main
    from tests.conftest import random_photo, write_image

    folder = tmp_path / "f"
    write_image(folder / "small.jpg", random_photo(48, 48, seed=0))  # VGG16 block5: 3x3, under the 5x5 grid
    write_image(folder / "large.jpg", random_photo(96, 112, seed=1))  # block5: 6x7, both revisions agree
    store = tmp_path / "s.zarr"
    cfg = _cfg(folder, store, features="mlsp_narrow,mlsp_wide", views="none")
    run_extract(cfg, log=lambda m: None)
    group = zarr.open_group(str(store), mode="r+")
    kinds = dict(group.attrs["kinds"])
    kinds["mlsp_wide"] = {k: v for k, v in kinds["mlsp_wide"].items() if k != "pooling_revision"}
    group.attrs.update({"kinds": kinds, "schema_version": 2})  # as a schema-2 store records it
    assert main(["store-info", str(store)]) == 0
    assert "mlsp_wide features were pooled with revision 1" in capsys.readouterr().out
    group["status"][:] = st.PENDING  # both images still to do
    logs = []
    res = run_extract(cfg, log=logs.append)
    assert any("made by an older pooling" in m for m in logs)
    reasons = dict(res.failures)
    assert list(reasons) == ["small.jpg"] and "older revision" in reasons["small.jpg"]
    ex = Extractor.from_names("vgg16_hed", "random:0", "mlsp_wide")
    with st.FeatureStore(store) as fs:
        i = list(fs.ids).index("large.jpg")
        direct = ex(make_views(decode_image(folder / "large.jpg"), get_views("none")))["mlsp_wide"]
        np.testing.assert_allclose(fs.features("mlsp_wide")[i].astype(np.float32), direct.astype(np.float32),
                                   rtol=2e-2, atol=1e-2)
