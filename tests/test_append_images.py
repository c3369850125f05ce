"""New images added to a dataset: `iaa extract` on the existing store extracts them alone (appended rows),
keeps the stored rows, refuses a dataset that dropped images or changed stored labels, and survives a crash
in the middle of the append."""
from pathlib import Path

import numpy as np
import pytest
import zarr

from features import store as st
from pipeline.extraction.extract import ExtractConfig, ExtractError, run_extract
from tests.conftest import random_photo, write_image


def _dataset(root: Path, numbers, mos=None) -> Path:
    """Photos img<k>.jpg with labels; k decides size, score and split, so a photo's label never depends on
    which others are there."""
    lines = ["file,mos,split"]
    for k in numbers:
        name = f"img{k:02d}.jpg"
        if not (root / name).exists():
            write_image(root / name, random_photo(64 + 8 * (k % 3), 72, seed=k))
        score = (mos or {}).get(k, 1 + (k * 7) % 9)
        lines.append(f"{name},{score},{('train', 'train', 'val', 'test')[k % 4]}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def _extract(folder, store, log=None):
    cfg = ExtractConfig(dataset="folder", data_dir=str(folder), store=str(store), backbone="vgg16_hed",
                        weights="random:0", features="mlsp_narrow,gmp", views="none", scheduler="inprocess")
    return run_extract(cfg, log=(log if log is not None else (lambda m: None)))


def _by_id(path):
    with st.FeatureStore(path) as fs:
        ids = list(fs.ids)
        return ({i: (fs.features("gmp")[r], fs.features("mlsp_narrow")[r], fs.mos[r], fs.split[r])
                 for r, i in enumerate(ids)}, ids, fs.counts())


def test_new_images_are_extracted_alone_and_match_a_fresh_store(tmp_path):
    folder = _dataset(tmp_path / "photos", range(0, 22, 2))  # 11 photos: the last shard is partial
    store = tmp_path / "s.zarr"
    assert _extract(folder, store).counts["done"] == 11
    with st.FeatureStore(store) as fs:
        task_size, before = fs.task_size, np.asarray(fs.features("gmp")[:])
    _dataset(folder, list(range(0, 22, 2)) + [1, 5, 9, 23, 25])  # new names sort between the old ones
    lines = []
    result = _extract(folder, store, log=lines.append)
    assert any("appending 5 new images" in line for line in lines), lines
    shared_last_shard = 11 % task_size
    assert result.processed == 5 + shared_last_shard
    assert result.counts == {"pending": 0, "done": 16, "failed": 0}

    grown, ids, _ = _by_id(store)
    assert ids[:11] == [f"img{k:02d}.jpg" for k in range(0, 22, 2)]  # stored rows keep their place
    with st.FeatureStore(store) as fs:
        np.testing.assert_array_equal(np.asarray(fs.features("gmp")[:11]), before)
        assert fs.attrs["dataset"]["n"] == 16 and fs.attrs["appended"][0]["n_before"] == 11
    _extract(_dataset(tmp_path / "fresh", list(range(0, 22, 2)) + [1, 5, 9, 23, 25]), tmp_path / "fresh.zarr")
    fresh, _, _ = _by_id(tmp_path / "fresh.zarr")
    assert set(fresh) == set(grown)
    for image, (gmp, narrow, mos, split) in fresh.items():
        np.testing.assert_allclose(grown[image][0], gmp, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(grown[image][1], narrow, rtol=1e-3, atol=1e-3)
        assert grown[image][2] == mos and grown[image][3] == split
    assert _extract(folder, store).processed == 0  # nothing new: complete


def test_dropped_images_or_changed_labels_are_refused(tmp_path):
    folder = _dataset(tmp_path / "photos", range(6))
    store = tmp_path / "s.zarr"
    _extract(folder, store)
    _dataset(folder, list(range(1, 6)) + [7])
    with pytest.raises(ExtractError, match=r"no longer in the dataset \(e\.g\. img00\.jpg\)"):
        _extract(folder, store)
    _dataset(folder, list(range(6)) + [7], mos={3: 9.5})
    with pytest.raises(ExtractError, match=r"img03\.jpg: score 4 -> 9\.5"):
        _extract(folder, store)
    _dataset(folder, range(6))
    assert _extract(folder, store).processed == 0  # the store is as it was


def test_a_crash_in_the_middle_of_an_append_is_finished_by_the_rerun(tmp_path, monkeypatch):
    folder = _dataset(tmp_path / "photos", range(0, 10, 2))
    store = tmp_path / "s.zarr"
    _extract(folder, store)
    _dataset(folder, list(range(0, 10, 2)) + [3, 11])
    calls = {"n": 0}
    resize = zarr.Array.resize

    def crash_on_third(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return resize(self, *a, **k)

    monkeypatch.setattr(zarr.Array, "resize", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        _extract(folder, store)
    monkeypatch.setattr(zarr.Array, "resize", resize)
    assert _extract(folder, store).counts == {"pending": 0, "done": 7, "failed": 0}
    _, ids, counts = _by_id(store)
    assert ids == [f"img{k:02d}.jpg" for k in (0, 2, 4, 6, 8, 3, 11)]
    with st.FeatureStore(store) as fs:
        assert "appending" not in fs.attrs and np.isfinite(np.asarray(fs.features("gmp")[:], np.float32)).all()
