"""Models people can share: every scikit-learn head saves without pickle and loads from its allow-list; a
run directory or pack carrying a pickle or a foreign type never runs it; packs round-trip and refuse tampering."""
import json
import pickle
import shutil
import zipfile

import numpy as np
import pytest

from evaluation import sklearn_files
from pipeline.scoring.pack import PackError, open_pack, write_pack
from evaluation.rundir import RunDir
from heads import create_head, get_head, list_heads
from pipeline.cli import main
from pipeline.scoring.predictor import Predictor
from pipeline.training.fit_sklearn import load_sklearn_run, saved_types


class _RunsCode:
    """A payload: unpickling it (or building it from a skops file) would write a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))

    def __setstate__(self, state):
        open(state["marker"], "w").close()


@pytest.fixture(autouse=True)
def _pack_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IAA_PACK_CACHE", str(tmp_path / "pack_cache"))


@pytest.mark.parametrize("name", list_heads(trainer="sklearn"))
def test_every_sklearn_head_round_trips_without_pickle(name, tmp_path):
    spec = get_head(name)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    y = x @ rng.normal(size=6) + 0.1 * rng.normal(size=80)
    if spec.target in ("binary", "top_bottom"):
        y = (y > np.median(y)).astype(int)
    model = create_head(spec, input_shape=(6,), seed=0)
    model.fit(x, y, **({"x_val": x[:20], "y_val": y[:20]} if spec.uses_validation else {}))
    digest = sklearn_files.save(model, tmp_path / "m.skops", saved_types())
    with zipfile.ZipFile(tmp_path / "m.skops") as z:
        assert not any(n.endswith((".pkl", ".pickle")) for n in z.namelist())
    loaded = sklearn_files.load(tmp_path / "m.skops", digest, saved_types())
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-10)


def _copy(scored, tmp_path, head="ridge"):
    run = tmp_path / head
    shutil.copytree(scored["runs"][head], run)
    return run


def test_a_pickled_model_is_refused_and_never_runs(scored, tmp_path, capsys):
    run = _copy(scored, tmp_path)
    marker = tmp_path / "pwned"
    (run / "model.skops").unlink()
    (run / "model.joblib").write_bytes(pickle.dumps(_RunsCode(str(marker))))
    config = json.loads((run / "config.json").read_text())
    config["model_sha256"] = sklearn_files.sha256_of(run / "model.joblib")  # a stranger's run: its own sha
    (run / "config.json").write_text(json.dumps(config))
    for argv in (["score", str(run), str(scored["folder"])], ["pack", str(run), "--out", str(tmp_path / "x.iaa")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "is a pickle" in err and f"iaa convert {run} --trust" in err and "\n" not in err.strip()
    assert main(["convert", str(run)]) == 2 and "rerun with --trust" in capsys.readouterr().err
    assert not marker.exists()


def test_convert_rewrites_a_trusted_pickle_once(scored, tmp_path):
    import joblib

    run = _copy(scored, tmp_path)
    model = load_sklearn_run(RunDir.open(run))
    (run / "model.skops").unlink()
    joblib.dump(model, run / "model.joblib")
    RunDir.open(run).update_config(model_sha256=sklearn_files.sha256_of(run / "model.joblib"))
    assert main(["convert", str(tmp_path), "--trust"]) == 0  # a folder of runs: each one with a pickle
    assert (run / "model.skops").is_file() and not (run / "model.joblib").exists()
    photos = [str(p) for p in sorted((scored["folder"] / "images").glob("p0*.jpg"))]
    np.testing.assert_allclose(Predictor.from_run(run).score_paths(photos).score,
                               Predictor.from_run(scored["runs"]["ridge"]).score_paths(photos).score, rtol=1e-6)


def test_a_skops_file_naming_a_foreign_type_is_refused_before_building_it(scored, tmp_path, capsys):
    import skops.io as sio

    run = _copy(scored, tmp_path)
    marker = tmp_path / "pwned"
    sio.dump({"payload": _RunsCode(str(marker))}, run / "model.skops")
    RunDir.open(run).update_config(model_sha256=sklearn_files.sha256_of(run / "model.skops"))
    assert main(["score", str(run), str(scored["folder"])]) == 2
    assert "outside the allow-list" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize("head", ["ridge", "pool3fc_dist"])
def test_packs_round_trip_with_their_card(scored, tmp_path, head, capsys):
    pack = tmp_path / f"{head}.iaa"
    assert main(["pack", str(scored["runs"][head]), "--out", str(pack)]) == 0
    with zipfile.ZipFile(pack) as z:
        names = set(z.namelist())
    assert {"pack.json", "run/config.json", "run/MODEL_CARD.md", "run/metrics.json"} <= names
    photos = [str(p) for p in sorted((scored["folder"] / "images").glob("*.jpg"))][:6]
    from pipeline.scoring.score import resolve_run_dir

    unpacked, _ = resolve_run_dir(str(pack))
    np.testing.assert_allclose(Predictor.from_run(unpacked).score_paths(photos).score,
                               Predictor.from_run(scored["runs"][head]).score_paths(photos).score, rtol=1e-6)
    capsys.readouterr()
    assert main(["describe-run", str(pack)]) == 0
    out = capsys.readouterr().out
    assert f"# Model card: {head}" in out and "**Predicts**" in out and "## Known limits" in out
    assert "SRCC" in out and "sha256 checked" in out


def _rewrite(pack, out, change):
    """A copy of `pack` whose members went through `change(name, data) -> {name: data}`."""
    with zipfile.ZipFile(pack) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            for name, data in change(info.filename, src.read(info.filename)).items():
                dst.writestr(name, data)
    return out


def test_a_tampered_or_foreign_pack_is_refused(scored, tmp_path):
    pack = tmp_path / "ridge.iaa"
    write_pack(scored["runs"]["ridge"], pack)
    changed = _rewrite(pack, tmp_path / "a.iaa",
                       lambda n, d: {n: d + b"\0" if n.endswith("model.skops") else d})
    with pytest.raises(PackError, match="does not match its sha256"):
        open_pack(changed)
    escaping = _rewrite(pack, tmp_path / "b.iaa", lambda n, d: {n: d, **({"../evil.py": b"x"} if n == "pack.json" else {})})
    with pytest.raises(PackError, match="outside a pack's layout"):
        open_pack(escaping)
    pickled = _rewrite(pack, tmp_path / "c.iaa", lambda n, d: {n: d, **({"run/model.joblib": b"x"} if n == "pack.json" else {})})
    with pytest.raises(PackError, match="outside a pack's layout"):
        open_pack(pickled)
    (tmp_path / "d.iaa").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PackError, match="not a zip file"):
        open_pack(tmp_path / "d.iaa")
    assert not list((tmp_path / "pack_cache").glob("*/run"))  # nothing refused was unpacked
