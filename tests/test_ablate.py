import csv

import numpy as np

from pipeline.training.ablate import run_ablation
from pipeline.training.train import TrainConfig
from tests.conftest import linear_store

# Heads share a training pass only when their recipes agree; these tests pin one for every head.
SAME_RECIPE = dict(input_norm="none", l2=0.0, early_stop="loss")


def test_ablation_grid_writes_a_ranked_leaderboard(tmp_path):
    store = linear_store(tmp_path / "s.zarr", n=300, views=2, dim=12)
    base = TrainConfig(store=str(store), head="single1fc", batch_size=32, lr_stages=[1e-3], max_epochs=4,
                       patience=3)
    rows = run_ablation(base, ["single1fc", "single3fc", "rf"], seeds=[0, 1], out_dir=tmp_path / "ab",
                        log=lambda m: None)
    assert [r["seeds"] for r in rows] == [2, 2, 2]
    val = [r["val_srcc_mean"] for r in rows]
    assert val == sorted(val, reverse=True)
    with open(tmp_path / "ab" / "leaderboard.csv") as f:
        table = list(csv.DictReader(f))
    assert "nan" not in (tmp_path / "ab" / "leaderboard.csv").read_text()  # undefined cells are empty
    assert table[0]["fold_srcc_mean"] == ""  # no folds: undefined
    assert {r["head"] for r in table} == {"single1fc", "single3fc", "rf"}
    md = (tmp_path / "ab" / "leaderboard.md").read_text()
    assert "| 1 |" in md and "±" in md
    assert (tmp_path / "ab" / "single3fc_seed1" / "report.md").is_file()


def test_joint_training_equals_training_alone(tmp_path):
    """Heads trained together (one read per batch) learn exactly what they learn alone."""
    from pipeline.training.train import run_heads

    store = linear_store(tmp_path / "s.zarr", n=200, views=2, dim=8)
    cfg = TrainConfig(store=str(store), head="single3fc", batch_size=32, lr_stages=[1e-3], max_epochs=3,
                      patience=3, **SAME_RECIPE)
    quiet = lambda m: None  # noqa: E731
    run_heads(cfg, ["single3fc", "single1fc"], [tmp_path / "j3", tmp_path / "j1"], quiet)
    assert json_config(tmp_path / "j3")["trained_with"] == ["single3fc", "single1fc"]
    run_heads(cfg, ["single3fc"], [tmp_path / "a3"], quiet)
    joint = np.loadtxt(tmp_path / "j3" / "predictions.csv", delimiter=",", skiprows=1, usecols=3)
    alone = np.loadtxt(tmp_path / "a3" / "predictions.csv", delimiter=",", skiprows=1, usecols=3)
    np.testing.assert_allclose(joint, alone, rtol=1e-5, atol=1e-5)


def test_mos_and_distribution_heads_share_one_pass(tmp_path):
    from pipeline.training.train import run_heads

    store = linear_store(tmp_path / "s.zarr", n=160, views=2, dim=8, hist_bins=10)
    cfg = TrainConfig(store=str(store), head="single1fc", batch_size=32, lr_stages=[1e-3], max_epochs=2,
                      patience=2, **SAME_RECIPE)
    quiet = lambda m: None  # noqa: E731
    joint = run_heads(cfg, ["single1fc", "dist_emd"], [tmp_path / "j1", tmp_path / "jd"], quiet)
    assert json_config(tmp_path / "jd")["trained_with"] == ["single1fc", "dist_emd"]
    assert "distribution" in joint[1].metrics["test"] and "distribution" not in joint[0].metrics["test"]
    run_heads(cfg, ["dist_emd"], [tmp_path / "ad"], quiet)
    a = np.loadtxt(tmp_path / "jd" / "predictions.csv", delimiter=",", skiprows=1, usecols=range(3, 14))
    b = np.loadtxt(tmp_path / "ad" / "predictions.csv", delimiter=",", skiprows=1, usecols=range(3, 14))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def json_config(run_dir):
    import json

    return json.loads((run_dir / "config.json").read_text())


def test_store_without_a_test_split_trains_and_reports_validation_only(tmp_path):
    from pipeline.training.train import run_heads

    store = linear_store(tmp_path / "s.zarr", n=96, views=2, dim=8, hist_bins=10, test_split=False)
    cfg = TrainConfig(store=str(store), head="single1fc", batch_size=32, lr_stages=[1e-3], max_epochs=1,
                      patience=1)
    res = run_heads(cfg, ["single1fc", "dist_emd"], [tmp_path / "m", tmp_path / "d"], lambda m: None)
    for r, run in zip(res, ("m", "d")):
        assert "test" not in r.metrics and r.metrics["val"]["n"] == 96 - int(0.7 * 96)
        assert not (tmp_path / run / "predictions.csv").exists()
        assert (tmp_path / run / "predictions_val.csv").is_file() and (tmp_path / run / "model.keras").is_file()
