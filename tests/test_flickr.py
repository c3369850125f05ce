"""The Flickr metadata dataset (Schwarz et al.'s S, photo-critic's popularity), `--label`, and photo-critic's
binary baselines on the top and bottom 20 %."""
import json
import math

import numpy as np
import pytest

from evaluation.rundir import RunDir
from features import store as st
from pipeline.datasets import DatasetError, load_dataset
from pipeline.training.train import TrainConfig, TrainError, run_heads
from tests.conftest import add_attributes, make_store, random_photo, write_image

QUIET = dict(log=lambda m: None)


def _write_csv(root, header, rows):
    root.mkdir(parents=True, exist_ok=True)
    (root / "flickr.csv").write_text("\n".join([header] + rows) + "\n")
    return root


def test_labels_follow_the_published_formulas_and_exclusions(tmp_path):
    root = _write_csv(tmp_path / "f", "file,views,favs,upload_date,crawl_date", [
        "a.jpg,1000,30,2016-01-01,2016-01-31",           # 30 days
        "b.jpg,50,0,2016-01-01T00:00:00,2016-01-02",     # no favs: excluded from S
        "c.jpg,1,1,2016-01-01,2016-01-01",               # 1 view: log V = 0, S undefined
        "d.jpg,100,1,2015-01-01,2016-01-01",             # 1 fav: S = 0
    ])
    m = load_dataset("flickr", root)
    assert m.attribute_names == ["aesthetic_s", "popularity"]
    s, pop = m.attributes[:, 0], m.attributes[:, 1]
    assert s[0] == pytest.approx(math.log(30) / math.log(1000)) and np.isnan(s[1]) and np.isnan(s[2]) and s[3] == 0
    assert pop[0] == pytest.approx(math.log2(1001 / 31)) and pop[2] == pytest.approx(math.log2(2 / 1))
    assert pop[3] == pytest.approx(math.log2(101 / 366))
    np.testing.assert_array_equal(np.isnan(m.mos), np.isnan(s))  # the MOS is S
    assert m.notes["excluded_from_aesthetic_s"] == 2
    assert "log2((views + 1) / (days + 1))" in m.notes["formulas"]["popularity"]
    assert m.label_description()["attributes"]["scales"][1][0] <= pop.min()


@pytest.mark.parametrize("header,row,message", [
    ("file,views,favs,days", "a.jpg,-3,1,10", "flickr.csv:2: column 'views' must be a finite count >= 0"),
    ("file,views,favs,days", "a.jpg,ten,1,10", "flickr.csv:2: column 'views' must be a count"),
    ("file,views,favs", "a.jpg,10,1", "header needs upload_date, crawl_date"),
    ("file,views,favs,upload_date,crawl_date", "a.jpg,10,1,2016-02-01,2016-01-01", "flickr.csv:2: crawl_date"),
    ("file,views,favs,upload_date,crawl_date", "a.jpg,10,1,01/02/2016,2016-03-01", "must be an ISO date"),
    ("file,views,favs,days,split", "a.jpg,10,1,3,training", "split must be one of"),
])
def test_bad_metadata_names_the_line(tmp_path, header, row, message):
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset("flickr", _write_csv(tmp_path / "f", header, [row]))


def test_repeated_photos_name_both_lines_and_paths_stay_inside_the_folder(tmp_path):
    root = _write_csv(tmp_path / "f", "file,views,favs,days", ["a.jpg,10,1,3", "b.jpg,10,1,3", "a.jpg,9,1,3"])
    with pytest.raises(DatasetError, match="flickr.csv:4: 'a.jpg' is listed twice \\(first on line 2\\)"):
        load_dataset("flickr", root)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.jpg").write_bytes(b"")
    (root / "images").mkdir()
    (root / "images" / "link.jpg").symlink_to(outside / "x.jpg")
    (root / "images" / "in.jpg").write_bytes(b"")
    _write_csv(root, "file,views,favs,days", ["in.jpg,10,1,3", "missing.jpg,10,1,3"])
    m = load_dataset("flickr", root)
    assert m.paths == [(root / "images" / "in.jpg").resolve(), (root / "missing.jpg").resolve()]
    _write_csv(root, "file,views,favs,days", ["link.jpg,10,1,3"])
    with pytest.raises(DatasetError, match="flickr.csv:2: file 'link.jpg' resolves outside the folder"):
        load_dataset("flickr", root)


def test_seeded_split_keeps_each_owner_on_one_side(tmp_path):
    rows = [f"p{i}.jpg,{100 + i},{1 + i % 7},{10 + i},owner{i % 15}" for i in range(150)]
    m = load_dataset("flickr", _write_csv(tmp_path / "f", "file,views,favs,days,owner", rows))
    by_owner = {}
    for i, split in enumerate(m.split):
        by_owner.setdefault(i % 15, set()).add(split)
    assert all(len(s) == 1 for s in by_owner.values()) and set(m.split) == {"train", "val", "test"}
    assert "by owner" in m.notes["split"]
    assert load_dataset("flickr", tmp_path / "f").split == m.split  # seeded


def _binary_store(path, n=400, seed=0):
    """fc7-like magnitudes (hundreds, where gamma = 1e-6 is photo-critic's scale); popularity is a function
    of the features, S an unrelated label."""
    rng = np.random.default_rng(seed)
    base = np.abs(rng.normal(size=(n, 16))) * 150
    w = rng.normal(size=16)
    popularity = (base @ w) / 150
    split = np.array(["train"] * 280 + ["val"] * 40 + ["test"] * 80, dtype=object)
    make_store(path, {"gmp": base[:, None, :].astype(np.float32)}, rng.random(n), split, scale=(0.0, 1.0))
    lo, hi = math.floor(popularity.min()), math.ceil(popularity.max())
    return add_attributes(path, ["aesthetic_s", "popularity"], np.stack([rng.random(n), popularity], 1),
                          [(0, 1), (lo, hi)])


def test_binary_baselines_learn_the_top_and_bottom_20_percent(tmp_path):
    store = _binary_store(tmp_path / "b.zarr")
    heads = ["svm_binary", "svm_binary_nystroem", "rf_binary"]
    cfg = TrainConfig(store=str(store), head=heads[0], label="popularity")
    results = run_heads(cfg, heads, [tmp_path / h for h in heads], **QUIET)
    with st.FeatureStore(store) as fs:
        pop = fs.attributes[:, 1]
    low, high = np.quantile(pop, [0.2, 0.8])
    kept = (pop <= low) | (pop >= high)
    for head, r in zip(heads, results):
        config = json.loads((tmp_path / head / "config.json").read_text())
        assert config["label"] == "popularity" and config["binary_rule"]["low"] == pytest.approx(low)
        assert sum(config["splits"].values()) == kept.sum()  # the middle 60 % left out of every split
        m = r.metrics["test"]
        assert {"accuracy", "precision", "recall", "f1", "balanced_accuracy"} <= set(m)
        assert m["n"] == kept[320:].sum() and m["accuracy"] >= 0.85, (head, m)
        assert "| test |" in (tmp_path / head / "report.md").read_text()
        # V-P4 / K12: the predictions are confidences that rank the test photos, not hard labels
        pred = RunDir.open(tmp_path / head).read_predictions("test")["pred"]
        assert ((pred > 0) & (pred < 1)).mean() > 0.5 and len(np.unique(pred)) > 10, (head, pred[:8])
        assert m["auc"] >= m["balanced_accuracy"] - 0.05 and m["auc"] > 0.9, (head, m["auc"])


def test_label_choices_are_checked(tmp_path, capsys):
    from pipeline.cli import main

    store = _binary_store(tmp_path / "b.zarr", n=120)
    with pytest.raises(st.StoreError, match="Did you mean 'popularity'"):
        run_heads(TrainConfig(store=str(store), head="ridge", label="populrity"), ["ridge"], [tmp_path / "r"], **QUIET)
    with pytest.raises(TrainError, match="vote histograms"):
        run_heads(TrainConfig(store=str(store), head="dist_emd", label="popularity"), ["dist_emd"], [tmp_path / "d"],
                  **QUIET)
    assert main(["store-info", str(store)]) == 0
    assert "labels (train with --label NAME): mos 0-1, aesthetic_s 0-1, popularity" in capsys.readouterr().out
    assert main(["train", "--store", str(store), "--head", "ridge", "--label", "nope", "--run-dir",
                 str(tmp_path / "r")]) == 2


def test_flickr_folder_extracts_and_trains_on_either_label(tmp_path):
    from pipeline.extraction.extract import ExtractConfig, run_extract

    root = tmp_path / "flickr"
    rows = []
    for i in range(30):
        write_image(root / "images" / f"p{i:02d}.jpg", random_photo(40, 48, seed=i))
        rows.append(f"p{i:02d}.jpg,{20 + 40 * i},{i % 5},{30 + i},o{i % 6}")
    _write_csv(root, "file,views,favs,days,owner", rows)
    store = tmp_path / "f.zarr"
    run_extract(ExtractConfig(dataset="flickr", data_dir=str(root), store=str(store), backbone="vgg16_hed",
                              weights="random:0", features="gmp", views="none", scheduler="inprocess"), **QUIET)
    with st.FeatureStore(store) as fs:
        assert fs.attribute_names == ["aesthetic_s", "popularity"] and fs.counts()["done"] == 30
        assert "log(favs) / log(views)" in fs.attrs["dataset"]["notes"]["formulas"]["aesthetic_s"]
    for label, n_labelled in (("mos", 24), ("popularity", 30)):  # i % 5 == 0: no favs, no S
        cfg = TrainConfig(store=str(store), head="ridge", label=label)
        config_path = tmp_path / label / "config.json"
        run_heads(cfg, ["ridge"], [tmp_path / label], **QUIET)
        assert sum(json.loads(config_path.read_text())["splits"].values()) == n_labelled
