"""Compressed stores: `iaa extract --compress zstd` and `iaa compact` keep features bit for bit, in fewer bytes,
and everything that reads a store reads them unchanged."""
import numpy as np
import pytest

from features import store as st
from features.codecs import COMPRESSIONS
from features.loader import FeatureReader
from pipeline.cli import main
from pipeline.extraction.extract import ExtractConfig, ExtractError, run_extract
from tests.conftest import random_photo, write_image


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compress") / "photos"
    lines = ["file,mos,split"]
    for i in range(12):
        write_image(folder / f"p{i:02d}.jpg", random_photo(64, 72 + 8 * (i % 2), seed=i))
        lines.append(f"p{i:02d}.jpg,{1 + (i * 5) % 9},{('train', 'train', 'val', 'test')[i % 4]}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return folder


def _extract(folder, store, features="mlsp_narrow,mlsp_wide", compress=None):
    cfg = ExtractConfig(dataset="folder", data_dir=str(folder), store=str(store), backbone="vgg16_hed",
                        weights="random:0", features=features, views="none", scheduler="inprocess", compress=compress)
    return run_extract(cfg, log=lambda m: None)


def _stored_bytes(store, kind):
    import zarr

    return zarr.open_group(str(store), mode="r")[f"features/{kind}"].nbytes_stored()


@pytest.mark.parametrize("name", COMPRESSIONS.names())
def test_every_codec_keeps_features_bit_for_bit(photos, tmp_path, name):
    _extract(photos, tmp_path / "raw.zarr")
    _extract(photos, tmp_path / "c.zarr", compress=name)
    with st.FeatureStore(tmp_path / "raw.zarr") as raw, st.FeatureStore(tmp_path / "c.zarr") as packed:
        assert packed.compression == name
        for kind in ("mlsp_narrow", "mlsp_wide"):
            np.testing.assert_array_equal(packed.features(kind)[:], raw.features(kind)[:])
            rows = np.arange(12)
            np.testing.assert_array_equal(FeatureReader(packed, kind, rows, cache="none").read(rows, 0 * rows),
                                          raw.features(kind)[:][:, 0])
    if name != "none":
        assert _stored_bytes(tmp_path / "c.zarr", "mlsp_wide") < 0.9 * _stored_bytes(tmp_path / "raw.zarr", "mlsp_wide")


def test_a_store_keeps_its_codec_when_continued_or_grown(photos, tmp_path):
    store = tmp_path / "z.zarr"
    _extract(photos, store, features="mlsp_narrow", compress="zstd")
    assert _extract(photos, store, features="mlsp_narrow").processed == 0  # no --compress: the store's own
    _extract(photos, store, features="mlsp_narrow,gmp")  # a grown kind is written with the store's codec
    with st.FeatureStore(store) as fs:
        assert [type(c).__name__ for c in fs.features("gmp").compressors] == ["ZstdCodec"]
    with pytest.raises(ExtractError, match="written with compression zstd, this run asks for none.*iaa compact"):
        _extract(photos, store, features="mlsp_narrow,gmp", compress="none")


def test_compact_rewrites_a_store_and_refuses_what_it_cannot(photos, tmp_path, capsys):
    _extract(photos, tmp_path / "raw.zarr")
    assert main(["compact", str(tmp_path / "raw.zarr"), "--compress", "zstd"]) == 0
    out = tmp_path / "raw.zstd.zarr"
    assert "x the" in capsys.readouterr().out
    with st.FeatureStore(tmp_path / "raw.zarr") as raw, st.FeatureStore(out) as packed:
        assert packed.compression == "zstd" and packed.settings == raw.settings
        assert list(packed.ids) == list(raw.ids) and packed.counts() == raw.counts()
        np.testing.assert_array_equal(packed.features("mlsp_wide")[:], raw.features("mlsp_wide")[:])
    assert _stored_bytes(out, "mlsp_wide") < _stored_bytes(tmp_path / "raw.zarr", "mlsp_wide")
    assert main(["train", "--store", str(out), "--head", "ridge", "--run-dir", str(tmp_path / "run")]) == 0
    assert main(["compact", str(tmp_path / "raw.zarr"), "--compress", "zstd"]) == 2  # out exists
    assert "exists" in capsys.readouterr().err
    import zarr

    zarr.open_group(str(out), mode="r+").attrs.update({"initialized": False})  # as a killed copy leaves it
    assert main(["compact", str(tmp_path / "raw.zarr"), "--compress", "zstd"]) == 0
    assert "interrupted copy: starting it over" in capsys.readouterr().out
    assert main(["compact", str(tmp_path / "raw.zarr"), "--compress", "zstandard", "--out", str(tmp_path / "x")]) == 2
    assert "Did you mean 'zstd'" in capsys.readouterr().err
