"""Our extractor vs a reference-style loop, same images, backbone, weights and views.

Reference style (the MLSP authors' code): one view at a time through a Keras multi-output model with
`model.predict`, block maps copied to numpy, pooling (GAP, area 5x5) in numpy. Ours: the stage-1
task (thread-pool decoding ahead of the model, views of one image, or several same-sized images, in
one batch, one `tf.function` for every size, pooling in the graph). Both are timed after the model is
built; the full `iaa extract` command (cluster start and model build included) is timed too.

    python benchmarks/bench_extract.py [--backbone vgg16_hed] --images 24
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import GpuUtilisation, save_json, scratch_dir  # noqa: E402
from features.core.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import numpy as np  # noqa: E402

from features import store_writer as sw  # noqa: E402
from features.augment import get_views, make_views  # noqa: E402
from features.backbones import DEFAULT_BACKBONE, get_backbone  # noqa: E402
from features.extractor import preprocess  # noqa: E402
from features.images import decode_image  # noqa: E402
from features.pooling import WIDE_SIZE, area_average_numpy  # noqa: E402
from features.weights import build_model, parse_weights  # noqa: E402

BIQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "biq2021-dev"
AVA_IMAGES = 255_530  # AVA's photos: the projection of a full extraction at the measured rate


def pick_images(n: int, tmp: Path) -> tuple[Path, list[Path]]:
    """Real photos: BIQ2021 when ../shared has it, else the embedded demo set."""
    if (BIQ / "images").is_dir():
        files = sorted((BIQ / "images").glob("*.jpg"))[:n]
        source = BIQ
    else:
        from pipeline.datasets import load_dataset

        m = load_dataset("demo", Path("data/demo"))
        files = [p for p in m.paths][:: max(1, len(m) // n)][:n]
        source = Path("data/demo")
    folder = tmp / "images"
    folder.mkdir()
    for f in files:
        os.symlink(f.resolve(), folder / f.name)
    return source, sorted(folder.iterdir())


def reference_loop(paths, backbone: str, weights: str, views_name: str) -> float:
    import keras

    spec = get_backbone(backbone)
    base = build_model(spec, parse_weights(weights, spec))
    model = keras.Model(base.input, [base.get_layer(b).output for b in spec.blocks])
    views = get_views(views_name)
    t0 = time.perf_counter()
    for p in paths:
        for view in make_views(decode_image(p), views):
            x = preprocess(view[None].astype(np.float32), spec.preprocessing)
            maps = model.predict(np.asarray(x), verbose=0)
            features = {
                "mlsp_narrow": np.concatenate([m[0].mean(axis=(0, 1)) for m in maps]).astype(np.float16),
                "mlsp_wide": np.concatenate([area_average_numpy(m[0], WIDE_SIZE) for m in maps],
                                            axis=-1).astype(np.float16),
            }
            assert all(np.isfinite(f).all() for f in features.values())
    return time.perf_counter() - t0


def ours(paths, backbone: str, weights: str, views_name: str, tmp: Path, task_size: int, threads: int) -> float:
    """Seconds for the stage-1 tasks of these images (`task_size` images each) on one worker running `threads`
    tasks at once (one task's write and decoding overlap another's forward passes)."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.extraction.worker import ExtractJob, extract_task, get_extractor

    kinds = ("mlsp_narrow", "mlsp_wide")
    spec = get_backbone(backbone)
    job = ExtractJob(spec, parse_weights(weights, spec), kinds, get_views(views_name), None, 32)
    extractor = get_extractor(job)
    shapes = extractor.shapes()
    layout = sw.StoreLayout(n=len(paths), n_views=len(get_views(views_name)), kinds=shapes, task_size=task_size)
    zpath = tmp / f"ours_{threads}.zarr"
    sw.create_zarr(zpath, layout, {"kinds": {k: {} for k in kinds}}, [p.name for p in paths],
                   ["test"] * len(paths), [str(p) for p in paths], np.zeros(len(paths), np.float32), None)
    starts = range(0, len(paths), task_size)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(lambda s: extract_task(str(zpath), job, s, [str(p) for p in paths[s:s + task_size]]),
                                starts))
    elapsed = time.perf_counter() - t0
    assert sum(r["done"] for r in results) == len(paths), results
    return elapsed


def full_command(backbone: str, weights: str, views_name: str, tmp: Path) -> dict:
    from pipeline.extraction.extract import ExtractConfig, run_extract

    folder = tmp / "cmd"
    folder.mkdir()
    for p in sorted((tmp / "images").iterdir()):
        os.symlink(p.resolve(), folder / p.name)
    t0 = time.perf_counter()
    res = run_extract(ExtractConfig(dataset="folder", data_dir=str(folder), store=str(tmp / "cmd.zarr"),
                                    backbone=backbone, weights=weights, views=views_name,
                                    features="mlsp_narrow,mlsp_wide"), log=lambda m: None)
    return {"wall_s": time.perf_counter() - t0, "images_per_s": res.images_per_second}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--views", default="crop_flip")
    ap.add_argument("--features", default="mlsp_narrow,mlsp_wide", help="(the comparison uses narrow+wide)")
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--task-size", type=int, default=8, help="images per stage-1 task (one shard)")
    ap.add_argument("--task-threads", default="1,2", help="tasks one worker runs at once, each timed "
                    "(the local cluster runs TASK_THREADS)")
    ap.add_argument("--skip-command", action="store_true", help="do not time the full `iaa extract` run")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    weights = args.weights or get_backbone(args.backbone).default_weights
    with scratch_dir("bench-extract-") as tmp:
        source, paths = pick_images(args.images, tmp)
        n = len(paths)
        sizes = {decode_image(p).shape[:2] for p in paths}
        print(f"{n} images from {source} ({len(sizes)} distinct sizes), {args.backbone} [{weights}], "
              f"views {args.views}, kinds mlsp_narrow+mlsp_wide")
        by_threads = {}
        for threads in [int(t) for t in args.task_threads.split(",")]:
            with GpuUtilisation() as gpu:
                seconds = ours(paths, args.backbone, weights, args.views, tmp, args.task_size, threads)
            by_threads[threads] = (seconds, gpu.summary())
        best = min(by_threads, key=lambda t: by_threads[t][0])
        t_ours, gpu_ours = by_threads[best]
        with GpuUtilisation() as gpu_ref:
            t_ref = reference_loop(paths, args.backbone, weights, args.views)
        out = {"images": n, "backbone": args.backbone, "weights": weights, "views": args.views,
               "ours_images_per_s": n / t_ours, "reference_images_per_s": n / t_ref, "task_size": args.task_size,
               "ours_images_per_s_by_task_threads": {t: n / v[0] for t, v in by_threads.items()},
               "task_threads": best, "speedup": t_ref / t_ours, "gpu_ours": gpu_ours,
               "gpu_reference": gpu_ref.summary(),
               "ava_projection_h": AVA_IMAGES / (n / t_ours) / 3600}
        if not args.skip_command:
            out["iaa_extract"] = full_command(args.backbone, weights, args.views, tmp)
        for threads, (t, _) in by_threads.items():
            print(f"ours, {threads} task thread(s), {args.task_size} images per task: {n / t:.3f} images/s ({t:.1f} s)")
        print(f"ours:      {out['ours_images_per_s']:.3f} images/s ({t_ours:.1f} s, {best} task thread(s))")
        print(f"reference: {out['reference_images_per_s']:.3f} images/s ({t_ref:.1f} s)")
        print(f"ratio:     {out['speedup']:.2f}x")
        for name in ("gpu_ours", "gpu_reference"):
            g = out[name]
            print(f"{name}: " + ("no GPU (nvidia-smi absent)" if g is None else
                                 f"utilisation mean {g['gpu_util_mean_pct']:.0f} %, max {g['gpu_util_max_pct']:.0f} %, "
                                 f"memory max {g['gpu_mem_max_mib']:.0f} MiB"))
        print(f"AVA ({AVA_IMAGES:,} photos, views {args.views}) at our rate: {out['ava_projection_h']:.1f} h")
        if "iaa_extract" in out:
            c = out["iaa_extract"]
            print(f"iaa extract (local cluster, start + model build included): {c['wall_s']:.1f} s wall")
        save_json(args.json, out)


if __name__ == "__main__":
    main()
