"""The run directory's formats round-trip through their one owner."""
import numpy as np
import pytest

from evaluation.rundir import RunDir, RunDirError


def test_predictions_history_and_config_round_trip(tmp_path):
    run = RunDir.create(tmp_path / "r", {"head": {"name": "x"}, "threshold": 5.0})
    run.update_config(params=12)
    assert RunDir.open(tmp_path / "r").config == {"head": {"name": "x"}, "threshold": 5.0, "params": 12}
    ids, paths, truth = ["a", "b", "c"], ["", "", ""], np.array([1.0, 5.5, 9.0])
    views = np.array([[[1.0], [2.0]], [[5.0], [6.0]], [[9.0], [8.0]]])
    run.write_predictions("test", ids, paths, truth, views)
    back = run.read_predictions("test")
    np.testing.assert_allclose(back["pred"], [1.5, 5.5, 8.5])
    np.testing.assert_allclose(run.read_per_view(ids), views[..., 0])
    assert back["dist"] is None and run.read_predictions("val") is None
    run.write_history({"epoch": [1, 2], "loss": [0.5, 0.25]})
    assert run.read_history() == {"epoch": [1.0, 2.0], "loss": [0.5, 0.25]}


def test_distribution_predictions_keep_both_histograms(tmp_path):
    run = RunDir.create(tmp_path / "r", {})
    views = np.array([[[0.0, 1.0, 3.0]], [[2.0, 2.0, 0.0]]])
    true_hist = np.array([[0, 1, 1], [4, 0, 0]], float)
    run.write_predictions("val", ["a", "b"], ["", ""], np.array([2.5, 1.0]), views, true_hist)
    back = run.read_predictions("val")
    np.testing.assert_allclose(back["dist"], [[0, 0.25, 0.75], [0.5, 0.5, 0]])
    np.testing.assert_allclose(back["true_dist"], [[0, 0.5, 0.5], [1, 0, 0]])
    np.testing.assert_allclose(back["pred"], [2.75, 1.5])


def test_not_a_run_and_damaged_config_are_clear_errors(tmp_path):
    with pytest.raises(RunDirError, match="not a run directory"):
        RunDir.open(tmp_path)
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(RunDirError, match="damaged"):
        RunDir.open(tmp_path)
