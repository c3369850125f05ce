"""The command line: one-line errors with exit status 2 for every command, help from the registries,
and a start-up free of TensorFlow's native log lines."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import COMMANDS, main
from tests.conftest import linear_store

ROOT = Path(__file__).resolve().parents[1]
NOISE = ("I0000", "E0000", "W0000", "absl", "oneDNN", "cuda", "cuInit")


def _bad_invocations(tmp_path):
    missing = str(tmp_path / "missing.zarr")
    not_a_store = tmp_path / "plain"
    not_a_store.mkdir()
    return {
        "extract": ["extract", "--dataset", "folder", "--data-dir", str(tmp_path / "nowhere"), "--store", missing],
        "train": ["train", "--store", str(not_a_store), "--head", "single1fc"],
        "evaluate": ["evaluate", str(not_a_store)],
        "ablate": ["ablate", "--store", missing, "--heads", "single1fc"],
        "describe": ["describe", "vgg61"],
        "describe-head": ["describe-head", "single3fc", "--input-shape", "5,x"],
        "store-info": ["store-info", missing],
        "score": ["score", str(not_a_store), str(tmp_path)],
        "video": ["video", str(not_a_store), str(tmp_path / "clip.mp4")],
        "best-shot": ["best-shot", str(not_a_store), str(tmp_path)],
        "evaluate-on": ["evaluate-on", str(not_a_store), str(not_a_store)],
        "explain": ["explain", str(not_a_store), str(tmp_path / "x.jpg")],
        "export": ["export", str(not_a_store), "--out", str(tmp_path / "m")],
        "serve": ["serve", str(not_a_store)],
        "fuse": ["fuse", str(not_a_store), str(tmp_path)],
        "resolution-baseline": ["resolution-baseline", "--store", str(not_a_store)],
        "compact": ["compact", missing, "--compress", "zstd"],
        "pack": ["pack", str(not_a_store), "--out", str(tmp_path / "m.iaa")],
        "convert": ["convert", str(not_a_store), "--trust"],
        "describe-run": ["describe-run", str(tmp_path / "missing.iaa")],
        "personalize": ["personalize", str(not_a_store), str(tmp_path), "--answers", str(tmp_path / "no.csv"),
                        "--out", str(tmp_path / "me")],
    }


def test_every_command_answers_bad_input_with_one_line_and_exit_2(tmp_path, capsys):
    cases = _bad_invocations(tmp_path)
    assert set(cases) == set(COMMANDS), "a new command needs a bad-input case here"
    for command, argv in cases.items():
        assert main(argv) == 2, command
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"iaa {command}: error: ") and "\n" not in err, (command, err)
        assert "Traceback" not in err


@pytest.mark.parametrize("argv,expected", [
    (["evaluate", "{tmp}"], "not a run directory"),
    (["store-info", "{tmp}/missing.zarr"], "no initialised Zarr feature store"),
    (["train", "--store", "{tmp}/missing.zarr", "--head", "single1fc"], "no initialised Zarr feature store"),
    (["train", "--store", "{store}", "--head", "single3cf"], "Did you mean 'single3fc'"),
    (["extract", "--dataset", "avaa", "--store", "{tmp}/x.zarr"], "Did you mean 'ava'"),
    (["train", "--store", "{store}", "--head", "single1fc", "--lr-stages", "1e-3,fast"], "comma-separated numbers"),
    (["train", "--store", "{store}", "--head", "triplet", "--seeds", "2"], "train it with one seed"),
    (["ablate", "--store", "{store}", "--heads", "ridge", "--ensemble"], "give --seeds 2 or more"),
])
def test_error_messages_say_what_to_do(tmp_path, capsys, argv, expected):
    store = linear_store(tmp_path / "s.zarr", n=40, views=1, dim=4)
    argv = [a.format(tmp=tmp_path, store=store) for a in argv]
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_a_damaged_store_is_reported_as_damaged_not_missing(tmp_path, capsys):
    store = linear_store(tmp_path / "s.zarr", n=20, views=1, dim=4)
    (store / "zarr.json").write_text("{not json")
    assert main(["store-info", str(store)]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "no initialised" not in err
    h5 = tmp_path / "s.h5"
    h5.write_bytes(b"not an hdf5 file")
    assert main(["store-info", str(h5)]) == 2
    assert "damaged or not an HDF5 file" in capsys.readouterr().err


def test_help_lists_the_registered_names(capsys):
    from features.backbones import BACKBONES
    from heads import HEADS
    from pipeline.datasets import DATASETS

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    train_help = " ".join(capsys.readouterr().out.split())
    assert all(name in train_help for name in HEADS.names())
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    extract_help = " ".join(capsys.readouterr().out.split())
    assert all(name in extract_help for name in BACKBONES.names() + DATASETS.names())


def _run(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "IAA_VERBOSE")}
    env.update(PYTHONPATH=str(ROOT), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)


def test_start_up_prints_no_tensorflow_noise():
    quiet = _run("describe-head", "single1fc", "--input-shape", "16")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == "", quiet.stderr
    assert quiet.stdout.splitlines()[0].split()[0] == "features"  # the first line a person sees is ours
    loud = _run("--verbose", "describe-head", "single1fc", "--input-shape", "16")
    assert loud.returncode == 0 and loud.stdout == quiet.stdout
    assert any(word in loud.stderr for word in NOISE), "--verbose should let TensorFlow's lines through"


def test_train_seeds_writes_an_ensemble_run(tmp_path, capsys):
    store = linear_store(tmp_path / "s.zarr", n=60, views=1, dim=4)
    run = tmp_path / "ens"
    assert main(["train", "--store", str(store), "--head", "ridge", "--seeds", "2", "--seed", "3",
                 "--run-dir", str(run)]) == 0
    assert sorted(p.name for p in (run / "members").iterdir()) == ["seed3", "seed4"]
    assert (run / "metrics.json").is_file() and f"run directory: {run}" in capsys.readouterr().out
