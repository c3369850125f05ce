import numpy as np
import pytest

from features import loader as ld
from features.store import FeatureStore
from tests.conftest import linear_store


def test_train_plan_draws_one_uniform_view_per_sample_per_epoch():
    n, V, epochs = 6, 8, 800
    counts = np.zeros((n, V))
    orders = set()
    for e in range(epochs):
        order, views = ld.train_plan(n, V, seed=3, epoch=e)
        assert sorted(order) == list(range(n))
        counts[np.arange(n), views] += 1
        orders.add(tuple(order))
    expected = epochs / V
    chi2 = ((counts - expected) ** 2 / expected).sum(axis=1)
    assert (chi2 < 30).all()  # 7 dof: p < 1e-4 beyond 30
    assert len(orders) > 100  # reshuffled every epoch
    a, b = ld.train_plan(n, V, 3, 5), ld.train_plan(n, V, 3, 5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("engine", ["zarr", "hdf5"])
def test_readers_agree_across_engines_and_cache_modes(tmp_path, engine):
    suffix = ".zarr" if engine == "zarr" else ".h5"
    path = linear_store(tmp_path / f"s{suffix}", n=40, views=3, dim=8, engine=engine, wide=True)
    with FeatureStore(path) as fs:
        rows = np.array([3, 7, 11, 30, 31])
        full = fs.features("mlsp_wide")[:]
        ram = ld.FeatureReader(fs, "mlsp_wide", rows, "ram")
        stream = ld.FeatureReader(fs, "mlsp_wide", rows, "none")
        assert ram.mode == "ram" and stream.mode == "none"
        pos, views = np.array([4, 0, 2, 2]), np.array([1, 2, 0, 1])
        want = full[rows[pos], views]
        np.testing.assert_array_equal(ram.read(pos, views), want)
        np.testing.assert_array_equal(stream.read(pos, views), want)


def test_streaming_reads_one_view_per_sample_per_epoch(tmp_path, monkeypatch):
    path = linear_store(tmp_path / "s.zarr", n=120, views=4, dim=8, wide=True)
    monkeypatch.setattr(ld, "available_ram", lambda: 1000)  # nothing fits: auto must stream
    with FeatureStore(path) as fs:
        rows = np.flatnonzero(fs.split == "train")
        reader = ld.FeatureReader(fs, "mlsp_wide", rows, "auto")
        assert reader.mode == "none"
        order, views = ld.train_plan(len(rows), reader.n_views, 0, 0)
        ds = ld.make_dataset(reader, order, views, fs.mos[rows][order], batch_size=16, parallel_reads=2)
        seen = sum(int(x.shape[0]) for x, _ in ds)
        assert seen == len(rows)
        assert reader.samples_read == len(rows)  # not rows x views, not the whole store


def test_dataset_batches_match_the_plan(tmp_path):
    path = linear_store(tmp_path / "s.zarr", n=50, views=2, dim=6)
    with FeatureStore(path) as fs:
        rows = np.arange(50)
        reader = ld.FeatureReader(fs, "mlsp_narrow", rows, "none")
        order, views = ld.train_plan(50, 2, 1, 0)
        x, y = next(iter(ld.make_dataset(reader, order, views, fs.mos[order], batch_size=8)))
        full = fs.features("mlsp_narrow")[:]
        np.testing.assert_array_equal(x.numpy(), full[order[:8], views[:8]].astype(np.float32))
        np.testing.assert_allclose(y.numpy()[:, 0], fs.mos[order[:8]])
