"""Every registry works the same way, and a head added by registration alone trains end to end."""
import numpy as np
import pytest

from features.augment import VIEW_SETS
from features.backbones import BACKBONES
from features.codecs import COMPRESSIONS
from features.core.errors import IAAError
from features.pooling import FEATURE_KINDS
from features.core.registry import UnknownNameError
from heads import HEADS, HeadSpec, create_head, get_head, register_head
from heads.inputs import INPUT_NORMS
from heads.losses import LOSSES
from heads.targets import TARGETS
from pipeline.datasets import DATASETS
from pipeline.training.fit_sklearn import load_sklearn_run
from pipeline.training.fitting import TRAINERS
from pipeline.training import train  # noqa: F401  (registers the trainers)
from tests.conftest import linear_store

REGISTRIES = {"heads": HEADS, "backbones": BACKBONES, "kinds": FEATURE_KINDS, "views": VIEW_SETS,
              "datasets": DATASETS, "losses": LOSSES, "targets": TARGETS, "trainers": TRAINERS,
              "input norms": INPUT_NORMS, "compressions": COMPRESSIONS}


@pytest.mark.parametrize("name", list(REGISTRIES))
def test_every_registry_holds_named_specs_and_suggests_on_a_typo(name):
    registry = REGISTRIES[name]
    assert len(registry) > 0
    for spec_name in registry.names():
        assert registry.get(spec_name).name == spec_name
    first = registry.names()[0]
    with pytest.raises(UnknownNameError, match=f"Did you mean {first!r}") as info:
        registry.get(first + "x")
    assert isinstance(info.value, IAAError)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(registry.get(first))


@pytest.mark.parametrize("head", HEADS.names())
def test_every_head_is_built_by_the_factory_and_fits_its_spec(head):
    spec = get_head(head)
    assert spec.trainer in TRAINERS and spec.target in TARGETS
    assert spec.loss is None or spec.loss in LOSSES
    shape = (5, 5, 12) if spec.kinds == ("mlsp_wide",) else (12,)
    model = create_head(head, input_shape=shape, n_bins=5, blocks=[("a", 0, 4), ("b", 4, 12)], n_attributes=3)
    assert hasattr(model, "fit") and hasattr(model, "predict")


def test_factory_refuses_inputs_a_head_cannot_take():
    from heads import HeadMismatchError

    with pytest.raises(HeadMismatchError, match="block list"):
        create_head("multi3fc", input_shape=(12,))
    with pytest.raises(HeadMismatchError, match="K >= 2"):
        create_head("dist_emd", input_shape=(12,), n_bins=0)
    with pytest.raises(HeadMismatchError, match="wide features"):
        create_head("pool3fc", input_shape=(12,))
    with pytest.raises(HeadMismatchError, match="needs at least one"):
        create_head("reg_rank_att", input_shape=(12,), n_attributes=0)


def _ridge(input_shape=(), *, n_bins=0, blocks=(), seed=0):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=1.0)


def test_a_head_added_by_registration_alone_trains_and_evaluates(tmp_path):
    """Adding a head touches only heads/: the pipeline reads the spec's fields."""
    from pipeline.training.train import TrainConfig, run_train

    spec = register_head(HeadSpec("test_only_ridge", _ridge, kinds=("mlsp_narrow",), target="mos",
                                  trainer="sklearn", lr_stages=None, loss=None, description="ridge for a test"))
    try:
        store = linear_store(tmp_path / "s.zarr", n=120, views=2, dim=8)
        res = run_train(TrainConfig(store=str(store), head=spec.name, run_dir=str(tmp_path / "r")),
                        log=lambda m: None)
        assert res.metrics["test"]["srcc"] > 0.6
        assert (tmp_path / "r" / "report.md").is_file()
    finally:
        del HEADS._items[spec.name]


def test_row_limit_comes_from_the_spec():
    from pipeline.training.fit_sklearn import training_rows
    from pipeline.training.fitting import TrainError

    pos, views = training_rows(10, 8, max_train_rows=100, max_rows=None, name="rf", seed=0)
    assert len(pos) == 80 and np.array_equal(np.bincount(views), np.full(8, 10))
    pos, _ = training_rows(1000, 8, max_train_rows=100, max_rows=None, name="rf", seed=0)
    assert len(pos) == 1000  # one random view per image beyond the all-views budget
    with pytest.raises(TrainError, match="svm_linear"):
        training_rows(1000, 8, max_train_rows=100, max_rows=500, name="svm", seed=0)


def test_a_renamed_head_is_found_by_its_old_name():
    """photo-critic's fixed SVR is `svm_photo_critic`; `svm` (its earlier name) finds it, so old commands and run
    directories still work, and listings show the name once."""
    assert get_head("svm") is get_head("svm_photo_critic")
    assert "svm" in HEADS and "svm" not in HEADS.names()
    assert "svm (= svm_photo_critic)" in HEADS.help()
    with pytest.raises(ValueError, match="points to 'nope', which is not registered"):
        HEADS.alias("old", "nope")
    with pytest.raises(ValueError, match="'svm' is registered twice"):
        HEADS.alias("svm", "rf")
    with pytest.raises(UnknownNameError, match="Did you mean 'svm_photo_critic'"):
        get_head("svm_photo_critc")


def _ridge_with_option(input_shape=(), *, n_bins=0, blocks=(), seed=0, test_alpha=1.0):
    from sklearn.linear_model import Ridge

    return Ridge(alpha=test_alpha)


def test_a_head_with_a_new_option_is_added_by_registration_alone_and_trained_from_the_cli(tmp_path, capsys):
    """The option is declared once, on the spec: the flag, its help, validation and the builder's keyword follow."""
    from heads.options import OPTIONS, HeadOption, declare_options
    from pipeline.cli import build_parser, main

    options = declare_options(HeadOption("test_alpha", "float", "ridge penalty of the test head", default=1.0,
                                         minimum=0))
    spec = register_head(HeadSpec("test_only_optioned", _ridge_with_option, kinds=("mlsp_narrow",), trainer="sklearn",
                                  lr_stages=None, loss=None, options=options, description="a test head"))
    try:
        assert "test_only_optioned: ridge penalty of the test head" in build_parser().format_help() + \
            build_parser()._subparsers._group_actions[0].choices["train"].format_help()
        store = linear_store(tmp_path / "s.zarr", n=120, views=2, dim=8)
        common = ["ablate", "--store", str(store), "--heads", "test_only_optioned,ridge", "--out", str(tmp_path / "a")]
        assert main(common + ["--test-alpha", "-1"]) == 2
        assert "test_alpha must be >= 0" in capsys.readouterr().err
        assert main(common + ["--test-alpha", "1e6"]) == 0
        assert "note: ridge does not take --test-alpha; ignored" in capsys.readouterr().out
        from evaluation.rundir import RunDir

        run = next(p for p in (tmp_path / "a").iterdir() if p.name.startswith("test_only_optioned"))
        assert load_sklearn_run(RunDir.open(run)).alpha == 1e6
        assert RunDir.open(run).config["train"]["options"] == {"test_alpha": 1e6}
    finally:
        del HEADS._items[spec.name]
        del OPTIONS._items["test_alpha"]
