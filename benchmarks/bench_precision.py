"""Mixed precision (`iaa extract --precision mixed`) against float32: how far the stored float16 features move.

The same photos (BIQ2021 when ../shared/data has it, else the demo set; full resolution), views and
weights through both extractors; per kind: stored values identical, within one float16 step (ULP), the
largest step count, the largest difference relative to the kind's largest value, and seconds per photo.
A CPU runs float16 convolutions in Eigen (float16 accumulation); a GPU's cuDNN accumulates in float32, so
these figures bound what a GPU gives from above.

    python benchmarks/bench_precision.py --backbone vgg16 --weights random:0 --images 4
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import save_json, scratch_dir  # noqa: E402
from bench_extract import pick_images  # noqa: E402
from features.core.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import numpy as np  # noqa: E402

from features.augment import get_views, make_views  # noqa: E402
from features.extractor import Extractor  # noqa: E402
from features.images import decode_image  # noqa: E402


def ulp_steps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many float16 steps apart two float16 arrays are (same sign: ordered bit patterns)."""
    ia = a.astype(np.float16).view(np.int16).astype(np.int32)
    ib = b.astype(np.float16).view(np.int16).astype(np.int32)
    ia = np.where(ia < 0, -32768 - ia, ia)  # sign-magnitude → ordered integers
    ib = np.where(ib < 0, -32768 - ib, ib)
    return np.abs(ia - ib)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="vgg16")
    ap.add_argument("--weights", default="random:0")
    ap.add_argument("--features", default="mlsp_narrow,mlsp_wide,gmp")
    ap.add_argument("--views", default="none")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--json")
    args = ap.parse_args()
    full = Extractor.from_names(args.backbone, args.weights, args.features)
    mixed = Extractor.from_names(args.backbone, args.weights, args.features, precision="mixed")
    out = {"backbone": args.backbone, "weights": args.weights, "views": args.views, "kinds": {}}
    with scratch_dir("bench-precision-") as tmp:
        source, paths = pick_images(args.images, tmp)
        seconds = {"float32": 0.0, "mixed": 0.0}
        pairs = {k: ([], []) for k in full.kinds}
        for path in paths:
            views = make_views(decode_image(path), get_views(args.views))
            for name, ex in (("float32", full), ("mixed", mixed)):
                ex(views[:1])  # trace this size first: time the forward pass only
                t0 = time.perf_counter()
                feats = ex(views)
                seconds[name] += time.perf_counter() - t0
                for k, v in feats.items():
                    pairs[k][0 if name == "float32" else 1].append(v)
    print(f"{len(paths)} photos from {source}, {args.backbone} [{args.weights}], views {args.views}")
    print("| kind | identical | within 1 float16 step | max steps | max abs diff / max value | non-finite |")
    print("|---|---|---|---|---|---|")
    for k, (a, b) in pairs.items():
        a, b = np.concatenate([x.ravel() for x in a]), np.concatenate([x.ravel() for x in b])
        steps = ulp_steps(a, b)
        row = {"identical": float((steps == 0).mean()), "within_1_step": float((steps <= 1).mean()),
               "max_steps": int(steps.max()), "non_finite": int((~np.isfinite(b.astype(np.float32))).sum()),
               "max_rel_to_max": float(np.abs(a.astype(np.float32) - b.astype(np.float32)).max()
                                       / max(float(np.abs(a.astype(np.float32)).max()), 1e-12))}
        out["kinds"][k] = row
        print(f"| {k} | {row['identical']:.3f} | {row['within_1_step']:.3f} | {row['max_steps']} | "
              f"{row['max_rel_to_max']:.2e} | {row['non_finite']} |")
    out["seconds_per_photo"] = {k: v / len(paths) for k, v in seconds.items()}
    print(f"seconds per photo: float32 {out['seconds_per_photo']['float32']:.2f}, "
          f"mixed {out['seconds_per_photo']['mixed']:.2f} (this machine)")
    save_json(args.json, out)


if __name__ == "__main__":
    main()
