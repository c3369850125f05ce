import numpy as np
import pytest

from heads import HeadMismatchError, create_head, get_head, list_heads
from heads.distribution_loss import emd_loss, huber_dist_loss

KERAS_HEADS = list_heads(trainer="keras")
SKLEARN_HEADS = list_heads(trainer="sklearn")


def build_head_model(head, shape, n_bins=0, blocks=(), n_attributes=3):
    return create_head(head, input_shape=shape, n_bins=n_bins, blocks=blocks, n_attributes=n_attributes)


@pytest.mark.parametrize("head,shape,params", [
    ("single3fc", (16928,), 37_044_737),
    ("single1fc", (16928,), 16_929),
    ("pool3fc", (5, 5, 16928), 63_828_481),
    ("pool3fc", (5, 5, 10048), 42_693_121),
])
def test_parameter_counts_match_the_reference(head, shape, params):
    assert build_head_model(head, shape).count_params() == params


def test_describe_head_json(capsys):
    import json

    from pipeline.cli import main

    assert main(["describe-head", "single3fc", "--input-shape", "16928", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == 37_044_737 and info["layers"][1]["class"] == "Dense"


def test_unknown_head_suggests():
    with pytest.raises(KeyError, match="Did you mean 'pool3fc'"):
        get_head("pool3f")


def test_huber_loss_by_hand():
    loss = huber_dist_loss()
    d = 1 / 9
    same = np.array([[0.2, 0.3, 0.5]], np.float32)
    assert float(loss(same, same)[0]) == pytest.approx(0.0)
    a, b = np.array([[1.0, 0.0]], np.float32), np.array([[0.0, 1.0]], np.float32)
    assert float(loss(a, b)[0]) == pytest.approx(2 * d * (1 - d / 2), rel=1e-6)
    small = np.array([[0.25, 0.25, 0.5]], np.float32)
    near = np.array([[0.3, 0.2, 0.5]], np.float32)
    assert float(loss(small, near)[0]) == pytest.approx(2 * 0.5 * 0.05 ** 2, rel=1e-4)


def test_emd_uses_cumulative_distributions():
    loss = emd_loss(2.0)
    p = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    assert float(loss(p, p)[0]) == pytest.approx(0.0, abs=1e-7)
    a, b = np.array([[1.0, 0.0, 0.0]], np.float32), np.array([[0.0, 1.0, 0.0]], np.float32)
    assert float(loss(a, b)[0]) == pytest.approx(np.sqrt(1 / 3), rel=1e-6)  # without cumsum: sqrt(2/3)
    c = np.array([[0.0, 0.0, 1.0]], np.float32)
    assert float(loss(a, c)[0]) == pytest.approx(np.sqrt(2 / 3), rel=1e-6)
    assert float(loss(a, c)[0]) > float(loss(a, b)[0])  # farther mass costs more


@pytest.mark.parametrize("head", KERAS_HEADS)
def test_every_keras_head_trains_and_round_trips(head, tmp_path):
    import keras

    spec = get_head(head)
    wide = spec.kinds == ("mlsp_wide",)
    shape = (5, 5, 12) if wide else (12,)
    model = build_head_model(head, shape, n_bins=5, blocks=[("a", 0, 4), ("b", 4, 12)])
    from heads.losses import get_loss

    model.compile(optimizer="adam", loss=get_loss(spec.loss))
    rng = np.random.default_rng(0)
    x = rng.random((16,) + shape).astype(np.float32)
    y = rng.dirichlet(np.ones(5), 16).astype(np.float32) if spec.target == "dist" else rng.random((16, 1))
    if spec.needs_attributes:
        y = np.concatenate([y, rng.uniform(-1, 1, (16, 3))], axis=1)
        y[0, 2] = np.nan  # an image without that attribute
    if spec.fit_to_data:
        spec.fit_to_data(model, x, 0)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    before = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)  # safe mode
    np.testing.assert_allclose(loaded.predict(x, verbose=0), before, rtol=1e-5, atol=1e-6)
    if spec.target == "dist":
        assert before.shape == (16, 5) and (before >= 0).all()


def test_refuses_a_store_without_the_kind():
    spec = get_head("pool3fc")
    with pytest.raises(HeadMismatchError) as info:
        spec.check_store(["mlsp_narrow", "gmp"], has_hist=True)
    msg = str(info.value)
    assert "mlsp_wide" in msg and "gmp, mlsp_narrow" in msg
    with pytest.raises(HeadMismatchError, match="vote histograms"):
        get_head("dist_emd").check_store(["spp"], has_hist=False)
    with pytest.raises(HeadMismatchError, match="does not accept feature kind 'mlsp_wide'"):
        get_head("svm").check_store(["mlsp_wide"], has_hist=False, kind="mlsp_wide")
    assert get_head("svm").check_store(["fc7", "mlsp_wide"], has_hist=False) == "fc7"


@pytest.mark.parametrize("head", SKLEARN_HEADS)
def test_every_sklearn_head_fits_and_round_trips(head, tmp_path):
    import joblib

    rng = np.random.default_rng(0)
    x = rng.random((40, 6)) * 100
    y = x[:, 0] / 10 + rng.normal(0, 0.1, 40)
    spec = get_head(head)
    model = create_head(head, input_shape=(6,), seed=0)
    from heads.targets import get_target

    y = (y > np.median(y)).astype(float) if get_target(spec.target).classifier else y
    model.fit(x, y, **({"x_val": x[:10], "y_val": y[:10]} if spec.uses_validation else {}))
    joblib.dump(model, tmp_path / "m.joblib")
    # rf sums its trees in parallel threads: equal up to the order of the additions
    np.testing.assert_allclose(joblib.load(tmp_path / "m.joblib").predict(x), model.predict(x), rtol=1e-12)


def test_multi3fc_as_published_first_layer_as_wide_as_its_block():
    """Hosu et al. 2019, figure 5: X = b_i. By hand for VGG16's blocks: per block b² + 1029 b + 268,801
    (Dense b→b, BN, Dense b→1024, BN, Dense 1024→256, BN, Dense 256→1) and the joining Dense(5→1)."""
    channels = [64, 128, 256, 512, 512]
    offsets = np.cumsum([0] + channels)
    blocks = [(f"b{i}", int(offsets[i]), int(offsets[i + 1])) for i in range(5)]
    model = build_head_model("multi3fc", (1472,), blocks=blocks)
    assert model.count_params() == sum(b * b + 1029 * b + 268_801 for b in channels) + 6 == 3_469_003
    assert model.get_layer("b3_fc1").units == 512


def test_mean_huber_is_apm_mean_variant_with_delta_on_the_dataset_scale(tmp_path):
    """Murray & Gordo 2017's -mean model: one output, Huber with δ = 1/9 on AVA's 1-10 scale, the same
    share of the scale elsewhere; trains on MOS beside the distribution heads."""
    import json

    from heads.losses import LossContext, get_loss
    from pipeline.training.fitting import TrainConfig
    from pipeline.training.train import run_heads
    from tests.conftest import linear_store

    assert get_loss("huber_mean", LossContext(scale=(1.0, 10.0))).delta == pytest.approx(1 / 9)
    assert get_loss("huber_mean", LossContext(scale=(0.0, 1.0))).delta == pytest.approx(1 / 81)
    loss = get_loss("huber_mean", LossContext(scale=(1.0, 10.0)))
    t, p = np.array([[5.0], [5.0]], np.float32), np.array([[5.05], [7.0]], np.float32)
    want = np.mean([0.5 * 0.05 ** 2, (1 / 9) * (2.0 - 0.5 / 9)])
    assert float(loss(t, p)) == pytest.approx(want, rel=1e-4)
    store = linear_store(tmp_path / "s.zarr", n=200, hist_bins=10)
    cfg = TrainConfig(store=str(store), head="mean_huber", batch_size=32, lr_stages=[1e-3], max_epochs=3)
    results = run_heads(cfg, ["mean_huber", "dist_huber", "dist_mse"], [tmp_path / "m", tmp_path / "d", tmp_path / "e"],
                        log=lambda m: None)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["head"]["loss_settings"]["delta"] == \
        pytest.approx(1 / 9)
    assert results[0].metrics["test"]["srcc"] > 0.5
    assert {"kl", "cd_loss"} <= set(results[2].metrics["test"]["distribution"])  # APM's Table 1 columns
    # APM's -dist-Eucl (A9): Caffe's Euclidean loss, half the summed squared bin errors
    euclid = get_loss("euclidean_dist")
    t, p = np.array([[0.2, 0.8], [0.5, 0.5]], np.float32), np.array([[0.4, 0.4], [0.5, 0.7]], np.float32)
    assert float(euclid(t, p)) == pytest.approx(np.mean([0.5 * (0.04 + 0.16), 0.5 * 0.04]), rel=1e-5)


DIST_HEADS = [h for h in KERAS_HEADS if get_head(h).target == "dist"]


@pytest.mark.parametrize("head", DIST_HEADS)
@pytest.mark.parametrize("policy", ["float32", "mixed_float16"])
def test_distribution_heads_start_at_the_mean_histogram(head, policy):
    """Huber (ReLU) and EMD (softmax) heads alike, also behind mixed precision's float32 output layer."""
    import keras

    from heads.targets import get_target
    from heads.assembly import float32_output

    spec = get_head(head)
    shape = (5, 5, 12) if "mlsp_wide" in spec.kinds else (12,)
    hist = np.random.default_rng(0).dirichlet(np.ones(10), size=40).astype(np.float32)
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_head_model(head, shape, n_bins=10)
        model = float32_output(model) if policy == "mixed_float16" else model
        model = get_target("dist").prepare(model, hist)
        out = model.predict(np.zeros((2,) + shape, np.float32), verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # zero features leave only the output bias (BN at init is the identity up to its epsilon)
    np.testing.assert_allclose(out / out.sum(axis=1, keepdims=True), np.repeat(hist.mean(0)[None], 2, 0), atol=2e-3)


def test_apm_heads_have_the_papers_4096_wide_layer():
    # Murray & Gordo 2017, figure 2: SPP of ResNet-101 (18,432) → FC 4096 → FC 10
    assert build_head_model("dist_huber", (18432,), n_bins=10).count_params() == 18432 * 4096 + 4096 + 4096 * 10 + 10
    assert build_head_model("mean_huber", (4608,)).get_layer("fc1").units == 4096
