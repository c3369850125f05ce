"""`iaa train --blocks`: MLSP's block-subset ablations (Single-1FC (5), figure 7; M18)."""
import json

import numpy as np
import pytest

from evaluation.rundir import RunDir
from features.core.errors import UsageError
from pipeline.training.block_selection import select_blocks
from pipeline.training.train import TrainConfig, run_heads
from tests.conftest import make_store

QUIET = dict(log=lambda m: None)
BLOCKS = [{"name": f"mixed{i}", "channels": 8, "offset": 8 * i} for i in range(3)]


def _three_block_store(path, n=240, seed=0):
    """The score is a function of the last block only; the first two are noise."""
    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(size=(n, 2, 24))).astype(np.float32)
    mos = 5.5 + 1.5 * np.tanh(x[:, :, 16:].mean(axis=1) @ rng.normal(size=8))
    split = np.array(["train"] * (n * 2 // 3) + ["val"] * (n // 8) + ["test"] * (n - n * 2 // 3 - n // 8), dtype=object)
    wide = np.repeat(np.repeat(x[:, :, None, None, :], 2, axis=2), 2, axis=3)
    return make_store(path, {"mlsp_narrow": x, "mlsp_wide": wide}, mos, split, blocks=BLOCKS)


def test_selections_by_count_and_by_name():
    blocks = [(b["name"], b["offset"], b["offset"] + 8) for b in BLOCKS]
    last = select_blocks("last:2", blocks, "mlsp_narrow")
    assert [b[0] for b in last.blocks] == ["mixed1", "mixed2"] and last.channels.tolist() == list(range(8, 24))
    assert last.renumbered == [("mixed1", 0, 8), ("mixed2", 8, 16)]
    assert select_blocks("mixed2,mixed0", blocks, "k").channels.tolist() == list(range(8)) + list(range(16, 24))
    assert select_blocks(None, blocks, "k") is None
    with pytest.raises(UsageError, match="Did you mean 'mixed2'"):
        select_blocks("mixd2", blocks, "mlsp_narrow")
    with pytest.raises(UsageError, match="1..3"):
        select_blocks("last:4", blocks, "mlsp_narrow")
    with pytest.raises(UsageError, match="kind gmp has none"):
        select_blocks("last:1", [], "gmp")


def test_heads_on_a_block_subset_save_models_that_take_the_whole_kind(tmp_path):
    from pipeline.training.ensemble import load_run_model
    from pipeline.training.fitting import TRAINERS, predict_store_rows
    from features.store import FeatureStore
    from heads import get_head

    store = _three_block_store(tmp_path / "s.zarr")
    heads = ["single3fc", "ridge"]
    out = {}
    for selection in ("last:1", "first:1"):
        cfg = TrainConfig(store=str(store), head="ridge", batch_size=32, lr_stages=[1e-3], max_epochs=3,
                          blocks=selection)
        out[selection] = run_heads(cfg, heads, [tmp_path / selection / h for h in heads], **QUIET)
    ridge_last, ridge_first = out["last:1"][1].metrics["test"]["srcc"], out["first:1"][1].metrics["test"]["srcc"]
    assert ridge_last > 0.8 and ridge_last > ridge_first + 0.4  # the signal is in the last block only
    for h in heads:
        run = RunDir.open(tmp_path / "last:1" / h)
        assert run.config["block_selection"] == {"selection": "last:1", "names": ["mixed2"], "channels": 8}
        with FeatureStore(store) as fs:  # the saved model reads the whole stored kind
            rows = np.flatnonzero(np.asarray(fs.split) == "test")
            views = predict_store_rows(TRAINERS.get(get_head(h).trainer), load_run_model(run), fs, "mlsp_narrow",
                                       rows)
        np.testing.assert_allclose(views.mean(axis=1)[:, 0], run.read_predictions("test")["pred"], rtol=1e-3,
                                   atol=1e-3)


def test_multi3fc_sees_the_selected_blocks_and_the_cli_takes_blocks(tmp_path):
    from pipeline.cli import main

    store = _three_block_store(tmp_path / "s.zarr", n=120)
    run = tmp_path / "multi"
    assert main(["train", "--store", str(store), "--head", "multi3fc", "--blocks", "mixed0,mixed2", "--max-epochs",
                 "1", "--lr-stages", "1e-3", "--run-dir", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["block_selection"]["names"] == ["mixed0", "mixed2"]
    assert config["train"]["blocks"] == "mixed0,mixed2"
    assert main(["train", "--store", str(store), "--head", "pool3fc", "--blocks", "last:1", "--max-epochs", "1",
                 "--lr-stages", "1e-3", "--run-dir", str(tmp_path / "wide")]) == 0
    assert main(["train", "--store", str(store), "--head", "ridge", "--blocks", "last:7",
                 "--run-dir", str(tmp_path / "bad")]) == 2


def test_resolution_baseline_measures_what_size_alone_predicts(tmp_path, capsys):
    """M22: Hosu et al. 2019, section 4.3 (SRCC of pixels and MOS; an 11-9-7-2 net on width and height)."""
    import zarr

    from pipeline.cli import main
    from pipeline.training.resolution_baseline import resolution_baseline

    store = _three_block_store(tmp_path / "s.zarr", n=240)
    root = zarr.open_group(str(store), mode="r+")
    rng = np.random.default_rng(1)
    mos = rng.uniform(2, 9, 240).astype(np.float32)
    root["labels/mos"][:] = mos
    width = np.where(mos > 5.0, 800, 400) + rng.integers(0, 40, len(mos))  # better photos are larger
    root["width"][:] = width
    root["height"][:] = rng.integers(300, 600, len(mos))
    result = resolution_baseline(str(store), str(tmp_path / "out"), log=lambda m: None)
    assert result["pixels_srcc"]["test"] > 0.5 and result["accuracy"] > 0.9 > result["majority_accuracy"]
    assert "| SRCC(pixels, MOS), test |" in (tmp_path / "out" / "resolution.md").read_text()
    assert main(["resolution-baseline", "--store", str(store), "--out", str(tmp_path / "cli")]) == 0
    assert "size-only classifier" in capsys.readouterr().out
