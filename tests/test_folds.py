"""K-fold cross-validation (`pipeline.training.folds`, `iaa ablate --folds K`): every photo tested exactly once."""
import csv

import numpy as np
import pytest
from scipy import stats

from pipeline.training.folds import Fold


def test_folds_test_every_usable_row_exactly_once():
    usable = np.ones(103, bool)
    usable[[5, 50, 99]] = False
    parts = [Fold(4, k).rows(usable) for k in range(4)]
    tested = np.concatenate([p["test"] for p in parts])
    assert sorted(tested.tolist()) == np.flatnonzero(usable).tolist()
    for p in parts:
        assert not (set(p["train"]) & set(p["val"]) or set(p["train"]) & set(p["test"]) or set(p["val"]) & set(p["test"]))
        assert len(p["train"]) + len(p["val"]) + len(p["test"]) == usable.sum()
        assert len(p["val"]) == round(0.1 * (usable.sum() - len(p["test"])))
    again = Fold(4, 2).rows(usable)
    assert all(np.array_equal(again[s], parts[2][s]) for s in again)  # the same for every head and seed


@pytest.mark.parametrize("k, index", [(1, 0), (3, 3), (3, -1)])
def test_bad_folds_are_refused(k, index):
    with pytest.raises(ValueError):
        Fold(k, index)


def test_cross_validated_ablation_ranks_on_out_of_fold_predictions(tmp_path):
    from evaluation.rundir import RunDir
    from pipeline.training.ablate import run_ablation
    from pipeline.training.train import TrainConfig
    from tests.conftest import linear_store

    store = linear_store(tmp_path / "s.zarr", n=120, views=2, dim=8)
    base = TrainConfig(store=str(store), head="single1fc", batch_size=32, lr_stages=[1e-3], max_epochs=2,
                       patience=2)
    rows = run_ablation(base, ["single1fc", "ridge"], seeds=[0], out_dir=tmp_path / "cv", log=lambda m: None,
                        folds=3)
    by_head = {r["head"]: r for r in rows}
    for head in ("single1fc", "ridge"):
        preds = [RunDir.open(tmp_path / "cv" / f"{head}_fold{k}_seed0").read_predictions("test") for k in range(3)]
        ids = [i for p in preds for i in p["id"]]
        assert len(ids) == len(set(ids)) == 120  # every photo once, whatever the store's split says
        true = np.concatenate([p["true"] for p in preds])
        pred = np.concatenate([p["pred"] for p in preds])
        assert by_head[head]["test_srcc_mean"] == pytest.approx(stats.spearmanr(true, pred)[0], abs=1e-6)
        fold_srcc = [stats.spearmanr(p["true"], p["pred"])[0] for p in preds]
        assert by_head[head]["fold_srcc_mean"] == pytest.approx(np.mean(fold_srcc), abs=1e-4)
    config = RunDir.open(tmp_path / "cv" / "ridge_fold2_seed0").config["train"]
    assert config["folds"] == 3 and config["fold"] == 2
    md = (tmp_path / "cv" / "leaderboard.md").read_text()
    assert "out-of-fold test SRCC" in md and "SRCC per fold" in md and "Δ test SRCC vs ridge" in md
    table = {r["head"]: r for r in csv.DictReader(open(tmp_path / "cv" / "leaderboard.csv"))}
    assert table["ridge"]["test_srcc_vs_ridge"] == "0 (reference)" and table["single1fc"]["test_srcc_vs_ridge"]


def test_a_fold_outside_the_folds_is_one_line(capsys):
    from pipeline.cli import main

    assert main(["train", "--store", "nowhere.zarr", "--head", "ridge", "--folds", "3", "--fold", "3"]) == 2
    assert "fold index must be in [0, 3)" in capsys.readouterr().err
