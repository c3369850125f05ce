"""Input normalisation inside Keras heads: fitted on the training split, saved with the model."""
import numpy as np
import pytest

from evaluation.metrics import srcc
from evaluation.rundir import RunDir
from pipeline.training.fit_sklearn import load_sklearn_run
from features.loader import FeatureReader, feature_moments
from features.store import FeatureStore
from pipeline.training.train import TrainConfig, run_train
from tests.conftest import make_store

QUIET = {"log": lambda m: None}


def _scaled_linear_store(path, n=600, dim=16, seed=0):
    """Features whose scales span six orders of magnitude; the target is linear in them."""
    rng = np.random.default_rng(seed)
    scales = 10.0 ** np.linspace(-3, 3, dim)
    z = np.abs(rng.normal(size=(n, dim)))
    x = (z * scales).astype(np.float32)
    y = 5.5 + (z - z.mean(0)) @ (rng.normal(size=dim) / np.sqrt(dim)) + 0.1 * rng.normal(size=n)
    split = np.array(["train"] * n, dtype=object)
    split[int(0.7 * n): int(0.8 * n)] = "val"
    split[int(0.8 * n):] = "test"
    make_store(path, {"mlsp_narrow": x[:, None, :]}, y, split)
    return x.astype(np.float16).astype(np.float64), y, split


def _least_squares_srcc(x, y, split):
    train, test = split == "train", split == "test"
    a = np.c_[np.ones(train.sum()), x[train]]
    coef, *_ = np.linalg.lstsq(a, y[train], rcond=None)
    return srcc(y[test], np.c_[np.ones(test.sum()), x[test]] @ coef)


def test_streamed_moments_equal_numpy(tmp_path):
    x, _, _ = _scaled_linear_store(tmp_path / "s.zarr", n=100, dim=6)
    with FeatureStore(tmp_path / "s.zarr") as fs:
        reader = FeatureReader(fs, "mlsp_narrow", np.arange(100), cache="none")
        m = feature_moments(reader, np.arange(100), np.zeros(100, int), log1p=True, block=7)
    np.testing.assert_allclose(m["mean"], np.log1p(x).mean(0), rtol=1e-5)
    np.testing.assert_allclose(m["variance"], np.log1p(x).var(0), rtol=1e-4)
    assert m["min"] == pytest.approx(x.min())


def test_a_linear_head_matches_least_squares_on_badly_scaled_features(tmp_path):
    """The conditioning defect of issue 9: raw, a linear head cannot fit a linear target; standardised it
    reaches the closed-form least-squares SRCC (420 training rows need more than 20 epochs per stage)."""
    x, y, split = _scaled_linear_store(tmp_path / "s.zarr")
    closed_form = _least_squares_srcc(x, y, split)
    assert closed_form > 0.9
    srccs = {}
    for norm in ("none", "standard"):
        cfg = TrainConfig(store=str(tmp_path / "s.zarr"), head="single1fc", run_dir=str(tmp_path / norm),
                          batch_size=32, max_epochs=100, input_norm=norm)
        srccs[norm] = run_train(cfg, **QUIET).metrics["test"]["srcc"]
    assert srccs["standard"] >= closed_form - 0.02, (srccs, closed_form)
    assert srccs["none"] < closed_form - 0.1, (srccs, closed_form)  # the defect is real without it

    run = RunDir.open(tmp_path / "standard")
    assert run.config["train"]["input_norm"] == "standard" and run.config["score_scale"]["std"] > 0
    model = run.load_keras()  # the normalisation travels inside model.keras
    assert model.get_layer("input_standardise") is not None
    pred = model.predict(x[split == "test"].astype(np.float32), verbose=0)[:, 0]
    np.testing.assert_allclose(pred, run.read_predictions("test")["pred"], rtol=1e-4, atol=1e-4)


def test_log_standard_takes_a_signed_log_of_signed_features(tmp_path):
    """Linear-bottleneck features (EfficientNet-Lite) are signed: sign(x)·log1p(|x|), in Keras and sklearn alike."""
    from heads.inputs import normalise_input

    rng = np.random.default_rng(0)
    x = (rng.normal(size=(60, 1, 4)) * [1, 10, 100, 1000]).astype(np.float32)
    split = ["train"] * 40 + ["val"] * 10 + ["test"] * 10
    make_store(tmp_path / "s.zarr", {"mlsp_narrow": x}, rng.random(60) * 9 + 1, split)
    for head in ("single1fc", "ridge"):
        cfg = TrainConfig(store=str(tmp_path / "s.zarr"), head=head, run_dir=str(tmp_path / head),
                          input_norm="log-standard")
        run_train(cfg, **QUIET)
    train = x[:40, 0].astype(np.float64)
    logged = np.sign(train) * np.log1p(np.abs(train))
    expected = (logged - logged.mean(0)) / logged.std(0)
    model = RunDir.open(tmp_path / "single1fc").load_keras()
    np.testing.assert_allclose(normalise_input(model, x[:40, 0]), expected, rtol=1e-3, atol=1e-3)
    sk = load_sklearn_run(RunDir.open(tmp_path / "ridge"))
    np.testing.assert_allclose(sk[:-1].transform(x[:40, 0]), expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("head", ["ridge", "svr"])
def test_validated_baselines_tune_on_validation_and_save_their_normalisation(tmp_path, head):
    x, y, split = _scaled_linear_store(tmp_path / "s.zarr", n=300)
    cfg = TrainConfig(store=str(tmp_path / "s.zarr"), head=head, run_dir=str(tmp_path / "r"), input_norm="standard")
    res = run_train(cfg, **QUIET)
    run = RunDir.open(tmp_path / "r")
    assert run.config["input_norm"] == "standard"
    model = load_sklearn_run(run)
    assert type(model).__name__ == "Pipeline" and model.steps[-1][1].val_srcc_ > 0.8
    np.testing.assert_allclose(model.predict(x[split == "test"]), run.read_predictions("test")["pred"],
                               rtol=1e-4, atol=1e-4)
    if head == "ridge":
        assert res.metrics["test"]["srcc"] >= _least_squares_srcc(x, y, split) - 0.02


def test_published_baselines_keep_their_setting(tmp_path):
    _scaled_linear_store(tmp_path / "s.zarr", n=120)
    cfg = TrainConfig(store=str(tmp_path / "s.zarr"), head="svm", run_dir=str(tmp_path / "r"),
                      input_norm="log-standard")
    run_train(cfg, **QUIET)
    assert RunDir.open(tmp_path / "r").config["input_norm"] == "none"


def test_a_channel_dead_in_training_is_ignored_not_exploded(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    x = np.abs(rng.normal(size=(n, 1, 6))).astype(np.float32)
    y = 5 + x[:, 0, 0] - x[:, 0, 1]
    split = np.array(["train"] * 140 + ["val"] * 20 + ["test"] * 40, dtype=object)
    x[split != "test", 0, 5] = 0.0  # all-zero in training, active in test
    x[split == "test", 0, 5] = 50.0
    make_store(tmp_path / "s.zarr", {"mlsp_narrow": x}, y, split)
    cfg = TrainConfig(store=str(tmp_path / "s.zarr"), head="single1fc", run_dir=str(tmp_path / "r"),
                      input_norm="standard", batch_size=16, l2=0.4, lr_stages=[1e-2, 1e-3])  # converges in 9 steps/epoch
    res = run_train(cfg, **QUIET)
    pred = RunDir.open(tmp_path / "r").read_predictions("test")["pred"]
    assert np.abs(pred - y[split == "test"]).max() < 5.0  # was 2e7 with the channel divided by ~0
    assert res.metrics["test"]["plcc"] > 0.95, res.metrics["test"]["plcc"]  # y is linear in the live channels
