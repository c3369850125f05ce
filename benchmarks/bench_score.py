"""`iaa score` vs `iaa extract` on the same photos, backbone, weights, views and kinds.

Both are timed as a user runs them (model build included; `iaa extract` also starts its local cluster).
Scoring runs the same decode/views/backbone/pooling code as extraction, plus the head, so its rate
should be within about 10 % of extraction's. Photos: the first N of BIQ2021 (../shared/data) when
present, else the demo set. The run: a run directory or an ablation directory (its best run); the
default is the demo's (`make demo` first).

    python benchmarks/bench_score.py --run runs/demo_efficientnet_lite0 --images 50
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import save_json, scratch_dir  # noqa: E402
from features.core.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

from bench_extract import pick_images  # noqa: E402

from evaluation.rundir import RunDir  # noqa: E402
from pipeline.extraction.extract import ExtractConfig, run_extract  # noqa: E402
from pipeline.scoring.predictor import extraction_record  # noqa: E402
from pipeline.scoring.score import resolve_run_dir, run_score  # noqa: E402


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def time_extract(run_dir: str, folder: Path, tmp: Path) -> dict:
    settings = extraction_record(RunDir.open(run_dir))["settings"]
    t0 = time.perf_counter()
    res = run_extract(ExtractConfig(dataset="folder", data_dir=str(folder), store=str(tmp / "bench.zarr"),
                                    backbone=settings["backbone"], weights=settings["weights"],
                                    features=",".join(settings["features"]), views=settings["views"],
                                    max_side=settings["max_side"]), log=lambda m: None)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "photos_per_s": res.processed / wall, "kinds": settings["features"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/demo_efficientnet_lite0", help="run or ablation directory")
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    run_dir, note = resolve_run_dir(args.run)
    if not Path(run_dir, "config.json").is_file():
        sys.exit(f"no run at {args.run}: run `make demo` first, or give --run")
    with scratch_dir("bench-score-") as tmp:
        source, paths = pick_images(args.images, tmp)
        folder = tmp / "images"
        print(f"{len(paths)} photos from {source}; run {run_dir}" + (f" ({note})" if note else ""))
        rss0 = peak_rss_gb()
        t0 = time.perf_counter()
        scored = run_score(run_dir, [str(folder)], str(tmp / "scores"), log=lambda m: None)
        score = {"wall_s": time.perf_counter() - t0, "loop_s": scored.seconds,
                 "photos_per_s": len(paths) / (time.perf_counter() - t0), "failed": len(scored.failures),
                 "peak_rss_gb": peak_rss_gb(), "rss_before_gb": rss0}
        extract = time_extract(run_dir, folder, tmp)
        out = {"photos": len(paths), "run": run_dir, "score": score, "extract": extract,
               "score_vs_extract": score["photos_per_s"] / extract["photos_per_s"]}
        print(f"iaa score:   {score['photos_per_s']:.3f} photos/s ({score['wall_s']:.1f} s, model build included; "
              f"peak RSS {score['peak_rss_gb']:.2f} GB)")
        print(f"iaa extract: {extract['photos_per_s']:.3f} photos/s ({extract['wall_s']:.1f} s, cluster start "
              f"and model build included; kinds {', '.join(extract['kinds'])})")
        print(f"score / extract rate: {out['score_vs_extract']:.2f}")
        save_json(args.json, out)


if __name__ == "__main__":
    main()
