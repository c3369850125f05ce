"""Kong et al. 2016's regression + rank loss, its heads, and the pairwise ranking accuracy."""
import json

import numpy as np
import pytest

from evaluation import metrics as mt
from heads.rank import rank_loss_numpy, rank_settings
from pipeline.fitting import TrainConfig, TrainError
from pipeline.train import run_heads
from tests.conftest import linear_store

QUIET = {"log": lambda m: None}


@pytest.mark.parametrize("margin, weight, min_gap, scale", [(0.02, 1.0, 0.0, (0.0, 1.0)),
                                                           (0.15, 0.1, 0.0, (1.0, 10.0)),
                                                           (0.1, 2.0, 0.2, (0.0, 100.0))])
def test_reg_rank_loss_equals_the_formula(margin, weight, min_gap, scale):
    from heads.layers import RegRankLoss

    lo, hi = scale
    rng = np.random.default_rng(int(margin * 100))
    y = lo + (hi - lo) * rng.random(24)
    y[3] = y[7]  # a tie: no order, left out of P
    p = lo + (hi - lo) * rng.random(24)
    loss = RegRankLoss(margin, weight, lo, hi, min_gap=min_gap)
    got = float(loss(y[:, None].astype(np.float32), p[:, None].astype(np.float32)))
    t, q = (y - lo) / (hi - lo), (p - lo) / (hi - lo)
    want = np.mean((t - q) ** 2) + weight * rank_loss_numpy(t, q, margin, min_gap)
    assert got == pytest.approx(want, rel=1e-5)


def test_rank_term_is_zero_for_a_perfect_order_beyond_the_margin_and_positive_otherwise():
    from heads.layers import RegRankLoss

    y = np.array([[0.1], [0.5], [0.9]], np.float32)
    loss = RegRankLoss(margin=0.1, rank_weight=1.0)
    assert float(loss(y, y)) == pytest.approx(0.0, abs=1e-7)  # gaps 0.4 >= margin: no hinge, no error
    flipped = y[::-1].copy()
    assert float(loss(y, flipped)) > float(np.mean((y - flipped) ** 2))


def test_rank_loss_refuses_an_empty_scale():
    from heads.layers import RegRankLoss

    with pytest.raises(ValueError, match="high > low"):
        RegRankLoss(low=1.0, high=1.0)


def test_paper_settings_per_dataset():
    assert (rank_settings("ava").margin, rank_settings("ava").weight) == (0.15, 0.1)
    assert (rank_settings("aadb").margin, rank_settings("aadb").weight) == (0.02, 1.0)
    assert "no published setting" in rank_settings("koniq10k").source


def test_pairwise_accuracy_counts_pairs_and_half_ties(monkeypatch):
    t = np.array([1.0, 2.0, 3.0, 3.0])
    assert mt.pairwise_accuracy(t, t) == 1.0
    assert mt.pairwise_accuracy(t, -t) == 0.0
    assert mt.pairwise_accuracy(t, np.array([1.0, 1.0, 3.0, 0.0])) == pytest.approx(2.5 / 5)
    with pytest.raises(mt.MetricError, match="every true score is equal"):
        mt.pairwise_accuracy([2.0, 2.0], [1.0, 2.0])
    rng = np.random.default_rng(0)
    a, b = rng.random(3000), rng.random(3000)
    b = a + 0.5 * b
    exact = mt.pairwise_accuracy(a, b)
    monkeypatch.setattr(mt, "EXACT_PAIR_LIMIT", 100)
    assert mt.pairwise_accuracy(a, b) == pytest.approx(exact, abs=0.003)  # sampled estimate


def test_reg_rank_trains_records_its_loss_settings_and_reports_pair_accuracy(tmp_path):
    store = linear_store(tmp_path / "s.zarr", n=240, wide=True, unit_scale=True)
    cfg = TrainConfig(store=str(store), head="reg_rank", batch_size=32, lr_stages=[1e-3], max_epochs=3,
                      rank_margin=0.05, rank_min_gap=0.01)
    heads = ["reg_rank", "reg_rank_wide", "single3fc"]
    results = run_heads(cfg, heads, [tmp_path / h for h in heads], **QUIET)
    config = json.loads((tmp_path / "reg_rank" / "config.json").read_text())
    assert config["head"]["loss_settings"] == {"name": "reg_rank", "margin": 0.05, "rank_weight": 1.0,
                                               "low": 0.0, "high": 1.0, "min_gap": 0.01}
    assert config["head"]["loss_settings"]["rank_weight"] == rank_settings("synthetic").weight
    for r in results:
        assert 0.0 <= r.metrics["test"]["pairwise_accuracy"] <= 1.0
    assert results[0].metrics["test"]["srcc"] > 0.5
    assert "pairs ordered" in (tmp_path / "reg_rank" / "report.md").read_text()


def test_rank_options_are_validated():
    with pytest.raises(TrainError, match="rank_margin must be >= 0"):
        TrainConfig(store="s", head="reg_rank", rank_margin=-0.1)
    with pytest.raises(TrainError, match="in \\[0, 1\\)"):
        TrainConfig(store="s", head="reg_rank", rank_min_gap=1.5)
