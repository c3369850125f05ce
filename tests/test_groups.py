"""A folder dataset's `group` column: stored, carried into predictions, reported as within-group SRCC."""
import numpy as np
import pytest

from evaluation import compare
from evaluation.metrics import within_group_srcc
from evaluation.rundir import RunDir
from features import store as st
from pipeline.training.ablate import run_ablation
from pipeline.datasets import load_dataset
from pipeline.datasets.base import DatasetError
from pipeline.training.train import TrainConfig
from tests.conftest import make_store

QUIET = dict(log=lambda m: None)


def test_folder_reads_groups_and_refuses_an_empty_one(tmp_path):
    (tmp_path / "labels.csv").write_text("file,mos,group\na.jpg,3,ss01\nb.jpg,4,ss02\n")
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(b"")
    m = load_dataset("folder", tmp_path)
    assert m.groups == ["ss01", "ss02"] and m.take([1, 0]).groups == ["ss02", "ss01"]
    assert list(m.extra_labels()["group"]) == ["ss01", "ss02"] and m.label_description()["groups"] == {"n": 2}
    (tmp_path / "labels.csv").write_text("file,mos,group\na.jpg,3,ss01\nb.jpg,4, \n")
    with pytest.raises(DatasetError, match=r"labels.csv:3: the `group` column is empty"):
        load_dataset("folder", tmp_path)


def test_long_format_keeps_each_photos_group(tmp_path):
    (tmp_path / "labels.csv").write_text("file,mos,rater,group\na.jpg,3,r1,x\na.jpg,5,r2,x\nb.jpg,2,r1,y\n")
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(b"")
    m = load_dataset("folder", tmp_path)
    assert m.ids == ["a.jpg", "b.jpg"] and m.groups == ["x", "y"] and list(m.mos) == [4.0, 2.0]


def _grouped_store(path, n=120, dim=8):
    """Three groups whose mean scores differ (like BIQ2021's sources), the score a noisy linear function."""
    rng = np.random.default_rng(0)
    groups = np.array(["g0", "g1", "g2"])[np.arange(n) % 3]
    x = rng.normal(size=(n, 1, dim)).astype(np.float32)
    mos = 5 + 1.5 * (groups == "g2") + x[:, 0, :3].sum(axis=1) * 0.5 + 0.3 * rng.normal(size=n)
    split = np.array(["train", "train", "train", "val", "test"])[np.arange(n) % 5]
    return make_store(path, {"mlsp_narrow": x}, mos, split, extra_labels={"group": groups})


def test_groups_reach_predictions_metrics_and_the_leaderboard(tmp_path):
    store = _grouped_store(tmp_path / "s.zarr")
    with st.FeatureStore(store) as fs:
        assert list(fs.photo_groups[:4]) == ["g0", "g1", "g2", "g0"]
    base = TrainConfig(store=str(store), head="ridge")
    rows = run_ablation(base, ["ridge"], [0], tmp_path / "ab", folds=3, **QUIET)
    dirs = [[str(tmp_path / "ab" / f"ridge_fold{f}_seed0") for f in range(3)]]
    pooled = compare.test_predictions(dirs)
    assert sorted(set(pooled["group"])) == ["g0", "g1", "g2"]
    expected = within_group_srcc(pooled["true"], pooled["pred"][:, 0], pooled["group"])["mean"]
    assert rows[0]["within_srcc_mean"] == pytest.approx(expected)
    metrics = RunDir.open(dirs[0][0]).read_metrics()["test"]["within_group_srcc"]
    assert set(metrics) == {"g0", "g1", "g2", "mean"}
    assert "within-group SRCC" in (tmp_path / "ab" / "leaderboard.md").read_text()


def test_without_groups_the_leaderboard_has_no_such_column(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 1, 4)).astype(np.float32)
    store = make_store(tmp_path / "s.zarr", {"mlsp_narrow": x}, 5 + x[:, 0, 0],
                       np.array(["train", "train", "val", "test"])[np.arange(60) % 4])
    run_ablation(TrainConfig(store=str(store), head="ridge"), ["ridge"], [0], tmp_path / "ab", **QUIET)
    assert "within-group" not in (tmp_path / "ab" / "leaderboard.md").read_text()
    assert RunDir.open(tmp_path / "ab" / "ridge_seed0").read_predictions("test")["group"] is None
