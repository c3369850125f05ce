"""Seeded runs reproduce on CPU: the same predictions in this process, again, and in a fresh one."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from evaluation.rundir import RunDir
from pipeline.training.train import TrainConfig, run_heads
from tests.conftest import linear_store

ROOT = Path(__file__).resolve().parents[1]
HEADS = ["single3fc", "pool3fc", "dist_emd"]


def _train(store, out, seed=0):
    cfg = TrainConfig(store=str(store), head=HEADS[0], seed=seed, batch_size=16, max_epochs=3, patience=2)
    run_heads(cfg, HEADS, [out / h for h in HEADS], log=lambda m: None)
    return {h: RunDir.open(out / h).read_predictions("test") for h in HEADS}


def test_same_seed_same_predictions_in_process_and_in_a_fresh_process(tmp_path):
    store = linear_store(tmp_path / "s.zarr", n=120, views=2, dim=12, wide=True, hist_bins=10)
    first = _train(store, tmp_path / "a")
    again = _train(store, tmp_path / "b")
    for h in HEADS:
        np.testing.assert_array_equal(first[h]["pred"], again[h]["pred"], err_msg=h)
    other_seed = _train(store, tmp_path / "c", seed=1)
    assert not np.array_equal(first["single3fc"]["pred"], other_seed["single3fc"]["pred"])

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    fresh = subprocess.run([sys.executable, "-m", "pipeline", "ablate", "--store", str(store), "--heads",
                            ",".join(HEADS), "--out", str(tmp_path / "d"), "--batch-size", "16",
                            "--max-epochs", "3", "--patience", "2"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    for h in HEADS:
        np.testing.assert_array_equal(first[h]["pred"], RunDir.open(tmp_path / "d" / f"{h}_seed0")
                                      .read_predictions("test")["pred"], err_msg=h)
