"""Kong et al. 2016's regression + rank loss, its heads, and the pairwise ranking accuracy."""
import json

import numpy as np
import pytest

from evaluation import metrics as mt
from heads.rank import rank_loss_numpy, rank_settings
from features.core.errors import UsageError
from features.core.registry import UnknownNameError
from pipeline.training.fitting import TrainConfig, TrainError
from pipeline.training.train import run_heads
from tests.conftest import linear_store

QUIET = {"log": lambda m: None}


@pytest.mark.parametrize("margin, weight, min_gap, scale", [(0.02, 1.0, 0.0, (0.0, 1.0)),
                                                           (0.15, 0.1, 0.0, (1.0, 10.0)),
                                                           (0.1, 2.0, 0.2, (0.0, 100.0))])
def test_reg_rank_loss_equals_the_formula(margin, weight, min_gap, scale):
    from heads.rank_loss import RegRankLoss

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
    from heads.rank_loss import RegRankLoss

    y = np.array([[0.1], [0.5], [0.9]], np.float32)
    loss = RegRankLoss(margin=0.1, rank_weight=1.0)
    assert float(loss(y, y)) == pytest.approx(0.0, abs=1e-7)  # gaps 0.4 >= margin: no hinge, no error
    flipped = y[::-1].copy()
    assert float(loss(y, flipped)) > float(np.mean((y - flipped) ** 2))


def test_rank_loss_refuses_an_empty_scale():
    from heads.rank_loss import RegRankLoss

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
                      options={"rank_margin": 0.05, "rank_min_gap": 0.01})
    heads = ["reg_rank", "reg_rank_wide", "single3fc"]
    results = run_heads(cfg, heads, [tmp_path / h for h in heads], **QUIET)
    config = json.loads((tmp_path / "reg_rank" / "config.json").read_text())
    assert config["head"]["loss_settings"] == {"name": "reg_rank", "margin": 0.05, "rank_weight": 1.0,
                                               "low": 0.0, "high": 1.0, "min_gap": 0.01, "attribute_weight": 0.1,
                                               "rater_columns": 0, "pairs": "same-rater"}
    assert config["head"]["loss_settings"]["rank_weight"] == rank_settings("synthetic").weight
    for r in results:
        assert 0.0 <= r.metrics["test"]["pairwise_accuracy"] <= 1.0
    assert results[0].metrics["test"]["srcc"] > 0.5
    assert "pairs ordered" in (tmp_path / "reg_rank" / "report.md").read_text()


def test_rank_options_are_validated():
    with pytest.raises(UsageError, match="rank_margin must be >= 0"):
        TrainConfig(store="s", head="reg_rank", options={"rank_margin": -0.1})
    with pytest.raises(UsageError, match="rank_min_gap must be below 1"):
        TrainConfig(store="s", head="reg_rank", options={"rank_min_gap": 1.5})
    with pytest.raises(UsageError, match="rank_pairs must be one of"):
        TrainConfig(store="s", head="reg_rank", options={"rank_pairs": "pairs"})
    with pytest.raises(UnknownNameError, match="Did you mean .rank_margin."):
        TrainConfig(store="s", head="reg_rank", options={"rank_margn": 0.1})


def _attribute_store(path, n=240, seed=0):
    """Linear-store features; the score and three attributes are functions of them (one attribute with
    gaps), on AADB's scales."""
    from tests.conftest import add_attributes, make_store

    rng = np.random.default_rng(seed)
    base = np.abs(rng.normal(size=(n, 24))).astype(np.float32)
    feats = base[:, None, :] + 0.05 * np.abs(rng.normal(size=(n, 2, 24))).astype(np.float32)
    w = rng.normal(size=(24, 4)) / np.sqrt(24)
    z = np.tanh(base @ w)
    split = np.array(["train"] * int(0.7 * n) + ["val"] * int(0.1 * n) + ["test"] * (n - int(0.8 * n)), dtype=object)
    attrs = z[:, 1:].astype(np.float32)
    attrs[::5, 2] = np.nan
    make_store(path, {"mlsp_narrow": feats}, (z[:, 0] + 1) / 2, split, scale=(0.0, 1.0))
    return add_attributes(path, ["light", "dof", "color"], attrs)


def test_attribute_and_content_heads_train_save_and_evaluate_attributes(tmp_path):
    import keras

    store = _attribute_store(tmp_path / "a.zarr")
    cfg = TrainConfig(store=str(store), head="reg_rank_att", batch_size=32, lr_stages=[1e-3], max_epochs=4,
                      input_norm="standard")
    heads = ["single3fc", "reg_rank", "reg_rank_att", "reg_rank_att_cont"]  # the paper's ablation, one pass
    results = run_heads(cfg, heads, [tmp_path / h for h in heads], **QUIET)
    assert "attributes" not in results[0].metrics["test"]
    for h, r in list(zip(heads, results))[2:]:
        attrs = r.metrics["test"]["attributes"]
        assert list(attrs) == ["light", "dof", "color"] and attrs["color"]["n"] == 48 - 9  # every 5th: no color
        assert all(m["srcc"] is not None for m in attrs.values())
        assert "| attribute (test) |" in (tmp_path / h / "report.md").read_text()
        assert r.metrics["test"]["srcc"] > 0.3
    config = json.loads((tmp_path / "reg_rank_att_cont" / "config.json").read_text())
    fitted = config["fitted_to_data"]
    assert fitted["clusters"] == 10 and sum(fitted["sizes"]) == 168 and fitted["temperature"] > 0
    model = keras.saving.load_model(tmp_path / "reg_rank_att_cont" / "model.keras", compile=False)
    from heads.inputs import find_layer

    centres = find_layer(model, "content_membership").centres.numpy()
    assert centres.shape == (10, 24) and np.abs(centres).sum() > 0  # the fitted clusters travel with the model


def test_content_head_without_attributes_trains_with_k_clusters_on_unit_length_input(tmp_path):
    """V-K10 (Table 2's Reg+Rank+Cont) on a store without attributes; K from --content-clusters (K14); the
    clusters are fitted on unit-length input (V-K7), so scaling a photo's features leaves its membership."""
    import keras

    from heads.inputs import find_layer
    from pipeline.cli import build_parser

    args = build_parser().parse_args(["train", "--store", "s", "--head", "reg_rank_cont", "--content-clusters", "3"])
    assert args.option_content_clusters == 3
    store = linear_store(tmp_path / "s.zarr", n=120)
    cfg = TrainConfig(store=str(store), head="reg_rank_cont", batch_size=32, lr_stages=[1e-3], max_epochs=2,
                      options={"content_clusters": 3})
    result = run_heads(cfg, ["reg_rank_cont"], [tmp_path / "r"], **QUIET)[0]
    assert np.isfinite(result.metrics["test"]["srcc"])
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["fitted_to_data"]["clusters"] == 3
    model = keras.saving.load_model(tmp_path / "r" / "model.keras", compile=False)
    layer = find_layer(model, "content_membership")
    norms = np.linalg.norm(layer.centres.numpy(), axis=1)
    assert layer.unit and (norms <= 1.0 + 1e-5).all() and (norms > 0.5).all()  # means of unit vectors
    x = np.abs(np.random.default_rng(0).normal(size=(4, 24))).astype(np.float32)
    np.testing.assert_allclose(layer(x).numpy(), layer(7.0 * x).numpy(), rtol=1e-4, atol=1e-6)
    assert find_layer(model, "content_fc3").units == 3 * 256  # each branch its own 256 features (V-K8) ...
    assert tuple(find_layer(model, "content_scores").kernel.shape) == (3, 256)  # ... and its own score layer


def test_binary_attributes_are_learnt_with_the_softmax_loss(tmp_path):
    """V-K6: for 0/1 attributes (AVA's styles) Kong et al. use a softmax loss; for one binary label that is the
    logistic loss on the output as a logit. The store finds which attributes are binary."""
    from heads.rank_loss import RegRankLoss
    from tests.conftest import add_attributes

    y = np.array([[0.2, 0.5, 1.0], [0.8, -0.5, 0.0], [0.4, 0.1, np.nan]], np.float32)
    p = np.array([[0.2, 0.1, 2.0], [0.8, -0.5, 0.5], [0.4, 0.1, 9.0]], np.float32)
    loss = RegRankLoss(margin=0.0, rank_weight=0.0, attribute_weight=0.5, binary_attributes=(1,))
    logistic = np.log1p(np.exp(-2.0)) + np.log1p(np.exp(0.5))  # -log sigmoid(2) - log(1 - sigmoid(.5))
    assert float(loss(y, p)) == pytest.approx(0.5 * (0.16 + logistic) / 3, rel=1e-5)
    store = linear_store(tmp_path / "s.zarr", n=30)
    values = np.stack([np.linspace(-1, 1, 30), (np.arange(30) % 2).astype(float), np.full(30, np.nan)], 1)
    values[::4, 1] = np.nan
    add_attributes(store, ["balance", "style_macro", "empty"], values.astype(np.float32))
    from features.store import FeatureStore

    with FeatureStore(store) as fs:
        assert fs.binary_attributes == (1,)


def test_attribute_heads_refuse_a_store_without_attributes(tmp_path):
    store = linear_store(tmp_path / "s.zarr", n=60)
    with pytest.raises(TrainError, match="no attribute labels"):
        run_heads(TrainConfig(store=str(store), head="reg_rank_att"), ["reg_rank_att"], [tmp_path / "r"], **QUIET)


def test_attribute_loss_sums_over_the_annotated_attributes():
    """Kong et al. (eq. 3, section 4.1): the attribute term is a Euclidean loss, the squared norm of the error over
    the attribute vector (a sum, as for the score), weighted by omega_a; unannotated attributes are left out."""
    from heads.rank_loss import RegRankLoss

    y = np.array([[0.2, 0.5, np.nan], [0.8, -0.5, 1.0]], np.float32)
    p = np.array([[0.2, 0.1, 99.0], [0.8, -0.5, 0.0]], np.float32)
    loss = RegRankLoss(margin=0.0, rank_weight=0.0, attribute_weight=0.5)
    assert float(loss(y, p)) == pytest.approx(0.5 * (0.16 + 1.0) / 2, rel=1e-5)


@pytest.mark.parametrize("head, params", [("reg_rank", 37_044_737), ("reg_rank_att", 37_056_023),
                                          ("reg_rank_att_cont", 39_598_532), ("reg_rank_cont", 39_587_147)])
def test_parameter_counts_on_irnv2_narrow_with_aadb_attributes(head, params):
    """By hand: the Single-3FC trunk (37,044,737) + attributes Dense(1024→11) 11,275, the score layer on
    256 + 11 inputs (+11 weights). Content (figure 3c, V-K8): the trunk's fc1-fc2 (36,781,056), per branch its
    own third layer (Dense 1024→256 + BN: 263,424) and score layer (256 [+ 11] + 1), 10 branches, and the
    10 × 16,928 centres + τ (not trainable); with attributes also their Dense(1024→11)."""
    from heads import create_head

    model = create_head(head, input_shape=(16928,), n_attributes=11)
    assert model.count_params() == params


def test_evaluate_on_another_store_maps_scales_by_rank_and_refuses_other_features(tmp_path, capsys):
    from pipeline.cli import main
    from pipeline.scoring.evaluate_on import evaluate_on, rank_map

    np.testing.assert_allclose(rank_map(np.array([3.0, 1.0, 2.0]), np.array([10.0, 30.0, 20.0])), [30, 10, 20])
    source = linear_store(tmp_path / "ava.zarr", n=240)  # 1-10 scale
    target = linear_store(tmp_path / "aadb.zarr", n=240, unit_scale=True)  # the same photos rated 0-1
    run = tmp_path / "run"
    run_heads(TrainConfig(store=str(source), head="ridge"), ["ridge"], [run], **QUIET)
    m = evaluate_on(run, target, split="all", **QUIET)
    assert m["n"] == 240 and m["target_scale"] == [0.0, 1.0] and m["srcc"] > 0.8
    assert m["plcc_rank_mapped"] > 0.8 and m["rmse_rank_mapped"] < 0.1  # mapped onto 0-1
    out = run / "evaluate_on" / "aadb_all"
    assert (out / "scatter.png").is_file() and "rank" in (out / "report.md").read_text()
    wide = linear_store(tmp_path / "other.zarr", n=60, dim=12)
    assert main(["evaluate-on", str(run), str(wide)]) == 2
    assert "kind mlsp_narrow: the run's shape [24], the store's [12]" in capsys.readouterr().err


@pytest.mark.parametrize("pairs", ["same-rater", "both"])
def test_rater_pairs_loss_equals_the_formula(pairs):
    from heads.rank_loss import RegRankLoss
    from heads.rank import rater_rank_loss_numpy

    rng = np.random.default_rng(1)
    n, raters = 16, 5
    ratings = rng.integers(1, 6, (n, raters)).astype(np.float32)
    ratings[rng.random((n, raters)) < 0.6] = np.nan  # each photo rated by some raters
    y = np.nanmean(np.where(np.isnan(ratings).all(axis=1, keepdims=True), 3.0, ratings), axis=1) / 5
    p = rng.random(n)
    loss = RegRankLoss(0.1, 1.0, rater_columns=raters, pairs=pairs)
    got = float(loss(np.concatenate([y[:, None], ratings], axis=1).astype(np.float32), p[:, None].astype(np.float32)))
    want = np.mean((y - p) ** 2) + rater_rank_loss_numpy(ratings, y, p, 0.1, pairs)
    assert got == pytest.approx(want, rel=1e-5)


def test_rater_matrix_and_pairs_per_batch():
    from heads.rank import rater_matrix, same_rater_pairs_per_batch

    ratings = {"image": np.array([0, 0, 1, 2, 2, 2]), "rater": np.array(["a", "b", "a", "a", "b", "a"]),
               "score": np.array([1.0, 2.0, 3.0, 4.0, 5.0, 2.0])}
    m = rater_matrix(ratings, np.array([2, 0]))
    np.testing.assert_allclose(m, [[3.0, 5.0], [1.0, 2.0]])  # rater a scored photo 2 twice: the mean
    assert same_rater_pairs_per_batch(m, 8) > 0


def test_rank_heads_order_pairs_by_raters_when_the_store_has_them(tmp_path, capsys):
    from tests.conftest import make_store

    rng = np.random.default_rng(0)
    n = 120
    x = np.abs(rng.normal(size=(n, 1, 16))).astype(np.float32)
    true = x[:, 0] @ rng.normal(size=16)
    split = np.array(["train"] * 80 + ["val"] * 20 + ["test"] * 20, dtype=object)
    image = np.repeat(np.arange(n), 3)
    rater = np.array([f"w{(i * 7 + k) % 10}" for i in range(n) for k in range(3)])
    score = np.clip(np.round(3 + true[image] / true.std() + rng.normal(0, 0.5, len(image))), 1, 5)
    make_store(tmp_path / "r.zarr", {"mlsp_narrow": x}, np.bincount(image, score) / 3, split, scale=(1.0, 5.0))
    import zarr

    labels = zarr.open_group(str(tmp_path / "r.zarr"), mode="r+")["labels"]
    for name, values in (("rating_image", image.astype(np.int32)), ("rating_rater", rater),
                         ("rating_score", score.astype(np.float32))):
        labels.create_array(name, shape=values.shape, dtype=str if values.dtype.kind == "U" else values.dtype,
                            chunks=values.shape)[:] = values
    cfg = TrainConfig(store=str(tmp_path / "r.zarr"), head="reg_rank", batch_size=16, lr_stages=[1e-3], max_epochs=2)
    logs = []
    run_heads(cfg, ["reg_rank", "single3fc"], [tmp_path / "a", tmp_path / "b"], log=logs.append)
    settings = json.loads((tmp_path / "a" / "config.json").read_text())["head"]["loss_settings"]
    assert settings["rater_columns"] == 10 and settings["pairs"] == "same-rater"
    assert any("same-rater pairs per batch of 16" in m for m in logs)
    plain = linear_store(tmp_path / "plain.zarr", n=60)
    with pytest.raises(TrainError, match="needs individual ratings with rater ids"):
        run_heads(TrainConfig(store=str(plain), head="reg_rank", options={"rank_pairs": "same-rater"}), ["reg_rank"],
                  [tmp_path / "c"], **QUIET)
