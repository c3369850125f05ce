"""`--precision mixed`: float16 compute under Keras' mixed_float16 policy, pooled in float32, recorded in the
store and rebuilt by the predictor; refused for a backbone whose graph cannot run it."""
import keras
import numpy as np
import pytest

from features import store as st
from features.augment import get_views, make_views
from features.core.errors import UsageError
from features.extractor import Extractor
from pipeline.extraction.extract import ExtractConfig, ExtractError, run_extract
from pipeline.scoring.sources import job_from_record
from tests.conftest import random_photo, write_image


def test_mixed_features_are_finite_and_near_float32():
    views = make_views(random_photo(96, 112, seed=3), get_views("crop_flip"))
    full = Extractor.from_names("vgg16", "random:0", "mlsp_narrow,mlsp_wide,gmp")(views)
    mixed = Extractor.from_names("vgg16", "random:0", "mlsp_narrow,mlsp_wide,gmp", precision="mixed")(views)
    assert keras.config.dtype_policy().name == "float32"  # the policy is restored after building
    for kind, x in full.items():
        x, y = x.astype(np.float32), mixed[kind].astype(np.float32)
        assert np.isfinite(y).all(), kind  # narrow's means over a whole map would overflow float16
        assert np.abs(x - y).max() <= 0.01 * np.abs(x).max(), kind


def test_a_backbone_that_cannot_run_mixed_is_refused_with_its_reason():
    with pytest.raises(UsageError, match="vgg16_hed cannot extract with --precision mixed: HED's graph"):
        Extractor.from_names("vgg16_hed", "random:0", "mlsp_narrow", precision="mixed")
    with pytest.raises(UsageError, match="must be one of float32, mixed"):
        Extractor.from_names("vgg16", "random:0", "mlsp_narrow", precision="half")


def test_the_store_records_mixed_precision_and_the_predictor_rebuilds_it(tmp_path):
    for i in range(3):
        write_image(tmp_path / "photos" / f"p{i}.jpg", random_photo(64, 64, seed=i))

    def extract(precision):
        return run_extract(ExtractConfig(dataset="folder", data_dir=str(tmp_path / "photos"),
                                         store=str(tmp_path / "s.zarr"), backbone="vgg16", weights="random:0",
                                         features="gmp", views="none", scheduler="inprocess", precision=precision),
                           log=lambda m: None)

    assert extract("mixed").counts["done"] == 3
    with st.FeatureStore(tmp_path / "s.zarr") as fs:
        assert fs.settings["precision"] == "mixed" and fs.extraction()["precision"] == "mixed"
        job = job_from_record(fs.extraction(), ["gmp"], None)
    assert job.precision == "mixed"
    with pytest.raises(ExtractError, match="precision: store has 'mixed'"):
        extract("float32")
