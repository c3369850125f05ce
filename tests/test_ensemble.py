"""Seed ensembles: one run directory averaging seeds, used by scoring like any run."""
import shutil

import numpy as np
import pytest

from evaluation.metrics import srcc
from evaluation.rundir import RunDir, RunDirError
from pipeline.scoring.predictor import Predictor
from pipeline.training.ablate import run_ablation
from pipeline.training.ensemble import load_run_model, members_of, train_seeds, write_ensemble
from pipeline.training.fitting import TrainError
from pipeline.training.train import TrainConfig
from tests.conftest import linear_store

QUIET = dict(log=lambda m: None)


@pytest.fixture(scope="module")
def ensemble_runs(scored, tmp_path_factory):
    """single1fc (Keras) and rf (scikit-learn), seeds 0 and 1, on the scored store's crop_flip views."""
    root = tmp_path_factory.mktemp("ens")
    out = {}
    for head in ("single1fc", "rf"):
        cfg = TrainConfig(store=str(scored["store"]), head=head, run_dir=str(root / head), batch_size=8,
                          lr_stages=[1e-3], max_epochs=2)
        out[head] = train_seeds(cfg, [0, 1], **QUIET)
    return out


@pytest.mark.parametrize("head", ["single1fc", "rf"])
def test_ensemble_run_averages_its_members(ensemble_runs, head):
    run = RunDir.open(ensemble_runs[head].run_dir)
    members = members_of(run)
    assert [m.path.name for m in members] == ["seed0", "seed1"]
    assert run.config["ensemble"]["seeds"] == [0, 1] and run.config["train"]["seed"] == [0, 1]
    mine = run.read_predictions("test")
    theirs = [m.read_predictions("test") for m in members]
    assert mine["id"] == theirs[0]["id"]
    np.testing.assert_allclose(mine["pred"], np.mean([t["pred"] for t in theirs], axis=0), rtol=1e-5, atol=1e-5)
    assert not np.allclose(theirs[0]["pred"], theirs[1]["pred"])  # the seeds differ, so the mean is news
    assert ensemble_runs[head].metrics["test"]["srcc"] == pytest.approx(srcc(mine["true"], mine["pred"]))
    assert (run.path / "report.md").is_file()


@pytest.mark.parametrize("head", ["single1fc", "rf"])
def test_scoring_an_ensemble_averages_the_members_scores(scored, ensemble_runs, head):
    from pipeline.scoring.predictor import Predictor

    photos = sorted((scored["folder"] / "images").glob("*.jpg"))[-4:]
    run = RunDir.open(ensemble_runs[head].run_dir)
    scores = Predictor.from_run(run.path).score_paths(photos).score
    members = [Predictor.from_run(m.path).score_paths(photos).score for m in members_of(run)]
    np.testing.assert_allclose(scores, np.mean(members, axis=0), rtol=1e-4, atol=1e-4)


def test_a_moved_member_is_refused_in_one_line(ensemble_runs, tmp_path):
    copy = tmp_path / "alone"
    shutil.copytree(ensemble_runs["single1fc"].run_dir, copy)
    shutil.rmtree(copy / "members" / "seed1")
    with pytest.raises(RunDirError, match="member members/seed1 is missing"):
        load_run_model(RunDir.open(copy))


def test_members_must_be_seeds_of_one_run(ensemble_runs, tmp_path):
    a = ensemble_runs["single1fc"].run_dir + "/members/seed0"
    b = ensemble_runs["rf"].run_dir + "/members/seed1"
    with pytest.raises(TrainError, match="differ in head"):
        write_ensemble(tmp_path / "mixed", [a, b], **QUIET)
    with pytest.raises(TrainError, match="share seeds"):
        write_ensemble(tmp_path / "same", [a, a], **QUIET)
    with pytest.raises(TrainError, match="at least two"):
        write_ensemble(tmp_path / "one", [a], **QUIET)


def test_embedding_heads_are_refused_before_training(tmp_path):
    store = linear_store(tmp_path / "s.zarr", n=60)
    cfg = TrainConfig(store=str(store), head="triplet", run_dir=str(tmp_path / "t"))
    with pytest.raises(TrainError, match="embedding"):
        train_seeds(cfg, [0, 1], **QUIET)
    assert not (tmp_path / "t").exists()


def test_ablate_ensemble_rows_per_fold(tmp_path):
    store = linear_store(tmp_path / "s.zarr", n=150, views=1, dim=8)
    base = TrainConfig(store=str(store), head="single1fc", batch_size=32, lr_stages=[1e-3], max_epochs=2)
    rows = run_ablation(base, ["single1fc", "ridge"], [0, 1], tmp_path / "ab", folds=3, ensemble=True, **QUIET)
    by_head = {r["head"]: r for r in rows}
    assert set(by_head) == {"single1fc", "ridge", "single1fc ensemble", "ridge ensemble"}
    preds, truth = [], []
    for fold in range(3):
        run = RunDir.open(tmp_path / "ab" / f"single1fc_fold{fold}_ensemble")
        assert [p.name for p in map(lambda m: m.path, members_of(run))] == [f"single1fc_fold{fold}_seed{s}"
                                                                           for s in (0, 1)]
        p = run.read_predictions("test")
        preds.append(p["pred"]), truth.append(p["true"])
    pooled = srcc(np.concatenate(truth), np.concatenate(preds))
    assert by_head["single1fc ensemble"]["test_srcc_mean"] == pytest.approx(pooled)
    assert "single1fc ensemble" in (tmp_path / "ab" / "leaderboard.md").read_text()


def test_score_resolves_an_ablations_best_row_to_its_ensemble(ensemble_runs, tmp_path):
    from pipeline.training.ablate import row_run_name
    from pipeline.scoring.score import resolve_run_dir

    assert row_run_name("mlp", 1, 2) == "mlp_fold2_seed1" and row_run_name("mlp ensemble", fold=2) == "mlp_fold2_ensemble"
    shutil.copytree(ensemble_runs["rf"].run_dir, tmp_path / "ab" / "rf_ensemble")
    (tmp_path / "ab" / "leaderboard.csv").write_text("head,val_srcc_mean\nrf ensemble,0.5\nrf,0.4\n")
    run, note = resolve_run_dir(str(tmp_path / "ab"))
    assert run == str(tmp_path / "ab" / "rf_ensemble") and "rf_ensemble" in note


@pytest.mark.parametrize("head", ["single1fc", "rf"])
def test_a_pack_carries_every_member_and_scores_like_the_directory(scored, ensemble_runs, head, tmp_path,
                                                                   monkeypatch):
    from pipeline.scoring.pack import write_pack
    from pipeline.scoring.score import resolve_run_dir

    monkeypatch.setenv("IAA_PACK_CACHE", str(tmp_path / "cache"))
    manifest = write_pack(ensemble_runs[head].run_dir, tmp_path / "ens.iaa")
    assert sum(name.endswith("/config.json") for name in manifest["files"]) == 3  # the ensemble + 2 members
    unpacked, _ = resolve_run_dir(str(tmp_path / "ens.iaa"))
    photos = [str(p) for p in sorted((scored["folder"] / "images").glob("p1*.jpg"))]
    mine = Predictor.from_run(unpacked).score_paths(photos).score
    np.testing.assert_allclose(mine, Predictor.from_run(ensemble_runs[head].run_dir).score_paths(photos).score,
                               rtol=1e-6)
