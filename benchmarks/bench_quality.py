"""Real human judgement: BIQ2021 (../shared/data/biq2021-dev, 2,000 photos) with the offline backbone.

Extracts vgg16_hed MLSP features (narrow + wide) with 8 crop/flip views and with none (resumable
stores under stores/), trains heads on each, and prints test SRCC/PLCC per head, feature kind and
view set. Skips cleanly when the folder is absent.

    python benchmarks/bench_quality.py [--views crop_flip,none] [--max-side N]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from features.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

BIQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "biq2021-dev"
HEADS = {"mlsp_narrow": ["single1fc", "single3fc", "ridge", "svr", "svm", "rf"], "mlsp_wide": ["pool3fc"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--views", default="none,crop_flip")
    ap.add_argument("--max-side", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", default="runs/bench_quality")
    args = ap.parse_args()
    if not BIQ.is_dir():
        print(f"skipped: {BIQ} is not here (BIQ2021 is read from ../shared/data, never copied)")
        return
    from pipeline.extract import ExtractConfig, run_extract
    from pipeline.train import TrainConfig, run_heads

    table = []
    for views in args.views.split(","):
        store = f"stores/biq2021_vgg16_hed_{views}{'_' + str(args.max_side) if args.max_side else ''}.zarr"
        res = run_extract(ExtractConfig(dataset="folder", data_dir=str(BIQ), store=store, backbone="vgg16_hed",
                                        views=views, features="mlsp_narrow,mlsp_wide", max_side=args.max_side))
        print(f"{store}: {res.counts} ({res.images_per_second:.2f} images/s this run)", flush=True)
        for kind, heads in HEADS.items():
            cfg = TrainConfig(store=store, head=heads[0], kind=kind, batch_size=args.batch_size)
            dirs = [Path(args.out) / f"{views}_{h}" for h in heads]
            for h, r in zip(heads, run_heads(cfg, heads, dirs, log=lambda m: print(m, flush=True))):
                t = r.metrics.get("test", {})
                table.append({"views": views, "kind": kind, "head": h, "test_srcc": t.get("srcc"),
                              "test_plcc": t.get("plcc"), "srcc_ci95": t.get("srcc_ci95"),
                              "val_srcc": r.metrics.get("val", {}).get("srcc"), "seconds": r.seconds})
    lines = ["| views | kind | head | test SRCC [95% CI] | test PLCC | val SRCC |", "|---|---|---|---|---|---|"]
    for r in table:
        ci = r["srcc_ci95"] or [float("nan")] * 2
        lines.append(f"| {r['views']} | {r['kind']} | {r['head']} | {r['test_srcc']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}] "
                     f"| {r['test_plcc']:.3f} | {r['val_srcc']:.3f} |")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "table.md").write_text("\n".join(lines) + "\n")
    (Path(args.out) / "table.json").write_text(json.dumps(table, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
