"""APM's late fusion of two branches (`iaa fuse`), on a store with SPP and GMP features."""
import json

import numpy as np
import pytest

from features.core.errors import UsageError
from pipeline.training.fuse import best_weight, fuse_runs
from pipeline.training.train import TrainConfig, run_heads
from tests.conftest import linear_store, make_store

QUIET = dict(log=lambda m: None)


def _two_branch_store(path, n=300, seed=0, hist=False):
    """The score depends on two latent parts; GMP sees one of them, SPP the other (noisily)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 2))
    mos = 5.5 + z[:, 0] + z[:, 1]
    gmp = np.clip(4 + z[:, :1] @ rng.normal(size=(1, 16)) + 0.3 * rng.normal(size=(n, 16)), 0, None)
    spp = np.clip(4 + z[:, 1:] @ rng.normal(size=(1, 36)) + 0.3 * rng.normal(size=(n, 36)), 0, None)
    spp /= np.linalg.norm(spp, axis=1, keepdims=True)
    split = np.array(["train"] * 200 + ["val"] * 40 + ["test"] * 60, dtype=object)
    votes = np.exp(-0.5 * (np.arange(1, 11)[None, :] - mos[:, None]) ** 2) if hist else None  # around the MOS
    return make_store(path, {"gmp": gmp[:, None].astype(np.float32), "spp": spp[:, None].astype(np.float32)},
                      mos, split, hist=votes)


def test_fusing_the_spp_and_gmp_branches_beats_each(tmp_path):
    store = _two_branch_store(tmp_path / "s.zarr")
    runs = []
    for head, kind in (("mean_huber", "spp"), ("ridge", "gmp")):
        cfg = TrainConfig(store=str(store), head=head, kind=kind, batch_size=32, lr_stages=[1e-3], max_epochs=10)
        runs.append(tmp_path / f"{head}_{kind}")
        run_heads(cfg, [head], [runs[-1]], **QUIET)
    metrics = fuse_runs(*runs, out=tmp_path / "fused", **QUIET)
    members = list(metrics["members"].values())
    assert 0 < metrics["weight"] < 1 and metrics["test"]["srcc"] > max(members) + 0.05, metrics
    config = json.loads((tmp_path / "fused" / "config.json").read_text())
    assert config["kind"] == "spp+gmp" and config["fusion"]["weight"] == metrics["weight"]
    assert "late fusion" in (tmp_path / "fused" / "report.md").read_text()
    assert (tmp_path / "fused" / "predictions_per_view.csv").is_file()


def test_two_distribution_branches_fuse_as_a_distribution_with_its_metrics(tmp_path):
    """V-A1: APM averages the branches' distributions; the fused run has KL and CDLoss (Table 1)."""
    from evaluation.rundir import RunDir

    store = _two_branch_store(tmp_path / "s.zarr", hist=True)
    runs = [tmp_path / "dist_spp", tmp_path / "dist_gmp"]
    for kind, run in zip(("spp", "gmp"), runs):
        cfg = TrainConfig(store=str(store), head="dist_huber", kind=kind, batch_size=32, lr_stages=[1e-3], max_epochs=4)
        run_heads(cfg, ["dist_huber"], [run], **QUIET)
    metrics = fuse_runs(*runs, out=tmp_path / "fused", **QUIET)
    assert {"kl", "cd_loss", "emd_r2"} <= set(metrics["test"]["distribution"])
    w = metrics["weight"]
    a, b, fused = (RunDir.open(r).read_predictions("test") for r in (*runs, tmp_path / "fused"))
    np.testing.assert_allclose(fused["dist"], w * a["dist"] + (1 - w) * b["dist"], atol=1e-4)
    assert json.loads((tmp_path / "fused" / "config.json").read_text())["fusion"]["fused"] == "distributions"


def test_weight_grid_includes_either_member_alone():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=50)
    assert best_weight(truth, rng.normal(size=50), truth) == 1.0
    assert best_weight(rng.normal(size=50), truth, truth) == 0.0
    assert best_weight(truth, truth, truth) == 0.5  # ties: the most even weight


def test_runs_on_other_images_or_without_a_model_are_refused(tmp_path, capsys):
    from pipeline.cli import main

    a, b = linear_store(tmp_path / "a.zarr", n=120), linear_store(tmp_path / "b.zarr", n=150, seed=1)
    for store, run in ((a, tmp_path / "ra"), (b, tmp_path / "rb")):
        run_heads(TrainConfig(store=str(store), head="ridge"), ["ridge"], [run], **QUIET)
    with pytest.raises(UsageError, match="predicted other val images"):
        fuse_runs(tmp_path / "ra", tmp_path / "rb", **QUIET)
    run_heads(TrainConfig(store=str(a), head="rf"), ["rf"], [tmp_path / "rf"], **QUIET)
    assert main(["fuse", str(tmp_path / "ra"), str(tmp_path / "rf"), "--out", str(tmp_path / "f")]) == 0
    assert main(["score", str(tmp_path / "f"), str(tmp_path / "a.zarr"), "--out", str(tmp_path / "o")]) == 2
    assert "no model of its own" in capsys.readouterr().err
