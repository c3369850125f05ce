"""Growing a finished store by feature kinds of the same backbone: only the new arrays are written."""
import os

import numpy as np
import pytest

from features import store as st
from features.augment import get_views, make_views
from features.images import decode_image
from pipeline.extraction.extract import ExtractConfig, ExtractError, run_extract
from pipeline.training.train import split_rows

QUIET = dict(log=lambda m: None)


def _cfg(folder, store, features, **kw):
    return ExtractConfig(dataset="folder", data_dir=str(folder), store=str(store), backbone="vgg16_hed",
                         weights="random:0", features=features, views="crop_flip", scheduler="inprocess", **kw)


def _mtimes(folder):
    return {p: os.stat(p).st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_a_new_kind_is_added_without_touching_the_stored_ones(tiny_folder, tmp_path):
    import zarr

    from features.extractor import Extractor

    store = tmp_path / "s.zarr"
    run_extract(_cfg(tiny_folder, store, "mlsp_narrow"), **QUIET)
    with st.FeatureStore(store) as fs:
        narrow, before = fs.features("mlsp_narrow")[:], fs.counts()
    kept = _mtimes(store / "features" / "mlsp_narrow")
    logs = []
    res = run_extract(_cfg(tiny_folder, store, "mlsp_narrow,gmp"), log=logs.append)
    assert any("adding gmp" in m for m in logs) and res.counts == before  # failed images stay failed, not retried
    assert _mtimes(store / "features" / "mlsp_narrow") == kept  # nothing rewritten
    ex = Extractor.from_names("vgg16_hed", "random:0", "gmp")
    with st.FeatureStore(store) as fs:
        assert fs.kinds == ["gmp", "mlsp_narrow"] and fs.grown_kinds == ["gmp"]
        assert fs.settings["features"] == ["mlsp_narrow", "gmp"] and fs.attrs["grown"][0]["kinds"] == ["gmp"]
        assert fs.counts("gmp") == before and fs.attrs["kinds"]["gmp"]["pooling_revision"] == 1
        np.testing.assert_array_equal(fs.features("mlsp_narrow")[:], narrow)
        i = list(fs.ids).index("img3.jpg")
        direct = ex(make_views(decode_image(tiny_folder / "images" / "img3.jpg"), get_views("crop_flip")))["gmp"]
        np.testing.assert_allclose(fs.features("gmp")[i].astype(np.float32), direct.astype(np.float32), rtol=2e-2,
                                   atol=1e-2)
    logs = []
    again = run_extract(_cfg(tiny_folder, store, "mlsp_narrow,gmp"), log=logs.append)  # the grown store resumes
    assert again.processed == 0 and not any("adding" in m for m in logs)
    with st.FeatureStore(store) as fs:  # training reads the rows whose gmp features are done
        j = int(split_rows(fs, "mlsp_narrow", {"mos"})["train"][0])
    zarr.open_group(str(store), mode="r+")["kind_status/gmp"][j] = st.PENDING
    with st.FeatureStore(store) as fs:
        assert j not in split_rows(fs, "gmp", {"mos"})["train"] and j in split_rows(fs, "mlsp_narrow", {"mos"})["train"]


def test_an_interrupted_growth_finishes_only_the_new_kind(tiny_folder, tmp_path):
    import zarr

    store = tmp_path / "s.zarr"
    run_extract(_cfg(tiny_folder, store, "mlsp_narrow"), **QUIET)
    run_extract(_cfg(tiny_folder, store, "mlsp_narrow,gmp"), **QUIET)
    root = zarr.open_group(str(store), mode="r+")
    done = np.asarray(root["kind_status/gmp"][:]) == st.DONE
    root["kind_status/gmp"][:] = np.where(done, st.PENDING, root["kind_status/gmp"][:])  # as if killed
    kept = _mtimes(store / "features" / "mlsp_narrow")
    res = run_extract(_cfg(tiny_folder, store, "mlsp_narrow,gmp"), **QUIET)
    assert res.processed > 0 and res.counts["pending"] == 0
    assert _mtimes(store / "features" / "mlsp_narrow") == kept
    with st.FeatureStore(store) as fs:
        assert (fs.status_of("gmp") == fs.status).all()


def test_growth_is_refused_where_it_would_mix_or_cannot_write(tiny_folder, tmp_path):
    import zarr

    store = tmp_path / "s.zarr"
    run_extract(_cfg(tiny_folder, store, "mlsp_narrow"), **QUIET)
    zarr.open_group(str(store), mode="r+")["status"][0] = st.PENDING
    with pytest.raises(ExtractError, match="finish it with those --features first"):
        run_extract(_cfg(tiny_folder, store, "mlsp_narrow,gmp"), **QUIET)
    with pytest.raises(ExtractError, match="other settings"):  # not a superset: a different store
        run_extract(_cfg(tiny_folder, store, "gmp"), **QUIET)
    h5 = tmp_path / "s.h5"
    run_extract(_cfg(tiny_folder, h5, "mlsp_narrow"), **QUIET)
    with pytest.raises(ExtractError, match="written once"):
        run_extract(_cfg(tiny_folder, h5, "mlsp_narrow,gmp"), **QUIET)
