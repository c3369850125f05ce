"""Many heads in one pass vs one after another, on a synthetic IRNv2-narrow-shaped store.

Trains four narrow heads (single1fc, single3fc, multi3fc, dist_emd) for `--epochs` epochs from the store
(streaming, no RAM cache) together (each batch read once, fed to every head) and one after another,
and one head (single3fc) alone, and prints the seconds of each.

    python benchmarks/bench_ablate.py --n 20000
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train import C, build_store  # noqa: E402
from pipeline.train import TrainConfig, run_heads  # noqa: E402

HEADS = ["single1fc", "single3fc", "multi3fc", "dist_emd"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="samples in the synthetic store (8 views each)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ablate-"))
    try:
        store = root / "narrow.zarr"
        build_store(store, args.n, 8, (C,), "mlsp_narrow", hist_bins=10, val_fraction=0.1)
        cfg = TrainConfig(store=str(store), head="single3fc", lr_stages=[1e-4], max_epochs=args.epochs,
                          patience=args.epochs, cache="none")
        quiet = lambda m: None  # noqa: E731
        out = {"store": f"{args.n} x 8 views x {C} float16, streamed", "epochs": args.epochs}
        t0 = time.perf_counter()
        run_heads(cfg, ["single3fc"], [root / "one"], quiet)
        out["one_head_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_heads(cfg, HEADS, [root / f"j_{h}" for h in HEADS], quiet)
        out[f"{len(HEADS)}_heads_together_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_heads(cfg, HEADS, [root / f"s_{h}" for h in HEADS], quiet, joint=False)
        out[f"{len(HEADS)}_heads_one_after_another_s"] = time.perf_counter() - t0
        out["together_over_one"] = out[f"{len(HEADS)}_heads_together_s"] / out["one_head_s"]
        print(json.dumps(out, indent=2))
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
