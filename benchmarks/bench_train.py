"""Loader and training speed on synthetic stores shaped like InceptionResNet-v2 MLSP features.

Stores (float16, ReLU-like random values, uncompressed, our chunking): narrow `--narrow-n` samples x
8 views x 16,928 and wide `--wide-n` samples x 2 views x 5 x 5 x 16,928, each as Zarr v3 and HDF5.
Reports loader samples/s (random batches of 128, one random view each) for Zarr (tensorstore),
HDF5 (h5py) and an in-RAM array, the bytes read per single-view read of wide features, training
samples/s of single3fc (narrow) and pool3fc (wide) fed from the store vs from in-RAM arrays, and
peak RSS.

    python benchmarks/bench_train.py --narrow-n 20000 --wide-n 4000 --steps 30
"""
from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import save_json  # noqa: E402
from features.core.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import numpy as np  # noqa: E402

from features import store as st  # noqa: E402
from features import store_writer as sw  # noqa: E402
from features.loader import FeatureReader, make_dataset, train_plan  # noqa: E402
from features.store import FeatureStore  # noqa: E402

C = 16928


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def rchar() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])


def build_store(path: Path, n: int, views: int, shape: tuple, kind: str, hist_bins: int = 0,
                val_fraction: float = 0.0) -> None:
    layout = sw.StoreLayout(n=n, n_views=views, kinds={kind: shape},
                            task_size=sw.StoreLayout.choose_task_size(n, views, {kind: shape}))
    attrs = {"kinds": {kind: {"shape": list(shape)}}, "task_size": layout.task_size,
             "blocks": [{"name": "all", "channels": C, "offset": 0}], "dataset": {"scale": [1, 10]}}
    ids = [f"s{i}" for i in range(n)]
    split = ["train"] * (n - int(val_fraction * n)) + ["val"] * int(val_fraction * n)
    mos = np.random.default_rng(0).uniform(2, 8, n).astype(np.float32)
    hist = np.random.default_rng(3).integers(0, 20, (n, hist_bins)).astype(np.float32) + 1 if hist_bins else None
    sw.create_zarr(path, layout, attrs, ids, split, ids, mos, hist)
    rng = np.random.default_rng(1)
    for start, stop in layout.tasks():
        k = stop - start
        x = np.maximum(rng.standard_normal((k, views) + shape, dtype=np.float32), 0).astype(np.float16)
        sw.write_task(str(path), start, stop, {kind: x}, np.full(k, st.DONE, np.int8), [""] * k,
                      np.zeros(k), np.zeros(k))


def loader_speed(path: Path, kind: str, mode: str, batches: int, batch: int = 128) -> float:
    with FeatureStore(path) as fs:
        n = fs.n
        reader = FeatureReader(fs, kind, np.arange(n), mode)
        rng = np.random.default_rng(0)
        reader.read(rng.integers(0, n, batch), rng.integers(0, reader.n_views, batch))  # warm up
        t0 = time.perf_counter()
        for _ in range(batches):
            reader.read(rng.integers(0, n, batch), rng.integers(0, reader.n_views, batch))
        return batches * batch / (time.perf_counter() - t0)


def pipeline_speed(path: Path, kind: str, batches: int, batch: int = 128, parallel: int = 4) -> float:
    with FeatureStore(path) as fs:
        reader = FeatureReader(fs, kind, np.arange(fs.n), "none")
        order, views = train_plan(fs.n, reader.n_views, 0, 0)
        m = min(len(order), batches * batch)
        it = iter(make_dataset(reader, order[:m], views[:m], fs.mos[order[:m]], batch, parallel))
        next(it)  # pipeline start-up is not throughput
        t0 = time.perf_counter()
        seen = sum(int(x.shape[0]) for x, _ in it)
        return seen / (time.perf_counter() - t0)


def bytes_per_view_read(path: Path, kind: str, reads: int = 200) -> float:
    with FeatureStore(path) as fs:
        reader = FeatureReader(fs, kind, np.arange(fs.n), "none")
        rng = np.random.default_rng(2)
        before = rchar()
        for _ in range(reads):
            reader.read(rng.integers(0, fs.n, 1), rng.integers(0, reader.n_views, 1))
        return (rchar() - before) / (reads * reader.sample_bytes)


def train_speed(path: Path, kind: str, head: str, steps: int, batch: int) -> dict:
    import keras
    import tensorflow as tf

    from heads import create_head

    with FeatureStore(path) as fs:
        n = min(fs.n, steps * batch)
        reader = FeatureReader(fs, kind, np.arange(fs.n), "none")
        order, views = train_plan(fs.n, reader.n_views, 0, 0)
        order, views = order[:n], views[:n]
        y = fs.mos[order]
        shape = reader.sample_shape
        ram_x = reader.read(order, views)  # the same samples, held in RAM as float16
        results = {}
        for source in ("ram", "store"):
            keras.utils.set_random_seed(0)
            model = create_head(head, input_shape=shape)
            model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
            if source == "ram":
                ds = tf.data.Dataset.from_tensor_slices((ram_x, y[:, None])).batch(batch)
                ds = ds.map(lambda a, b: (tf.cast(a, tf.float32), b)).prefetch(2)
            else:
                ds = make_dataset(reader, order, views, y, batch, parallel_reads=4)
            model.fit(ds.take(2), epochs=1, verbose=0, shuffle=False)  # trace and warm up
            t0 = time.perf_counter()
            model.fit(ds, epochs=1, verbose=0, shuffle=False)
            results[f"{source}_samples_per_s"] = n / (time.perf_counter() - t0)
        results["store_vs_ram"] = results["store_samples_per_s"] / results["ram_samples_per_s"]
        results["samples"] = n
        results["epoch_s_per_100k_samples_from_store"] = 1e5 / results["store_samples_per_s"]
        return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--narrow-n", type=int, default=20000)
    ap.add_argument("--wide-n", type=int, default=4000)
    ap.add_argument("--loader-batches", type=int, default=40)
    ap.add_argument("--steps-narrow", type=int, default=40, help="training batches of 128 (single3fc)")
    ap.add_argument("--steps-wide", type=int, default=6, help="training batches of 32 (pool3fc)")
    ap.add_argument("--dir", help="where to write the stores (default: a temporary folder)")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    root = Path(args.dir or tempfile.mkdtemp(prefix="bench-train-"))
    root.mkdir(parents=True, exist_ok=True)
    out: dict = {"narrow_store": f"{args.narrow_n} x 8 views x {C} float16 "
                                 f"({args.narrow_n * 8 * C * 2 / 1e9:.1f} GB)",
                 "wide_store": f"{args.wide_n} x 2 views x 5x5x{C} float16 "
                               f"({args.wide_n * 2 * 25 * C * 2 / 1e9:.1f} GB)"}
    try:
        for name, n, views, shape, kind in (("narrow", args.narrow_n, 8, (C,), "mlsp_narrow"),
                                            ("wide", args.wide_n, 2, (5, 5, C), "mlsp_wide")):
            z, h = root / f"{name}.zarr", root / f"{name}.h5"
            t0 = time.perf_counter()
            build_store(z, n, views, shape, kind)
            sw.finalize_hdf5(z, h)
            print(f"{name}: wrote {out[name + '_store']} as zarr + hdf5 in {time.perf_counter() - t0:.0f} s",
                  flush=True)
            batches = args.loader_batches if name == "narrow" else max(4, args.loader_batches // 8)
            res = {
                "loader_zarr_tensorstore": loader_speed(z, kind, "none", batches),
                "loader_hdf5": loader_speed(h, kind, "none", batches),
                "tf_data_zarr_4_parallel_reads": pipeline_speed(z, kind, batches),
            }
            if name == "narrow" or n * views * np.prod(shape) * 2 < 8e9:
                res["loader_ram"] = loader_speed(z, kind, "ram", batches)
            res["bytes_read_per_view_over_view_bytes"] = bytes_per_view_read(z, kind)
            head, steps, batch = ("single3fc", args.steps_narrow, 128) if name == "narrow" else \
                ("pool3fc", args.steps_wide, 32)
            res[f"train_{head}"] = train_speed(z, kind, head, steps, batch)
            res["peak_rss_gb"] = peak_rss_gb()
            out[name] = res
            print(json.dumps({name: res}, indent=2), flush=True)
        save_json(args.json, out)
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
