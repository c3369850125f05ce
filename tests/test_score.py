"""Scoring new photos with a trained run: the predictor reproduces the run's stored predictions."""
import csv
import json
import shutil

import numpy as np
import pytest

from conftest import SCORED_HEADS as HEADS
from evaluation.rundir import RunDir
from features.cache import file_key
from pipeline.cli import main
from pipeline.scoring.predictor import Predictor, PredictorError


@pytest.mark.parametrize("head", HEADS)
def test_scoring_a_stored_photo_gives_the_runs_stored_prediction(scored, head):
    run = RunDir.open(scored["runs"][head])
    stored = run.read_predictions("test")
    result = Predictor.from_run(run.path).score_paths(stored["path"])
    assert result.ok.all()
    np.testing.assert_allclose(result.score, stored["pred"], rtol=1e-4, atol=1e-4)
    if head.endswith("_dist"):
        assert result.dist.shape == (len(stored["path"]), 10)
        np.testing.assert_allclose(result.dist, stored["dist"], atol=1e-4)
    else:
        assert result.dist is None


def test_score_command_writes_ranked_csv_and_contact_sheet(scored, tmp_path, capsys):
    photos = tmp_path / "photos"
    shutil.copytree(scored["folder"] / "images", photos / "nested")
    (photos / "broken.jpg").write_bytes(b"not a jpeg at all")
    (photos / "notes.txt").write_text("sidecar")
    out = tmp_path / "out"
    code = main(["score", str(scored["runs"]["pool3fc_dist"]), str(photos), str(tmp_path / "gone.jpg"),
                 "--out", str(out), "--chunk", "5"])
    assert code == 1  # finished, some photos failed
    printed = capsys.readouterr().out
    assert "scored 24 photos, 2 failed" in printed and "skipped 1 files" in printed
    with open(out / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ok = [r for r in rows if r["status"] == "ok"]
    assert [int(r["rank"]) for r in ok] == list(range(1, 25))
    scores = [float(r["score"]) for r in ok]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(float(ok[0][f"p{k}"]) for k in range(1, 11)) - 1) < 1e-4
    failed = {r["path"].rsplit("/", 1)[-1]: r["reason"] for r in rows if r["status"] == "failed"}
    assert "not an image we accept" in failed["broken.jpg"] and failed["gone.jpg"] == "file not found"
    page = (out / "scores.html").read_text()
    assert page.count("data:image/jpeg;base64,") == 24 and page.count("<svg") == 24
    assert "http" not in page.replace("charset", "")  # self-contained: nothing fetched


def test_feature_cache_skips_the_backbone_for_photos_seen_before(scored, tmp_path, monkeypatch):
    from pipeline.scoring import sources as pr

    cache = tmp_path / "cache"
    photos = sorted((scored["folder"] / "images").glob("*.jpg"))[:6]
    first = Predictor.from_run(scored["runs"]["single1fc"], all_kinds=True)
    first.use_cache(cache)
    a = first.score_paths([str(p) for p in photos])
    assert (cache / "mlsp_wide").is_dir()  # every kind of the extraction is kept

    calls = []
    real = pr.compute_features
    monkeypatch.setattr(pr, "compute_features", lambda job, paths, on_done: calls.append(list(paths)) or
                        real(job, paths, on_done))
    other = Predictor.from_run(scored["runs"]["pool3fc_dist"], all_kinds=True)  # another head, same extraction
    other.use_cache(cache)
    copy = tmp_path / "renamed.jpg"
    shutil.copy(photos[0], copy)
    b = other.score_paths([str(copy)] + [str(p) for p in photos[1:]])
    assert calls == [[]]  # no photo went through the backbone
    direct = Predictor.from_run(scored["runs"]["pool3fc_dist"]).score_paths([str(p) for p in photos])
    np.testing.assert_allclose(b.score, direct.score, rtol=1e-5)
    again = Predictor.from_run(scored["runs"]["single1fc"], all_kinds=True)
    again.use_cache(cache)
    np.testing.assert_allclose(again.score_paths([str(p) for p in photos]).score, a.score, rtol=1e-6)
    assert file_key(copy) == file_key(photos[0])


def _copy_run(scored, tmp_path, head="single1fc"):
    run = tmp_path / "run"
    shutil.copytree(scored["runs"][head], run)
    return run, json.loads((run / "config.json").read_text())


def test_a_run_copied_without_its_store_still_scores(scored, tmp_path):
    run, _ = _copy_run(scored, tmp_path)
    store = scored["store"]
    moved = tmp_path / "elsewhere.zarr"
    store.rename(moved)
    try:
        stored = RunDir.open(run).read_predictions("test")
        np.testing.assert_allclose(Predictor.from_run(run).score_paths(stored["path"][:2]).score,
                                   stored["pred"][:2], rtol=1e-4)
    finally:
        moved.rename(store)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["extraction"]["weights"].update(keras_version="2.15.0"), "random weights are made by keras 2.15.0"),
    (lambda c: c["extraction"]["blocks"][0].update(channels=32), "blocks: the run recorded"),
    (lambda c: c["extraction"]["views"].pop(), "views: the run recorded"),
    (lambda c: c["extraction"].update(backbone="synthetic"), "not a registered backbone"),
])
def test_an_extraction_that_cannot_be_reproduced_is_refused(scored, tmp_path, capsys, edit, message):
    run, config = _copy_run(scored, tmp_path)
    edit(config)
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(PredictorError, match=message):
        Predictor.from_run(run)
    assert main(["score", str(run), str(scored["folder"]), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("iaa score: error:") and "Traceback" not in err


def test_bad_run_directories_get_one_line(scored, tmp_path, capsys):
    assert main(["score", str(tmp_path / "nothing"), str(scored["folder"])]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    run, config = _copy_run(scored, tmp_path, "ridge")
    (run / "model.skops").write_bytes(b"changed")
    assert main(["score", str(run), str(scored["folder"])]) == 2
    assert "does not match the sha256" in capsys.readouterr().err
    del config["extraction"]
    config["store"]["path"] = str(tmp_path / "gone.zarr")
    (run / "config.json").write_text(json.dumps(config))
    assert main(["score", str(run), str(scored["folder"])]) == 2
    assert "does not record how its features were extracted" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["score", str(scored["runs"]["ridge"]), str(empty)]) == 2
    assert "no photos to score" in capsys.readouterr().err


def test_a_photo_too_large_for_the_memory_budget_is_listed_not_fatal(scored, tmp_path, capsys):
    photo = str(sorted((scored["folder"] / "images").glob("*.jpg"))[0])
    out = tmp_path / "out"
    assert main(["score", str(scored["runs"]["ridge"]), photo, "--memory-gb", "0.001", "--out", str(out)]) == 1
    with open(out / "scores.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] == "failed" and "too large for memory" in row["reason"] and "--max-side" in row["reason"]
