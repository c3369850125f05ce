import numpy as np
import pytest
from scipy import stats

from evaluation import metrics as m
from pipeline.datasets.base import infer_scale


def test_srcc_and_plcc_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    t = rng.integers(1, 6, 200).astype(float)  # many ties
    p = t + rng.normal(0, 1, 200)
    p[:20] = 3.0  # ties in the predictions too
    assert m.srcc(t, p) == pytest.approx(stats.spearmanr(t, p).statistic, abs=1e-12)
    assert m.plcc(t, p) == pytest.approx(stats.pearsonr(t, p).statistic, abs=1e-12)


def test_constant_predictions_are_a_clear_error_not_nan():
    with pytest.raises(m.MetricError, match="all equal"):
        m.srcc([1, 2, 3], [4, 4, 4])
    out = m.score_metrics([1, 2, 3, 6], [5, 5, 5, 5], threshold=5)
    assert out["srcc"] is None and "all equal" in out["srcc_error"]
    assert out["accuracy"] == 0.75 and out["mse"] == pytest.approx(np.mean([16, 9, 4, 1]))
    with pytest.raises(m.MetricError, match="finite"):
        m.plcc([1, 2, np.nan], [1, 2, 3])


def test_accuracy_uses_low_at_or_below_threshold():
    t = np.array([5.0, 5.0, 6.0, 4.0])
    p = np.array([5.0, 5.1, 7.0, 6.0])
    assert m.accuracy(t, p, 5.0) == 0.5  # 5.0/5.0 both low; 5.0/5.1 differ; 6/7 high; 4/6 differ
    # balanced: high-class recall 1/1, low-class recall 1/3
    assert m.balanced_accuracy(t, p, 5.0) == pytest.approx((1 + 1 / 3) / 2)


def test_thresholds_follow_the_scale():
    assert m.threshold_for_scale((1, 10)) == 5.0
    assert m.threshold_for_scale((0, 1)) == 0.5 and m.threshold_for_scale((0, 100)) == 50.0
    assert infer_scale([0.2, 0.9]) == (0.0, 1.0) and infer_scale([12, 88]) == (0.0, 100.0)
    assert infer_scale([3.2, 7.9]) == (1.0, 10.0) and infer_scale([1.5, 4.2]) == (1.0, 5.0)


def test_distribution_metrics_closed_form():
    g = np.array([[1.0, 0.0, 0.0]])
    p = np.array([[0.0, 1.0, 0.0]])
    assert m.emd(g, p, 1.0) == pytest.approx(1 / 3)
    assert m.emd(g, p, 2.0) == pytest.approx(np.sqrt(1 / 3))
    assert m.cd_loss(g, p) == pytest.approx(1.0)
    q = np.array([[0.5, 0.25, 0.25]])
    assert m.kl_divergence(q, q) == pytest.approx(0.0, abs=1e-12)
    assert m.kl_divergence(np.array([[0.5, 0.5]]), np.array([[0.25, 0.75]])) == pytest.approx(
        0.5 * np.log(2) + 0.5 * np.log(2 / 3))
    assert np.isfinite(m.kl_divergence(g, p))  # empty predicted bin: floored, not inf
    np.testing.assert_allclose(m.mos_from_distribution(np.array([[0, 2, 2], [1, 0, 0]])), [2.5, 1.0])
    with pytest.raises(m.MetricError, match="sums to zero"):
        m.emd(np.zeros((1, 3)), p)


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    t = rng.normal(size=300)
    p = t + rng.normal(size=300)
    a, b = m.bootstrap_ci(t, p, m.srcc), m.bootstrap_ci(t, p, m.srcc)
    assert a == b and a[0] < m.srcc(t, p) < a[1] and a[1] - a[0] < 0.2


def test_within_group_srcc_ignores_what_separates_the_groups():
    from evaluation.metrics import within_group_srcc

    y = np.array([1, 2, 3, 4, 11, 12, 13, 14], float)
    groups = ["a"] * 4 + ["b"] * 4
    pred = np.array([4, 3, 2, 1, 14, 13, 12, 11], float)  # groups apart, every group ranked backwards
    out = within_group_srcc(y, pred, groups)
    assert out["a"] == pytest.approx(-1) and out["b"] == pytest.approx(-1) and out["mean"] == pytest.approx(-1)
    assert within_group_srcc(y, y, groups)["mean"] == pytest.approx(1)
    flat = np.array([4, 3, 2, 1, 5, 5, 5, 5], float)  # group b's predictions all equal: left out, not an error
    assert set(within_group_srcc(y, flat, groups)) == {"a", "mean"}


def test_binary_metrics_give_the_high_class_and_the_support_weighted_averages():
    """photo-critic's Table I reports support-weighted precision / recall / F1 (its recall equals accuracy)."""
    from sklearn.metrics import precision_recall_fscore_support

    from evaluation.metrics import binary_metrics

    rng = np.random.default_rng(0)
    truth = rng.random(200) > 0.3
    pred = np.where(rng.random(200) > 0.25, truth, ~truth)
    m = binary_metrics(truth.astype(float), pred.astype(float))
    high = precision_recall_fscore_support(truth, pred, average="binary")
    weighted = precision_recall_fscore_support(truth, pred, average="weighted")
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx(high[:3])
    assert (m["weighted_precision"], m["weighted_recall"], m["weighted_f1"]) == pytest.approx(weighted[:3])
    assert m["weighted_recall"] == pytest.approx(m["accuracy"])


def test_tuned_cut_is_the_best_on_validation_by_brute_force():
    """K9 / V-K12: Kong et al. choose the classification cut τ on validation data."""
    rng = np.random.default_rng(0)
    t = rng.uniform(1, 10, 200)
    p = 0.4 * t + 2.0 + rng.normal(0, 0.6, 200)  # biased low: the fixed cut at 5 misclassifies many
    cut = m.tuned_threshold(t, p, 5.0)
    candidates = np.concatenate([np.sort(p)[:-1] + np.diff(np.sort(p)) / 2, [p.min() - 1, p.max()]])
    best = max(m.accuracy_at(t, p, 5.0, c) for c in candidates)
    assert m.accuracy_at(t, p, 5.0, cut) == best > m.accuracy(t, p, 5.0) + 0.1
    assert m.accuracy_at(t, t, 5.0, 5.0) == m.accuracy(t, t, 5.0) == 1.0
    assert m.tuned_threshold([1.0, 9.0, 2.0, 8.0], [0.1, 0.9, 0.2, 0.8], 5.0) == pytest.approx(0.5)


def test_report_gives_the_accuracy_at_the_validation_tuned_cut(tmp_path):
    from evaluation.report import evaluate_run
    from pipeline.training.train import TrainConfig, run_train
    from tests.conftest import linear_store

    store = linear_store(tmp_path / "s.zarr", n=120)
    run_train(TrainConfig(store=str(store), head="ridge", run_dir=str(tmp_path / "r")), log=lambda msg: None)
    metrics = evaluate_run(tmp_path / "r", log=lambda msg: None)
    test = metrics["test"]
    assert 0.0 <= test["accuracy_tuned_cut"] <= 1.0 and np.isfinite(test["tuned_cut"])
    assert "the cut that is best on validation" in (tmp_path / "r" / "report.md").read_text()


def test_roc_area_is_the_share_of_high_low_pairs_ordered():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    high = rng.random(80) > 0.6
    confidence = np.round(high * 0.3 + rng.random(80), 1)  # ties included
    assert m.roc_auc(high, confidence) == pytest.approx(roc_auc_score(high, confidence), abs=1e-12)
    assert m.roc_auc(np.ones(5, bool), np.arange(5.0)) is None


def test_failure_cases_are_the_extreme_errors_among_the_highest_rated():
    """M21: Hosu et al.'s figures 8-9 sort the highest-MOS test photos by absolute error."""
    from evaluation.plots import failure_picks

    true = np.array([9.0, 8.0, 7.0, 6.0, 1.0, 2.0, 3.0, 4.0])
    pred = np.array([8.0, 8.1, 3.0, 6.5, 9.0, 2.0, 3.0, 4.0])  # photo 4's error is largest but its MOS is low
    low, high, considered = failure_picks(true, pred, n=2, among_top=4)
    assert considered == 4 and low == [1, 3] and high == [2, 0]
    assert failure_picks(true, pred, n=1)[2] == 2  # a quarter of the test split by default


def test_rater_agreement_compares_each_rater_and_the_model_on_the_same_photos(tmp_path):
    """K10: Kong et al.'s Table 6, by how many photos each rater rated."""
    from evaluation.raters import rater_agreement, write_ratings

    ids = [f"p{i}" for i in range(6)]
    truth = np.arange(6, dtype=float)
    pred = {"id": ids, "true": truth, "pred": np.array([0, 1, 2, 3, 5, 4], float)}
    rows = [(i, "keen", truth[k]) for k, i in enumerate(ids)]  # agrees perfectly, rated 150 photos
    rows += [(i, "casual", s) for i, s in zip(ids[:4], [2, 1, 3, 4])] + [("p5", "once", 1.0)]
    write_ratings(tmp_path / "r.csv", [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                  {"keen": 150, "casual": 20, "once": 1})
    out = rater_agreement(tmp_path / "r.csv", pred)["buckets"]
    assert out[0]["raters"] == 2 and out[0]["human_srcc"] == pytest.approx((1.0 + 0.8) / 2)  # "once": 1 photo
    assert out[1]["raters"] == 1 and out[1]["human_srcc"] == 1.0 and out[1]["model_srcc"] == pytest.approx(0.942857, 1e-4)
    assert out[2]["raters"] == 0 and out[2]["human_srcc"] is None
    assert rater_agreement(tmp_path / "absent.csv", pred) is None
