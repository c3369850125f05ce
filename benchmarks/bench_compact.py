"""Compact wide stores: bytes, read speed and what lossy codes cost a head, on real stored features.

Reads `features/mlsp_wide` of a store (default: BIQ2021 dev's vgg16_hed store with views `none`, made by
`make bench-quality`), writes it again with each codec into a scratch Zarr array with the store's own
layout (one chunk per view of one image, shards of a task's images), and reports bytes on disk (× the fp16
original), write and random-read speed, and the reconstruction error. Lossless: zstd, and Blosc-zstd /
Blosc-lz4 with bit shuffling over the 2-byte values. Lossy (then zstd): per-channel uint8 of the value, and
per-channel uint8 of log1p(value) (ReLU features span orders of magnitude), with the per-channel maxima
from the training split. For the lossy codes it then trains `ridge` and `single3fc` (3 seeds) on the
narrow vectors derived from the decoded wide features (the 5x5 mean) against the same from the original,
and prints the test SRCC change.

    python benchmarks/bench_compact.py [--store stores/biq2021_vgg16_hed_none.zarr] [--seeds 3]

The lossy codes take non-negative (ReLU) features, so the default stays a `vgg16_hed` store (`make
bench-quality BENCH_QUALITY_ARGS="--backbone vgg16_hed --views none"` makes it); EfficientNet-Lite's block
outputs are signed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from features.core.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

READ_SAMPLES = 256


def lossless_codecs():
    from zarr.codecs import BloscCodec, ZstdCodec

    return {"fp16 raw": None, "zstd-3": [ZstdCodec(level=3)],
            "blosc-zstd-3 bitshuffle": [BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle", typesize=2)],
            "blosc-lz4 bitshuffle": [BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=2)]}


def quantise(x: np.ndarray, top: np.ndarray, log: bool) -> np.ndarray:
    """Per-channel uint8 codes of non-negative features (of log1p(x) with `log`), `top` the channel maxima."""
    v = np.log1p(np.maximum(x, 0)) if log else np.maximum(x, 0)
    return np.clip(np.rint(v / np.maximum(top, 1e-12) * 255), 0, 255).astype(np.uint8)


def dequantise(q: np.ndarray, top: np.ndarray, log: bool) -> np.ndarray:
    v = q.astype(np.float32) / 255 * top
    return np.expm1(v) if log else v


def write_and_read(values: np.ndarray, compressors, task: int, scratch: Path) -> dict:
    import zarr

    path = scratch / "a.zarr"
    shutil.rmtree(path, ignore_errors=True)
    shape = values.shape
    arr = zarr.create_array(str(path), shape=shape, dtype=values.dtype, chunks=(1, 1) + shape[2:],
                            shards=(task, shape[1]) + shape[2:], compressors=compressors,
                            fill_value=0 if values.dtype == np.uint8 else np.nan)
    t0 = time.perf_counter()
    for s in range(0, shape[0], task):
        arr[s:s + task] = values[s:s + task]
    write_s = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    rows = np.random.default_rng(0).integers(0, shape[0], READ_SAMPLES)
    arr = zarr.open_array(str(path), mode="r")
    t0 = time.perf_counter()
    for r in rows:
        arr[int(r), 0]
    read_s = time.perf_counter() - t0
    return {"bytes": size, "write_mb_s": values.nbytes / 1e6 / write_s, "reads_per_s": READ_SAMPLES / read_s}


def head_srcc(narrow: np.ndarray, fs, head: str, seeds: int, scratch: Path) -> list:
    """Test SRCC of `head` trained on these narrow vectors (a synthetic store with the source's labels)."""
    from pipeline.training.train import TrainConfig, run_heads
    from tests.conftest import make_store

    store = make_store(scratch / f"{head}.zarr", {"mlsp_narrow": narrow[:, None]}, fs.mos, fs.split,
                       scale=fs.scale)
    out = []
    for seed in range(seeds if head != "ridge" else 1):
        cfg = TrainConfig(store=str(store), head=head, seed=seed, batch_size=32)
        r = run_heads(cfg, [head], [scratch / f"{head}_run{seed}"], log=lambda m: None)[0]
        out.append(r.metrics["test"]["srcc"])
    shutil.rmtree(store)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="stores/biq2021_vgg16_hed_none.zarr")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="runs/bench_compact.json")
    args = ap.parse_args()
    from features.store import DONE, FeatureStore

    if not Path(args.store).exists():
        print(f"skipped: no store at {args.store} (make bench-quality makes it)")
        return
    scratch = Path(tempfile.mkdtemp(prefix="compact_"))
    with FeatureStore(args.store) as fs:
        wide = np.asarray(fs.features("mlsp_wide")[:])  # (N, V, 5, 5, C) float16
        task, done, train = fs.task_size, fs.status == DONE, fs.split == "train"
        top_lin = wide[train & done].astype(np.float32).max(axis=(0, 1, 2, 3))
        top_log = np.log1p(top_lin)
        rows = []
        for name, codec in lossless_codecs().items():
            rows.append({"codec": name, "lossless": True, **write_and_read(wide, codec, task, scratch)})
            print(json.dumps(rows[-1]), flush=True)
        from zarr.codecs import ZstdCodec

        original = wide.astype(np.float32)
        base_narrow = original.mean(axis=(2, 3))[:, 0]
        results = {"original": {h: head_srcc(base_narrow, fs, h, args.seeds, scratch) for h in ("ridge", "single3fc")}}
        for log in (False, True):
            name = f"uint8 per channel{' of log1p' if log else ''} + zstd-3"
            q = quantise(original, top_log if log else top_lin, log)
            row = {"codec": name, "lossless": False, **write_and_read(q, [ZstdCodec(level=3)], task, scratch)}
            decoded = dequantise(q, top_log if log else top_lin, log)
            ok = np.isfinite(original)
            err = np.abs(decoded[ok] - original[ok])
            row["mean_abs_error_rel_to_mean"] = float(err.mean() / np.abs(original[ok]).mean())
            narrow = decoded.mean(axis=(2, 3))[:, 0]
            narrow[~done] = np.nan
            row["srcc"] = {h: head_srcc(narrow, fs, h, args.seeds, scratch) for h in ("ridge", "single3fc")}
            rows.append(row)
            print(json.dumps(row), flush=True)
    raw = rows[0]["bytes"]
    for r in rows:
        r["ratio"] = r["bytes"] / raw
        line = (f"{r['codec']:38s} {r['ratio']:.3f}x  write {r['write_mb_s']:.0f} MB/s  "
                f"reads {r['reads_per_s']:.0f}/s")
        for h, v in (r.get("srcc") or {}).items():
            delta = np.mean(v) - np.mean(results["original"][h])
            line += f"  {h} SRCC {np.mean(v):.4f} ({delta:+.4f})"
        print(line)
    print("original:", {h: round(float(np.mean(v)), 4) for h, v in results["original"].items()})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "original": results["original"]}, indent=2))
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
