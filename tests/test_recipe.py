"""The training recipe beyond the reference: L2 in ridge units, early stopping on validation SRCC,
per-head defaults that a run can override."""
import numpy as np
import pytest

from evaluation.metrics import srcc
from evaluation.rundir import RunDir
from heads.registry import HEADS, HeadSpec, register_head
from pipeline.training.fitting import REFERENCE_RECIPE, Recipe, TrainConfig, recipe_for
from pipeline.training.train import run_heads, run_train
from tests.conftest import make_store

QUIET = {"log": lambda m: None}


def _noisy_linear_store(path, n=400, dim=24, seed=0):
    """Few rows, many weak features: the regime where the penalty decides the fit."""
    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(size=(n, dim))) * 10.0 ** rng.uniform(-1, 2, dim)  # non-negative, as ReLU features
    z = (x - x.mean(0)) / x.std(0)
    y = 3.0 + 0.3 * z @ rng.normal(size=dim) / np.sqrt(dim) + 0.5 * rng.normal(size=n)
    split = np.array(["train"] * n, dtype=object)
    split[int(0.6 * n): int(0.75 * n)] = "val"
    split[int(0.75 * n):] = "test"
    make_store(path, {"mlsp_narrow": x.astype(np.float32)[:, None, :]}, y, split)
    return x.astype(np.float16).astype(np.float64), y, split


def test_l2_on_a_linear_head_is_ridge_regression_in_standard_units():
    """`--l2 c` on a linear head over standardised inputs is ridge with alpha = c x n_train on standardised
    targets, whatever the score scale (heads.regularisation): trained to convergence, the head's
    predictions equal scikit-learn's Ridge."""
    import keras
    from sklearn.linear_model import Ridge

    from heads import create_head
    from heads.regularisation import add_kernel_l2
    from heads.targets import on_score_scale

    rng = np.random.default_rng(0)
    n, dim, l2 = 120, 12, 0.2
    z = rng.normal(size=(n, dim))
    z = (z - z.mean(0)) / z.std(0)
    y = 50.0 + 20.0 * (z @ rng.normal(size=dim) / np.sqrt(dim) + rng.normal(size=n))  # a 0-100 scale
    keras.utils.set_random_seed(0)
    model = on_score_scale(create_head("single1fc", input_shape=(dim,)), y[:, None])
    add_kernel_l2(model, l2, y[:, None])
    model.compile(optimizer=keras.optimizers.SGD(0.2 / y.var()), loss="mse")  # the loss is on the 0-100 scale
    model.fit(z.astype(np.float32), y.astype(np.float32), batch_size=n, epochs=600, verbose=0)
    pred = model.predict(z.astype(np.float32), verbose=0)[:, 0]
    ridge = Ridge(alpha=l2 * n).fit(z, (y - y.mean()) / y.std())
    np.testing.assert_allclose(pred, y.mean() + y.std() * ridge.predict(z), atol=0.01 * y.std())
    plain = Ridge(alpha=1e-6).fit(z, (y - y.mean()) / y.std())
    assert np.abs(plain.coef_ - ridge.coef_).max() > 0.05  # the penalty is not negligible here


def test_early_stopping_on_srcc_keeps_the_epoch_with_the_best_validation_srcc(tmp_path):
    _noisy_linear_store(tmp_path / "s.zarr")
    cfg = TrainConfig(store=str(tmp_path / "s.zarr"), head="single3fc", run_dir=str(tmp_path / "r"),
                      batch_size=32, lr_stages=[1e-3], max_epochs=8, patience=8, early_stop="srcc")
    result = run_train(cfg, **QUIET)
    history = result.history
    assert len(history["val_srcc"]) == 8 and len(set(np.round(history["val_srcc"], 6))) > 1
    val = RunDir.open(tmp_path / "r").read_predictions("val")
    assert srcc(val["true"], val["pred"]) == pytest.approx(max(history["val_srcc"]), abs=2e-3)
    assert RunDir.open(tmp_path / "r").config["recipe"]["early_stop"] == "srcc"


def test_a_heads_recipe_is_its_default_and_the_run_overrides_it():
    base = HEADS.get("single3fc")
    spec = HeadSpec("recipe_probe", base.builder, kinds=base.kinds, recipe={"l2": 0.5, "early_stop": "srcc"})
    cfg = TrainConfig(store="s", head="recipe_probe")
    assert recipe_for(spec, cfg) == Recipe(input_norm="none", l2=0.5, early_stop="srcc")
    assert recipe_for(spec, TrainConfig(store="s", head="x", l2=0.0)).l2 == 0.0
    assert recipe_for(base, cfg) == Recipe(batch_size=32)  # single3fc: the reference, batch 32
    assert recipe_for(HEADS.get("svm"), TrainConfig(store="s", head="svm", input_norm="standard")).input_norm == "none"
    with pytest.raises(ValueError, match="recipe keys"):
        HeadSpec("bad", base.builder, recipe={"learning_rate": 1})


@pytest.mark.parametrize("fields, match", [({"early_stop": "auc"}, "early stopping"), ({"l2": -1.0}, "l2"),
                                           ({"input_norm": "zscore"}, "did you mean|standard")])
def test_bad_recipe_choices_fail_before_any_work(fields, match):
    from features.core.errors import IAAError

    with pytest.raises(IAAError, match=match):
        TrainConfig(store="s", head="single1fc", **fields)


def test_heads_with_different_recipes_train_in_one_call(tmp_path):
    _noisy_linear_store(tmp_path / "s.zarr", n=200)
    base = HEADS.get("single1fc")
    register_head(HeadSpec("recipe_l2_probe", base.builder, kinds=base.kinds, lr_stages=(1e-3,),
                           recipe={"input_norm": "standard", "l2": 0.3}))
    try:
        cfg = TrainConfig(store=str(tmp_path / "s.zarr"), head="single3fc", batch_size=32, lr_stages=[1e-3],
                          max_epochs=2)
        out = run_heads(cfg, ["single3fc", "recipe_l2_probe"], [tmp_path / "a", tmp_path / "b"], **QUIET)
    finally:
        HEADS._items.pop("recipe_l2_probe")
    recipes = [RunDir.open(r.run_dir).config["recipe"] for r in out]
    run_settings = {"max_epochs": 2, "batch_size": 32, "lr_stages": [1e-3]}  # the run's choices apply to both
    assert recipes == [{**vars(REFERENCE_RECIPE), **run_settings},
                       {**vars(REFERENCE_RECIPE), "input_norm": "standard", "l2": 0.3, **run_settings}]


def test_reference_protocol_is_one_flag_away():
    from heads import get_head
    from pipeline.cli import build_parser

    args = build_parser().parse_args(["train", "--store", "s", "--head", "mlp", "--reference-protocol"])
    assert args.reference_protocol
    spec = get_head("mlp")
    assert recipe_for(spec, TrainConfig(store="s", head="mlp")).batch_size == 32  # the head's own recipe
    assert recipe_for(spec, TrainConfig(store="s", head="mlp", reference_protocol=True)) == REFERENCE_RECIPE
    mixed = recipe_for(spec, TrainConfig(store="s", head="mlp", reference_protocol=True, batch_size=16))
    assert mixed == Recipe(batch_size=16)  # what the run sets still applies
    assert recipe_for(get_head("svm_photo_critic"), TrainConfig(store="s", head="x",
                                                                reference_protocol=True)).input_norm == "none"
    from heads.registry import NARROW_STAGES, WIDE_STAGES
    from pipeline.training.fitting import lr_stages_of

    pool3fc = get_head("pool3fc")
    own, reference = (recipe_for(pool3fc, TrainConfig(store="s", head="pool3fc", reference_protocol=flag))
                      for flag in (False, True))
    assert lr_stages_of(pool3fc, own) == list(NARROW_STAGES)  # its recipe's stages
    assert lr_stages_of(pool3fc, reference) == list(WIDE_STAGES)  # the paper's, one flag away


def test_apms_sgd_with_momentum_and_weight_decay_is_a_recipe_choice(tmp_path):
    """V-A4: `--optimizer sgd --weight-decay 5e-4` trains with SGD, momentum 0.9, the paper's decay."""
    import keras

    from pipeline.cli import build_parser
    from pipeline.training.optimizers import build_optimizer

    sgd = build_optimizer("sgd", 1e-3, 5e-4)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.9 and sgd.weight_decay == 5e-4
    assert isinstance(build_optimizer("adam", 1e-3), keras.optimizers.Adam)
    with pytest.raises(KeyError, match="Did you mean 'sgd'"):
        TrainConfig(store="s", head="mean_huber", optimizer="sdg")
    args = build_parser().parse_args(["train", "--store", "s", "--head", "mean_huber", "--optimizer", "sgd"])
    assert args.optimizer == "sgd"

    _noisy_linear_store(tmp_path / "s.zarr", n=200)
    cfg = TrainConfig(store=str(tmp_path / "s.zarr"), head="single3fc", run_dir=str(tmp_path / "r"), batch_size=32,
                      lr_stages=[1e-3], max_epochs=2, optimizer="sgd", weight_decay=5e-4)
    result = run_train(cfg, **QUIET)
    assert RunDir.open(tmp_path / "r").config["recipe"]["optimizer"] == "sgd"
    assert np.isfinite(result.history["loss"]).all()
