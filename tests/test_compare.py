"""Paired comparison of heads on the same photos (evaluation.compare) and its place in `iaa ablate`."""
import csv

import numpy as np
import pytest

from evaluation import metrics as m
from evaluation.compare import delta_text, paired_srcc_delta


def test_delta_is_the_difference_of_mean_seed_srcc():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=300)
    a = np.stack([truth + rng.normal(scale=0.5, size=300) for _ in range(3)], axis=1)
    b = np.stack([truth + rng.normal(scale=1.5, size=300) for _ in range(2)], axis=1)
    out = paired_srcc_delta(truth, a, b, n_boot=300)
    expected = np.mean([m.srcc(truth, a[:, s]) for s in range(3)]) - np.mean([m.srcc(truth, b[:, s]) for s in range(2)])
    assert out["delta"] == pytest.approx(expected, abs=1e-9) and out["n"] == 300
    assert 0 < out["low"] < out["delta"] < out["high"]  # a clearly better head: the interval excludes 0


def test_pairing_resolves_what_two_separate_intervals_cannot():
    """Two heads that share their errors differ by a little: paired, the interval is narrow and excludes 0;
    each head's own interval is far wider than the difference."""
    rng = np.random.default_rng(1)
    truth = rng.normal(size=400)
    shared = rng.normal(scale=1.0, size=400)
    a = (truth + shared + rng.normal(scale=0.15, size=400))[:, None]
    b = (truth + shared + rng.normal(scale=0.45, size=400))[:, None]
    out = paired_srcc_delta(truth, a, b, n_boot=500)
    lo, hi = m.bootstrap_ci(truth, a[:, 0], m.srcc, n_boot=500)
    assert out["low"] > 0 and (out["high"] - out["low"]) < (hi - lo) / 2
    same = paired_srcc_delta(truth, a, a, n_boot=50)
    assert same["delta"] == 0 and same["low"] == 0 and same["high"] == 0
    assert delta_text(out).startswith("+") and delta_text(None) == "n/a"


def test_ablation_leaderboard_compares_every_head_with_ridge_on_the_same_photos(tmp_path):
    from evaluation.compare import compare_heads
    from pipeline.training.ablate import run_ablation
    from pipeline.training.train import TrainConfig
    from tests.conftest import linear_store

    store = linear_store(tmp_path / "s.zarr", n=300, views=2, dim=12)
    base = TrainConfig(store=str(store), head="single1fc", batch_size=32, lr_stages=[1e-3], max_epochs=3,
                       patience=3)
    run_ablation(base, ["single1fc", "ridge"], seeds=[0, 1], out_dir=tmp_path / "ab", log=lambda m: None)
    table = {r["head"]: r for r in csv.DictReader(open(tmp_path / "ab" / "leaderboard.csv"))}
    assert table["ridge"]["test_srcc_vs_ridge"] == "0 (reference)"
    runs = lambda h: [str(tmp_path / "ab" / f"{h}_seed{s}") for s in (0, 1)]  # noqa: E731
    assert table["single1fc"]["test_srcc_vs_ridge"] == delta_text(compare_heads(runs("single1fc"), runs("ridge")))
    md = (tmp_path / "ab" / "leaderboard.md").read_text()
    assert "Δ test SRCC vs ridge [95 %]" in md and "Δ test SRCC vs best [95 %]" in md and "paired bootstrap" in md
