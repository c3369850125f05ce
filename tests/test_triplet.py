"""Schwarz et al.'s directional triplet embedding: loss against the paper's equations, rejection rule,
training on a store, and `iaa score --embeddings`."""
import json

import numpy as np
import pytest

from heads import create_head, get_head
from heads.triplet_loss import DirectionalTripletLoss, accepted_triplets
from heads.triplet import directional_triplet_numpy
from pipeline.training.train import TrainConfig, run_heads
from tests.conftest import linear_store

QUIET = dict(log=lambda m: None)


@pytest.mark.parametrize("margin,direction_margin,ties", [(0.2, 1.0, False), (0.5, 0.0, True), (0.0, 3.0, True)])
def test_loss_equals_the_paper_triplet_by_triplet(margin, direction_margin, ties):
    rng = np.random.default_rng(int(margin * 10 + direction_margin))
    s = rng.integers(0, 5, 12).astype(np.float32) if ties else rng.random(12).astype(np.float32)
    phi = rng.normal(size=(12, 6)).astype(np.float32) * rng.uniform(0.5, 3, (12, 1)).astype(np.float32)
    y_pred = np.concatenate([np.linalg.norm(phi, axis=1, keepdims=True), phi], axis=1)
    loss = DirectionalTripletLoss(margin, direction_margin)
    got = float(np.mean(loss.call(s[:, None], y_pred)))
    assert got == pytest.approx(directional_triplet_numpy(s, phi, margin, direction_margin), rel=1e-4)
    assert got > 0


def test_rejection_rule_keeps_only_clearly_separated_triplets():
    s = np.array([0.0, 0.1, 1.0, 0.5], np.float32)
    mask = np.asarray(accepted_triplets(s, 0.7))
    assert mask[0, 1, 2] == 1 and mask[1, 0, 2] == 1  # close pair (0, 1), far negative 2
    assert mask[0, 2, 1] == 0  # the positive farther than the negative
    assert mask[0, 3, 2] == 0  # |0 − 0.5| = 0.5 > 0.7 × |0.5 − 1|
    assert mask[0, 0, 2] == 0  # a == p
    assert np.mean(DirectionalTripletLoss().call(np.zeros((4, 1)), np.ones((4, 3)))) == 0  # no triplet: 0


def test_triplet_head_outputs_norm_then_embedding():
    model = create_head("triplet", input_shape=(10,), options={"embedding_dim": 7})
    out = model.predict(np.random.default_rng(0).random((3, 10)), verbose=0)
    assert out.shape == (3, 8) and get_head("triplet").target == "embedding"
    np.testing.assert_allclose(out[:, 0], np.linalg.norm(out[:, 1:], axis=1), rtol=1e-5)
    assert create_head("triplet", input_shape=(10,)).output.shape[-1] == 1001  # the paper's d = 1000


def test_norm_of_the_embedding_learns_the_score_order(tmp_path):
    store = linear_store(tmp_path / "s.zarr", n=400)
    cfg = TrainConfig(store=str(store), head="triplet", batch_size=64, lr_stages=[1e-2, 1e-3], options={"embedding_dim": 32})
    result = run_heads(cfg, ["triplet", "ridge"], [tmp_path / "t", tmp_path / "r"], **QUIET)
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["head"]["loss_settings"]["margin"] == 0.2 and config["head"]["loss_settings"]["ratio"] == 0.7
    assert result[0].metrics["test"]["srcc"] > 0.8, result[0].metrics["test"]


def test_score_writes_embeddings_of_a_triplet_run(scored, tmp_path, capsys):
    from pipeline.cli import main

    run = tmp_path / "triplet"
    cfg = TrainConfig(store=str(scored["store"]), head="triplet", batch_size=8, lr_stages=[1e-3], max_epochs=2,
                      options={"embedding_dim": 8})
    run_heads(cfg, ["triplet"], [run], **QUIET)
    photos = [str(p) for p in sorted((scored["folder"] / "images").glob("*.jpg"))[:5]]
    assert main(["score", str(run), *photos, "--out", str(tmp_path / "o"), "--embeddings"]) == 0
    saved = np.load(tmp_path / "o" / "embeddings.npz")
    assert saved["embedding"].shape == (5, 8) and sorted(saved["path"]) == sorted(photos)
    np.testing.assert_allclose(np.linalg.norm(saved["embedding"], axis=1), 1.0, rtol=1e-5)
    assert (np.diff(saved["score"]) <= 0).all()  # best first, as scores.csv
    assert main(["score", str(scored["runs"]["ridge"]), photos[0], "--out", str(tmp_path / "x"), "--embeddings"]) == 2
    assert "needs a run of an embedding head" in capsys.readouterr().err


def test_the_norm_is_judged_by_ranking_metrics_only(tmp_path):
    store = linear_store(tmp_path / "s.zarr", n=200)
    cfg = TrainConfig(store=str(store), head="triplet", batch_size=64, max_epochs=2, options={"embedding_dim": 8})
    m = run_heads(cfg, ["triplet"], [tmp_path / "t"], **QUIET)[0].metrics
    assert m["test"]["srcc"] is not None and m["test"]["pairwise_accuracy"] is not None
    assert m["test"]["accuracy"] is None and m["test"]["rmse"] is None  # ‖φ‖ is not on the MOS scale
    assert "| test (mean over views) |" in (tmp_path / "t" / "report.md").read_text()
