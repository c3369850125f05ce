import numpy as np
import pytest

from pipeline.datasets import DatasetError, load_dataset
from pipeline.datasets.ava import build_ava_manifest, mos_from_votes, parse_ava_txt
from tests.conftest import SHARED_DATA

AVA_LABELS = SHARED_DATA / "ava-labels"


def test_unknown_dataset_suggests():
    with pytest.raises(KeyError, match="Did you mean 'ava'"):
        load_dataset("avaa")


def test_ava_mos_is_the_mean_vote():
    votes = np.array([[0, 0, 0, 0, 1, 1, 0, 0, 0, 0], [0] * 10])
    mos = mos_from_votes(votes)
    assert mos[0] == pytest.approx(5.5) and np.isnan(mos[1])


def test_ava_malformed_line_names_the_line(tmp_path):
    f = tmp_path / "AVA.txt"
    f.write_text("1 100 0 0 1 2 3 4 5 6 7 8 0 0 1\n2 101 0 0 1 2 3\n")
    with pytest.raises(DatasetError, match=r"AVA.txt:2: expected 15 columns"):
        parse_ava_txt(f)
    f.write_text("1 100 0 0 1 2 3 4 5 6 7 x 0 0 1\n")
    with pytest.raises(DatasetError, match=r"AVA.txt:1: .*integers"):
        parse_ava_txt(f)


def test_ava_without_files_says_what_to_download(tmp_path):
    with pytest.raises(DatasetError, match="Get AVA"):
        load_dataset("ava", tmp_path)


@pytest.mark.skipif(not AVA_LABELS.is_dir(), reason="../shared/data/ava-labels not present")
def test_ava_parser_on_the_real_label_files(tmp_path):
    ids, votes = parse_ava_txt(AVA_LABELS / "AVA_partial.txt")
    assert len(ids) == 25551 and votes.shape == (25551, 10)
    m = build_ava_manifest(AVA_LABELS / "AVA_partial.txt",
                           AVA_LABELS / "aesthetics_image_lists" / "generic_test.jpgl",
                           tmp_path / "images", tmp_path)
    counts = m.split_counts()
    assert counts["test"] > 0 and counts["val"] == pytest.approx(0.05 * (counts["train"] + counts["val"]), abs=2)
    assert 4.5 < np.nanmean(m.mos) < 6.0 and m.hist.shape == (25551, 10)
    assert str(m.paths[0]).endswith(f"{ids[0]}.jpg")
    test_ids = {line.strip() for line in open(AVA_LABELS / "aesthetics_image_lists" / "generic_test.jpgl")}
    assert all((s == "test") == (i in test_ids) for i, s in zip(m.ids, m.split))


def test_folder_with_csv(tiny_folder):
    m = load_dataset("folder", tiny_folder)
    assert m.ids[0] == "img0.jpg" and m.paths[0].is_file()  # found under images/
    assert m.hist.shape == (len(m), 10)
    assert m.split[:6] == ["train", "train", "train", "val", "test", "test"]


def test_folder_rejects_escaping_paths(tmp_path):
    (tmp_path / "labels.csv").write_text("file,mos\n../secret.jpg,3\n")
    with pytest.raises(DatasetError, match=r"labels.csv:2: .*inside the folder"):
        load_dataset("folder", tmp_path)


def test_folder_bad_split_and_mos(tmp_path):
    (tmp_path / "labels.csv").write_text("file,mos,split\na.jpg,3,training\n")
    with pytest.raises(DatasetError, match=r"labels.csv:2: split must be"):
        load_dataset("folder", tmp_path)
    (tmp_path / "labels.csv").write_text("file,mos\na.jpg,high\n")
    with pytest.raises(DatasetError, match=r"labels.csv:2: column 'mos'"):
        load_dataset("folder", tmp_path)


def test_folder_seeded_split_without_split_column(tmp_path):
    rows = "\n".join(f"im{i}.jpg,{i}" for i in range(100))
    (tmp_path / "labels.csv").write_text("file,mos\n" + rows + "\n")
    a, b = load_dataset("folder", tmp_path), load_dataset("folder", tmp_path)
    assert a.split == b.split and a.split_counts() == {"train": 80, "val": 10, "test": 10}


def test_folder_split_without_val_moves_part_of_train(tmp_path):
    rows = "\n".join(f"im{i}.jpg,{i},{'test' if i < 20 else 'train'}" for i in range(100))
    (tmp_path / "labels.csv").write_text("file,mos,split\n" + rows + "\n")
    assert load_dataset("folder", tmp_path).split_counts() == {"test": 20, "train": 72, "val": 8}


def test_unlabelled_folder(tiny_folder):
    (tiny_folder / "labels.csv").unlink()
    m = load_dataset("folder", tiny_folder)
    assert len(m) == 8 and np.isnan(m.mos).all() and set(m.split) == {"unlabelled"}


def test_demo_dataset_is_built_offline(tmp_path):
    m = load_dataset("demo", tmp_path / "demo")
    assert len(m) == 330 and m.hist.shape == (330, 10) and (m.hist.sum(axis=1) == 100).all()
    assert m.split_counts() == {"test": 66, "train": 231, "val": 33}
    # the synthetic score falls with degradation strength
    blur = [m.mos[m.ids.index(i)] for i in m.ids if i.startswith("astronaut") and "_blur" in i and "+" not in i]
    assert blur == sorted(blur, reverse=True) and len(blur) == 4
    assert all(p.is_file() for p in m.paths)


@pytest.mark.skipif(not (SHARED_DATA / "biq2021-dev").is_dir(), reason="../shared/data/biq2021-dev not present")
def test_biq2021_reads_as_a_folder():
    m = load_dataset("folder", SHARED_DATA / "biq2021-dev")
    assert len(m) == 2000 and m.paths[0].is_file()
    assert m.split_counts()["test"] == 400 and "val" in m.split_counts()


def _ava_with_side_information(root):
    """A 6-photo AVA layout with the release's tags, challenges and style lists (D3)."""
    from tests.conftest import random_photo, write_image

    lines = []
    for i in range(6):
        tags = (14, 18) if i % 2 else (0, 0)
        lines.append(f"{i + 1} {100 + i} " + " ".join(str((i + k) % 5) for k in range(10)) + f" {tags[0]} {tags[1]} 1396")
        write_image(root / "images" / f"{100 + i}.jpg", random_photo(40, 48, seed=i))
    (root / "AVA.txt").write_text("\n".join(lines) + "\n")
    (root / "aesthetics_image_lists").mkdir(parents=True)
    (root / "aesthetics_image_lists" / "generic_test.jpgl").write_text("104\n105\n")
    (root / "tags.txt").write_text("14 Landscape\n18 Nature\n")
    (root / "challenges.txt").write_text("1396 100_Meters\n")
    styles = root / "style_image_lists"
    styles.mkdir()
    (styles / "styles.txt").write_text("1 Complementary_Colors\n2 Duotones\n3 HDR\n")
    (styles / "train.jpgl").write_text("100\n101\n")
    (styles / "train.lab").write_text("2\n3\n")
    (styles / "test.jpgl").write_text("104\n")
    (styles / "test.multilab").write_text("1 0 1\n")


def test_ava_side_information_reaches_the_store(tmp_path):
    from features import store as st
    from pipeline.extraction.extract import ExtractConfig, run_extract

    _ava_with_side_information(tmp_path / "ava")
    m = load_dataset("ava", tmp_path / "ava")
    assert m.attribute_names == ["style_Complementary_Colors", "style_Duotones", "style_HDR"]
    np.testing.assert_array_equal(m.attributes[[0, 1, 4]], [[0, 1, 0], [0, 0, 1], [1, 0, 1]])
    assert np.isnan(m.attributes[[2, 3, 5]]).all()  # not in the style lists
    assert m.groups[0] == "1396 100_Meters" and m.tags[:2] == ["", "Landscape;Nature"]
    store = tmp_path / "ava.zarr"
    run_extract(ExtractConfig(dataset="ava", data_dir=str(tmp_path / "ava"), store=str(store), backbone="vgg16_hed",
                              weights="random:0", features="mlsp_narrow", views="none", scheduler="inprocess"),
                log=lambda msg: None)
    with st.FeatureStore(store) as fs:
        assert fs.attribute_names[1] == "style_Duotones" and fs.binary_attributes == (0, 1, 2)
        assert list(fs.photo_tags[:2]) == ["", "Landscape;Nature"] and fs.photo_groups[5] == "1396 100_Meters"
    (tmp_path / "ava" / "style_image_lists" / "train.lab").write_text("2\n9\n")
    with pytest.raises(DatasetError, match=r"train.lab:2: expected one style id of 1..3"):
        load_dataset("ava", tmp_path / "ava")


@pytest.mark.skipif(not (AVA_LABELS / "style_image_lists").is_dir(), reason="../shared/data/ava-labels not present")
def test_ava_side_information_from_the_real_release_files(tmp_path):
    m = build_ava_manifest(AVA_LABELS / "AVA_partial.txt", AVA_LABELS / "aesthetics_image_lists" / "generic_test.jpgl",
                           tmp_path / "images", AVA_LABELS)
    assert len(m.attribute_names) == 14 and m.attribute_names[0] == "style_Complementary_Colors"
    styled = np.isfinite(m.attributes).all(axis=1)
    assert 0 < styled.sum() < len(m) and (m.attributes[styled].sum(axis=1) >= 1).mean() > 0.9  # a few test rows: none
    assert sum(bool(t) for t in m.tags) > len(m) / 2 and all(" " in g for g in m.groups[:100])
