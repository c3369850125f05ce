"""AADB (both layouts, raw ratings), KonIQ-10k, and the folder's attribute and rater columns; stores keep
the new labels (schema 2)."""
import numpy as np
import pytest

from features import store as st
from pipeline.datasets import DatasetError, load_dataset
from pipeline.datasets.aadb import ATTRIBUTES, photo_name
from pipeline.extraction.extract import ExtractConfig, run_extract
from tests.conftest import random_photo, write_image

SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"
URL = "http://farm{f}.staticflickr.com/{s}/{p}.jpg"


def _aadb_official(root, with_raw=True):
    lists = root / "imgListFiles_label"
    lists.mkdir(parents=True)
    names = {tag: [f"farm1_{10 + i}_{tag.lower()}{i}_b.jpg" for i in range(n)]
             for tag, n in (("Train", 4), ("Validation", 2), ("TestNew", 2))}
    for tag, files in names.items():
        (lists / f"imgList{tag}Regression_score.txt").write_text(
            "".join(f"{f} {0.1 + 0.1 * i:.2f}\n" for i, f in enumerate(files)))
        for a in ATTRIBUTES[:2]:
            (lists / f"imgList{tag}Regression_{a}.txt").write_text(
                "".join(f"{f} {-0.2 * i:.1f}\n" for i, f in enumerate(files)))
        for i, f in enumerate(files):
            write_image(root / "datasetImages_originalSize" / f, random_photo(64, 80, seed=i))
    (lists / "imgListTestRegression_score.txt").write_text("legacy_test.jpg 0.5\n")  # not used
    if with_raw:
        train = names["Train"]
        header = "HITId,WorkerId," + ",".join(f"Input.image_url{k},Answer.overallScore{k}" for k in (1, 2))
        rows = [f"h1,W1,{URL.format(f=1, s=10, p=train[0][9:-4])},4,{URL.format(f=1, s=11, p=train[1][9:-4])},2",
                f"h2,W2,{URL.format(f=1, s=10, p=train[0][9:-4])},5,http://example.com/unknown.jpg,3"]
        (root / "AADB_AllinAll.csv").write_text("\n".join([header] + rows) + "\n")
    return names


def test_aadb_official_layout_reads_splits_attributes_and_raters(tmp_path):
    names = _aadb_official(tmp_path)
    m = load_dataset("aadb", tmp_path)
    assert m.split_counts() == {"train": 4, "val": 2, "test": 2}
    assert m.ids[:4] == names["Train"] and "legacy_test.jpg" not in m.ids
    assert m.scale == (0.0, 1.0) and all(p.is_file() for p in m.paths)
    assert m.attribute_names == list(ATTRIBUTES)
    np.testing.assert_allclose(m.attributes[1, :2], [-0.2, -0.2])
    assert np.isnan(m.attributes[:, 2:]).all() and len(m.notes["missing_attribute_lists"]) == 27
    r = m.ratings
    assert list(r.image) == [0, 1, 0] and r.rater == ["W1", "W1", "W2"] and list(r.score) == [4, 2, 5]
    assert r.scale == (1.0, 5.0)


def test_photo_names_from_flickr_urls():
    assert photo_name("http://farm1.staticflickr.com/286/20013434330_d99ab6b9a0_b.jpg") == \
        "farm1_286_20013434330_d99ab6b9a0_b.jpg"
    assert photo_name("not a url") is None


def test_aadb_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(DatasetError, match="neither imgListFiles_label/"):
        load_dataset("aadb", tmp_path)
    _aadb_official(tmp_path, with_raw=False)
    (tmp_path / "imgListFiles_label" / "imgListValidationRegression_score.txt").write_text("a.jpg x\n")
    with pytest.raises(DatasetError, match=r"imgListValidationRegression_score.txt:1: value 'x'"):
        load_dataset("aadb", tmp_path)


def test_aadb_csv_drops_identical_repeats_and_refuses_conflicting_ones(tmp_path):
    head = "dis_img_path,dis_type,score," + ",".join(ATTRIBUTES)
    row = "AADB/datasetImages_originalSize/{n},image_natural,{s}," + ",".join(["0.2"] * 11)
    lines = [head] + [row.format(n=f"p{i}.jpg", s=f"{0.1 * i:.2f}") for i in range(20)]
    lines.append(row.format(n="p3.jpg", s="0.30"))
    (tmp_path / "AADB.csv").write_text("\n".join(lines) + "\n")
    m = load_dataset("aadb", tmp_path)
    assert len(m) == 20 and m.notes["duplicates_dropped"] == 1 and "seeded" in m.notes["split"]
    assert m.attributes.shape == (20, 11) and set(m.split) <= {"train", "val", "test"}
    lines.append(row.format(n="p4.jpg", s=0.9))
    (tmp_path / "AADB.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"AADB.csv:23: p4.jpg repeats line 6 with other labels"):
        load_dataset("aadb", tmp_path)


@pytest.mark.skipif(not (SHARED / "aadb-labels" / "AADB.csv").is_file(), reason="../shared/data/aadb-labels absent")
def test_aadb_real_csv():
    m = load_dataset("aadb", SHARED / "aadb-labels")
    assert len(m) == 9958 - 127 and m.notes["duplicates_dropped"] == 127
    assert 0 <= m.mos.min() and m.mos.max() <= 1 and -1 <= np.nanmin(m.attributes) and np.nanmax(m.attributes) <= 1


def _koniq(root, n=6, folder="images"):
    lines = ["image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set"]
    for i in range(n):
        write_image(root / folder / f"{i}.jpg", random_photo(48, 64, seed=i))
        s = ("training", "training", "training", "validation", "test", "test")[i % 6]
        lines.append(f"{i}.jpg,0.1,0.2,0.3,0.25,0.15,100,{20 + 10 * i},0.5,{s}")
    (root / "koniq10k_distributions_sets.csv").write_text("\n".join(lines) + "\n")


def test_koniq10k_reads_official_sets_votes_and_the_release_folder(tmp_path):
    _koniq(tmp_path, folder="512x384")
    m = load_dataset("koniq10k", tmp_path)
    assert m.split_counts() == {"train": 3, "val": 1, "test": 2} and m.scale == (1.0, 100.0)
    np.testing.assert_array_equal(m.hist[0], [10, 20, 30, 25, 15])
    assert m.notes["release_size"] == "512x384" and all(p.is_file() for p in m.paths)
    with pytest.raises(DatasetError, match="koniq10k_distributions_sets.csv is missing"):
        load_dataset("koniq10k", tmp_path / "nothing")


@pytest.mark.skipif(not (SHARED / "koniq-labels").is_dir(), reason="../shared/data/koniq-labels absent")
def test_koniq10k_real_labels():
    m = load_dataset("koniq10k", SHARED / "koniq-labels")
    assert m.split_counts() == {"train": 7058, "val": 1000, "test": 2015} and m.hist.shape == (10073, 5)


def test_folder_attribute_and_long_format_rater_columns(tmp_path):
    rows = ["file,rater,mos,split,attr_light"]
    for i in range(3):
        write_image(tmp_path / f"p{i}.jpg", random_photo(48, 48, seed=i))
        rows += [f"p{i}.jpg,ann,{i + 1},train,0.{i}", f"p{i}.jpg,bob,{i + 3},train,0.{i}"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    m = load_dataset("folder", tmp_path)
    assert m.ids == ["p0.jpg", "p1.jpg", "p2.jpg"]
    np.testing.assert_allclose(m.mos, [2, 3, 4])
    assert m.attribute_names == ["light"] and m.attributes[:, 0].tolist() == pytest.approx([0, 0.1, 0.2])
    assert list(m.ratings.image) == [0, 0, 1, 1, 2, 2] and m.ratings.rater[:2] == ["ann", "bob"]
    (tmp_path / "labels.csv").write_text("file,rater,mos\np0.jpg,,3\n")
    with pytest.raises(DatasetError, match="labels.csv:2: with a `rater` column every row is one rating"):
        load_dataset("folder", tmp_path)


@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_stores_keep_attributes_and_ratings(tmp_path, suffix):
    _aadb_official(tmp_path / "aadb")
    store = tmp_path / f"a{suffix}"
    run_extract(ExtractConfig(dataset="aadb", data_dir=str(tmp_path / "aadb"), store=str(store),
                              backbone="vgg16_hed", weights="random:0", features="mlsp_narrow", views="none",
                              scheduler="inprocess"), log=lambda m: None)
    with st.FeatureStore(store) as fs:
        assert fs.attrs["schema_version"] == 3 and fs.attribute_names == list(ATTRIBUTES)
        assert fs.attributes.shape == (8, 11) and fs.ratings["rater"].tolist() == ["W1", "W1", "W2"]
        assert fs.attrs["dataset"]["labels"]["ratings"] == {"n": 3, "raters": 2, "scale": [1.0, 5.0]}
        assert "labels/attributes" in fs.info()["arrays"]
