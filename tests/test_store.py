import numpy as np
import pytest

from features import store as st
from features import store_writer as sw


def _make(tmp_path, name="s.zarr", n=10, views=2):
    layout = sw.StoreLayout(n=n, n_views=views, kinds={"mlsp_narrow": (6,), "mlsp_wide": (5, 5, 6)},
                            task_size=4, hist_bins=3)
    ids = [f"im{i}" for i in range(n)]
    split = ["train"] * (n - 3) + ["val", "test", "test"]
    mos = np.linspace(1, 9, n).astype(np.float32)
    hist = np.random.default_rng(0).integers(0, 5, (n, 3)).astype(np.float32)
    attrs = {"settings": {"backbone": "x"}, "kinds": {"mlsp_narrow": {}, "mlsp_wide": {}}, "task_size": 4}
    path = tmp_path / name
    sw.create_zarr(path, layout, attrs, ids, split, [f"/p/{i}" for i in ids], mos, hist)
    rng = np.random.default_rng(1)
    written = {}
    for start, stop in layout.tasks():
        k = stop - start
        feats = {kind: rng.random((k, views) + s).astype(np.float16) for kind, s in layout.kinds.items()}
        status = np.full(k, st.DONE, np.int8)
        reasons = [""] * k
        if start == 4:
            status[1], reasons[1] = st.FAILED, "file not found"
        sw.write_task(str(path), start, stop, feats, status, reasons, np.full(k, 64), np.full(k, 48))
        written[start] = feats
    return path, layout, ids, mos, hist, written


@pytest.mark.parametrize("engine", ["zarr", "hdf5"])
def test_both_engines_round_trip(tmp_path, engine):
    zpath, layout, ids, mos, hist, written = _make(tmp_path)
    path = zpath
    if engine == "hdf5":
        path = tmp_path / "s.h5"
        sw.finalize_hdf5(zpath, path)
    with st.FeatureStore(path) as fs:
        assert fs.engine == engine
        assert list(fs.ids) == ids
        np.testing.assert_array_equal(fs.mos, mos)
        np.testing.assert_array_equal(fs.hist, hist)
        assert fs.counts() == {"pending": 0, "done": 9, "failed": 1}
        assert fs.failures() == [("im5", "file not found")]
        assert list(fs.split[-2:]) == ["test", "test"]
        assert (fs.width == 64).all() and fs.attrs["settings"] == {"backbone": "x"}
        for kind in layout.kinds:
            arr = fs.features(kind)
            assert arr.dtype == np.float16
            assert tuple(arr.chunks)[:2] == (1, 1)  # one view of one image reads alone
            for start, feats in written.items():
                np.testing.assert_array_equal(arr[start:start + len(feats[kind])], feats[kind])
        with pytest.raises(st.StoreError, match="has no feature kind 'spp'"):
            fs.features("spp")
        info = fs.info()
        assert info["arrays"]["features/mlsp_wide"]["shape"] == [10, 2, 5, 5, 6]


def test_pending_tasks_and_unwritten_rows(tmp_path):
    layout = sw.StoreLayout(n=10, n_views=1, kinds={"gmp": (3,)}, task_size=4)
    path = tmp_path / "p.zarr"
    sw.create_zarr(path, layout, {"kinds": {"gmp": {}}, "task_size": 4}, list("abcdefghij"), ["train"] * 10,
                   list("abcdefghij"), np.zeros(10, np.float32), None)
    assert sw.pending_tasks(path, layout) == [(0, 4), (4, 8), (8, 10)]
    sw.write_task(str(path), 4, 8, {"gmp": np.ones((4, 1, 3), np.float16)}, np.full(4, st.DONE, np.int8),
                  [""] * 4, np.zeros(4), np.zeros(4))
    assert sw.pending_tasks(path, layout) == [(0, 4), (8, 10)]
    with st.FeatureStore(path) as fs:
        assert np.isnan(fs.features("gmp")[0]).all() and fs.hist is None


def test_task_size_is_bounded_by_bytes():
    wide = {"mlsp_wide": (5, 5, 16928)}
    t = sw.StoreLayout.choose_task_size(255_000, 8, wide)
    assert 1 <= t and t * 8 * 5 * 5 * 16928 * 2 <= sw.MAX_TASK_BYTES
    assert sw.StoreLayout.choose_task_size(16, 8, {"mlsp_narrow": (1472,)}) == 2


def test_engine_from_suffix():
    assert st.engine_for("a/b.h5") == "hdf5" and st.engine_for("a/b.zarr") == "zarr"
    with pytest.raises(st.StoreError, match="--engine hdf5 needs"):
        st.engine_for("a/b.zarr", "hdf5")


def test_opening_an_unfinished_hdf5_store_says_rerun(tmp_path):
    st.staging_path(tmp_path / "x.h5").mkdir()
    with pytest.raises(st.StoreError, match="Rerun the same"):
        st.FeatureStore(tmp_path / "x.h5")
