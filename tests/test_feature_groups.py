"""A second backbone in one store (`features/<backbone>/<kind>`), and heads on either group or on a
concatenation of kinds across groups (`--kind vgg16/gmp+gmp`)."""
import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.rundir import RunDir
from features import store as st
from features.cache import CacheError
from features.groups import ConcatFeatures
from features.loader import FeatureReader
from pipeline.cli import main
from pipeline.extraction.extract import ExtractConfig, ExtractError, run_extract
from pipeline.scoring.explain import explain
from pipeline.scoring.predictor import Predictor, PredictorError
from tests.conftest import random_photo, write_image

N = 16


@pytest.fixture(scope="module")
def two_backbones(tmp_path_factory):
    """A store with vgg16_hed (first group) and vgg16 (a second group) kinds, and a vgg16-only store."""
    root = tmp_path_factory.mktemp("groups")
    folder = root / "photos"
    lines = ["file,mos,split"]
    for i in range(N):
        write_image(folder / f"p{i:02d}.jpg", random_photo(64 + 8 * (i % 2), 80, seed=i))
        lines.append(f"p{i:02d}.jpg,{1 + (i * 5) % 9},{('train', 'train', 'val', 'test')[i % 4]}")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")

    def extract(store, backbone, weights, log=None):
        cfg = ExtractConfig(dataset="folder", data_dir=str(folder), store=str(store), backbone=backbone,
                            weights=weights, features="mlsp_narrow,gmp", views="none", scheduler="inprocess")
        return run_extract(cfg, log=log or (lambda m: None))

    store = root / "both.zarr"
    extract(store, "vgg16_hed", "random:0")
    with st.FeatureStore(store) as fs:
        first = {k: np.asarray(fs.features(k)[:]) for k in ("mlsp_narrow", "gmp")}
    lines = []
    added = extract(store, "vgg16", "random:1", log=lines.append)
    extract(root / "vgg16.zarr", "vgg16", "random:1")
    return {"store": store, "alone": root / "vgg16.zarr", "first": first, "added": added, "log": lines,
            "extract": extract, "root": root}


def test_a_second_backbone_is_added_beside_the_first(two_backbones, capsys):
    store, added = two_backbones["store"], two_backbones["added"]
    assert added.processed == N and added.counts["done"] == N
    assert any("adding vgg16 features" in line for line in two_backbones["log"])
    with st.FeatureStore(store) as fs, st.FeatureStore(two_backbones["alone"]) as alone:
        assert fs.kinds == ["gmp", "mlsp_narrow", "vgg16/gmp", "vgg16/mlsp_narrow"]
        assert fs.settings["backbone"] == "vgg16_hed" and fs.groups["vgg16"]["settings"]["weights"] == "random:1"
        for kind in ("gmp", "mlsp_narrow"):  # the first group untouched, the second equal to its own store's
            np.testing.assert_array_equal(np.asarray(fs.features(kind)[:]), two_backbones["first"][kind])
            np.testing.assert_array_equal(np.asarray(fs.features(f"vgg16/{kind}")[:]),
                                          np.asarray(alone.features(kind)[:]))
        assert fs.counts("vgg16/gmp") == {"pending": 0, "done": N, "failed": 0}
        assert fs.extraction("vgg16/gmp")["backbone"] == "vgg16"
        assert fs.extraction("vgg16_hed/gmp") == fs.extraction()  # the first group by its backbone's name
    assert main(["store-info", str(store)]) == 0
    assert "vgg16/gmp (vgg16, weights random:1): {'pending': 0, 'done': 16" in capsys.readouterr().out
    assert two_backbones["extract"](store, "vgg16", "random:1").processed == 0  # complete: nothing redone
    with pytest.raises(ExtractError, match="already holds vgg16 features made with other settings"):
        two_backbones["extract"](store, "vgg16", "random:2")


def test_concatenated_kinds_read_as_one(two_backbones):
    with st.FeatureStore(two_backbones["store"]) as fs:
        kind = "mlsp_narrow+vgg16/mlsp_narrow"
        assert fs.kind_shape(kind) == (1472 + 1472,)
        whole = np.concatenate([fs.features("mlsp_narrow")[:], fs.features("vgg16/mlsp_narrow")[:]], axis=-1)
        np.testing.assert_array_equal(fs.features(kind)[:], whole)
        rows, views = np.arange(N)[::-1], np.zeros(N, np.int64)
        for cache in ("none", "ram"):  # tensorstore's concatenation and the in-RAM copy
            np.testing.assert_array_equal(FeatureReader(fs, kind, np.arange(N), cache=cache).read(rows, views),
                                          whole[rows, 0])
        blocks = fs.blocks_of(kind)
        assert len(blocks) == 10 and blocks[5][0] == "vgg16/mlsp_narrow:block1_conv2" and blocks[5][1] == 1472
        assert blocks[-1][2] == 2 * 1472
        assert fs.blocks_of("gmp+vgg16/gmp") == [("gmp", 0, 512), ("vgg16/gmp", 512, 1024)]
        with pytest.raises(st.StoreError, match="'vgg16/mlsp_wide'. Did you mean 'vgg16/mlsp_narrow'"):
            fs.features("mlsp_narrow+vgg16/mlsp_wide")
        with pytest.raises(st.StoreError, match="no feature kind 'vgg19/gmp'.*It has gmp, mlsp_narrow, vgg16/gmp"):
            fs.features("vgg19/gmp")
    with pytest.raises(ValueError, match="b has shape \\(4, 2, 5, 5, 3\\), a \\(4, 2, 3\\)"):
        ConcatFeatures({"a": np.zeros((4, 2, 3)), "b": np.zeros((4, 2, 5, 5, 3))})


@pytest.fixture(scope="module")
def group_runs(two_backbones, tmp_path_factory):
    """single1fc on a concatenation across the two backbones, ridge on the second backbone's gmp."""
    root = tmp_path_factory.mktemp("group_runs")
    runs = {"concat": root / "concat", "ridge": root / "ridge"}
    for name, head, kind in (("concat", "single1fc", "mlsp_narrow+vgg16/mlsp_narrow"), ("ridge", "ridge", "vgg16/gmp")):
        assert main(["train", "--store", str(two_backbones["store"]), "--head", head, "--kind", kind,
                     "--run-dir", str(runs[name]), "--max-epochs", "2"]) == 0
    return runs


def test_heads_train_on_a_concatenation(two_backbones, group_runs, tmp_path, capsys):
    config = json.loads((group_runs["concat"] / "config.json").read_text())
    assert config["kind"] == "mlsp_narrow+vgg16/mlsp_narrow"
    assert set(config["extraction"]["parts"]) == {"mlsp_narrow", "vgg16/mlsp_narrow"}
    assert json.loads((group_runs["ridge"] / "config.json").read_text())["extraction"]["backbone"] == "vgg16"
    out = tmp_path / "ablate"
    assert main(["ablate", "--store", str(two_backbones["store"]), "--heads", "ridge,single1fc", "--kind",
                 "mlsp_narrow+vgg16/mlsp_narrow", "--out", str(out), "--max-epochs", "2"]) == 0
    assert "| mlsp_narrow+vgg16/mlsp_narrow |" in (out / "leaderboard.md").read_text()
    capsys.readouterr()
    assert main(["train", "--store", str(two_backbones["store"]), "--head", "single1fc", "--kind",
                 "mlsp_narrow+vgg16/gmp"]) == 2
    assert "head 'single1fc' does not accept feature kind 'vgg16/gmp'" in capsys.readouterr().err


@pytest.mark.parametrize("run", ["concat", "ridge"])
def test_runs_on_further_backbones_score_photos_as_in_training(group_runs, run):
    """Each backbone rebuilt from its own record, the parts joined as the store's reader joined them."""
    stored = RunDir.open(group_runs[run]).read_predictions("test")
    predictor = Predictor.from_run(group_runs[run])
    assert [j.backbone.name for j in predictor.jobs] == (["vgg16_hed", "vgg16"] if run == "concat" else ["vgg16"])
    result = predictor.score_paths(stored["path"])
    assert result.ok.all()
    np.testing.assert_allclose(result.score, stored["pred"], rtol=1e-4, atol=1e-4)


def test_a_concatenation_run_scores_caches_and_refuses_one_graph_uses(two_backbones, group_runs, tmp_path,
                                                                        monkeypatch, capsys):
    from pipeline.scoring import sources

    photos = sorted(Path(two_backbones["root"], "photos").glob("*.jpg"))[:3]
    assert main(["score", str(group_runs["concat"]), *map(str, photos), "--out", str(tmp_path / "scores")]) == 0
    first = Predictor.from_run(group_runs["concat"])
    first.use_cache(tmp_path / "cache")
    a = first.score_paths([str(p) for p in photos])
    assert (tmp_path / "cache" / "mlsp_narrow+vgg16~mlsp_narrow").is_dir()
    calls = []
    real = sources.compute_features
    monkeypatch.setattr(sources, "compute_features", lambda job, paths, on_done: calls.append(len(paths)) or
                        real(job, paths, on_done))
    again = Predictor.from_run(group_runs["concat"])
    again.use_cache(tmp_path / "cache")
    np.testing.assert_allclose(again.score_paths([str(p) for p in photos]).score, a.score, rtol=1e-6)
    assert sum(calls) == 0  # every photo from the cache
    vgg16_only = Predictor.from_run(group_runs["ridge"])
    vgg16_only.use_cache(tmp_path / "vgg16_cache")
    with pytest.raises(CacheError, match="holds features of another extraction"):
        again.use_cache(tmp_path / "vgg16_cache")
    with pytest.raises(PredictorError, match="joins mlsp_narrow \\+ vgg16/mlsp_narrow: use --method occlusion"):
        explain(again, str(photos[0]), method="gradient")
    assert explain(again, str(photos[0]), grid=2).method == "occlusion"
    capsys.readouterr()
    assert main(["export", str(group_runs["concat"]), "--out", str(tmp_path / "model")]) == 2
    assert "export needs one backbone's graph with one feature kind" in capsys.readouterr().err


def test_evaluate_on_finds_each_backbone_in_another_store(two_backbones, group_runs, tmp_path, capsys):
    """A run on the second group's gmp evaluates on a store where vgg16 is the first backbone: same features,
    same test SRCC; the concatenation is refused there, naming the missing part."""
    out = tmp_path / "eo"
    assert main(["evaluate-on", str(group_runs["ridge"]), str(two_backbones["alone"]), "--out", str(out)]) == 0
    own = json.loads((group_runs["ridge"] / "metrics.json").read_text())["test"]["srcc"]
    assert json.loads((out / "metrics.json").read_text())["srcc"] == pytest.approx(own, abs=1e-6)
    assert main(["evaluate-on", str(group_runs["concat"]), str(two_backbones["store"]), "--out",
                 str(tmp_path / "own")]) == 0
    own = json.loads((group_runs["concat"] / "metrics.json").read_text())["test"]["srcc"]
    assert json.loads((tmp_path / "own" / "metrics.json").read_text())["srcc"] == pytest.approx(own, abs=1e-6)
    capsys.readouterr()
    assert main(["evaluate-on", str(group_runs["concat"]), str(two_backbones["alone"])]) == 2
    assert "no feature kind 'vgg16_hed/mlsp_narrow'" in capsys.readouterr().err
