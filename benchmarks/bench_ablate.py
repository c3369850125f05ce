"""Many heads in one pass vs one after another, on a synthetic IRNv2-narrow-shaped store.

Two grids of K=4 Keras heads, each trained for `--epochs` epochs from the store (streaming, no RAM
cache) three ways: together (each batch read once and fed to every head), one after another, and the
first head alone. Prints wall seconds (store opening, training, validation prediction and reports)
and training-pass seconds (the epochs only) of each, and the seconds of one epoch of reading alone
(the loader's share of every pass).

* `paper`: single3fc, single1fc, multi3fc, dist_emd. single3fc and dist_emd hold a 16,928 x 2,048 first
  layer and multi3fc one as wide as each block, so on a CPU the matrix products, not the loader, bound
  the time.
* `light`: four single1fc heads (e.g. four seeds or learning rates of a linear probe): the loader
  bounds the time, which is where reading each batch once pays (and what a GPU makes of every grid).

    python benchmarks/bench_ablate.py --n 20000
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import save_json, scratch_dir  # noqa: E402
from features.core.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import C, build_store  # noqa: E402
from features.loader import FeatureReader, make_dataset, train_plan  # noqa: E402
from features.store import FeatureStore  # noqa: E402
from pipeline.training.train import TrainConfig, run_heads  # noqa: E402

GRIDS = {"paper": ["single3fc", "single1fc", "multi3fc", "dist_emd"], "light": ["single1fc"] * 4}


def _timed(cfg, heads, dirs, joint=True):
    t0 = time.perf_counter()
    results = run_heads(cfg, heads, dirs, lambda m: None, joint=joint)
    wall = time.perf_counter() - t0
    # joint heads share one training pass (the same seconds); separate runs add up
    train = results[0].seconds if joint else sum(r.seconds for r in results)
    return {"wall_s": round(wall, 1), "train_s": round(train, 1)}


def _read_only_epoch(cfg: TrainConfig) -> float:
    """Seconds to stream one training epoch's batches without a model."""
    with FeatureStore(cfg.store) as fs:
        rows = np.flatnonzero(fs.split == "train")
        reader = FeatureReader(fs, "mlsp_narrow", rows, cfg.cache)
        order, views = train_plan(len(rows), reader.n_views, cfg.seed, 0)
        seconds = []
        for _ in range(2):  # the first pass also pays TensorFlow's and the reader's start-up
            t0 = time.perf_counter()
            for _ in make_dataset(reader, order, views, np.zeros((len(rows), 1), np.float32), cfg.batch_size,
                                  cfg.parallel_reads):
                pass
            seconds.append(time.perf_counter() - t0)
        return round(min(seconds), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="samples in the synthetic store (8 views each)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--grids", default="paper,light", help=f"comma-separated, of {', '.join(GRIDS)}")
    ap.add_argument("--json")
    args = ap.parse_args()
    grids = args.grids.split(",")
    unknown = sorted(set(grids) - set(GRIDS))
    if unknown:
        ap.error(f"unknown grid(s) {unknown}; expected some of {sorted(GRIDS)}")
    with scratch_dir("bench-ablate-") as root:
        store = root / "narrow.zarr"
        build_store(store, args.n, 8, (C,), "mlsp_narrow", hist_bins=10, val_fraction=0.1)
        # one recipe for every head (the reference's), so that the grid trains as one group: heads whose
        # recipes differ (single1fc's own normalises its input) train in groups of their own
        cfg = TrainConfig(store=str(store), head="single1fc", lr_stages=[1e-4], max_epochs=args.epochs,
                          patience=args.epochs, cache="none", input_norm="none", l2=0.0, early_stop="loss",
                          batch_size=128, weight_decay=0.0)
        out = {"store": f"{args.n} x 8 views x {C} float16 ({args.n * 8 * C * 2 / 1e9:.1f} GB), streamed",
               "epochs": args.epochs}
        out["read_only_epoch_s"] = _read_only_epoch(cfg)
        print(json.dumps(out, indent=2), flush=True)
        for grid in grids:
            heads = GRIDS[grid]
            dirs = lambda tag: [root / f"{grid}_{tag}_{i}" for i in range(len(heads))]  # noqa: E731
            res = {"heads": heads,
                   "one_head": _timed(cfg, heads[:1], dirs("one")[:1]),
                   "together": _timed(cfg, heads, dirs("joint")),
                   "one_after_another": _timed(cfg, heads, dirs("seq"), joint=False)}
            for key in ("wall_s", "train_s"):
                res[f"together_over_one_{key[:-2]}"] = round(res["together"][key] / res["one_head"][key], 2)
                res[f"together_over_one_after_another_{key[:-2]}"] = round(
                    res["together"][key] / res["one_after_another"][key], 2)
            out[grid] = res
            print(json.dumps({grid: res}, indent=2), flush=True)
        save_json(args.json, out)


if __name__ == "__main__":
    main()
