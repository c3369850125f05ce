"""photo-critic's binary SVM at scale: the exact RBF SVC (`svm_binary`) against its Nystroem approximation
(`svm_binary_nystroem`), on synthetic fc7-like rows (4,096 non-negative dims, norms as VGG16 fc7's).

The exact fit grows about quadratically with rows and is refused above 20,000; the Nystroem map + linear
SVC grows linearly. The benchmark times both on the sizes the exact fit allows, compares their test
accuracy on the same rows, times the approximation on larger sets, and projects its time on
photo-critic's 513k photos from the largest measured size (linear in rows).

    python benchmarks/bench_nystroem.py [--exact 2000,8000] [--large 50000,100000] [--dim 4096]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from heads import create_head  # noqa: E402

PAPER_ROWS = 513_000


def photos(n: int, dim: int, seed: int = 0):
    """fc7-like rows (ReLU of a correlated Gaussian, norms around 50) and top/bottom-20 % labels from a
    nonlinear score of them, balanced as photo-critic's task is."""
    rng = np.random.default_rng(seed)
    mix = np.random.default_rng(1).normal(size=(64, dim)).astype(np.float32) / 8
    z = rng.normal(size=(n, 64)).astype(np.float32)
    x = np.maximum(z @ mix + 0.3 * rng.normal(size=(n, dim)).astype(np.float32), 0) * 1.2
    w = np.random.default_rng(2).normal(size=64)
    score = z @ w + 2.0 * np.sin(2 * z[:, 0]) * z[:, 1] + 6.0 * rng.normal(size=n)  # 8 = std of z @ w
    low, high = np.quantile(score, [0.2, 0.8])
    keep = (score <= low) | (score >= high)
    return x[keep], (score[keep] >= high).astype(int)


def fit_and_score(head: str, n_train: int, dim: int) -> dict:
    x, y = photos(int(n_train / 0.4 / 0.8) + 1, dim)
    cut = int(len(x) * 0.8)
    model = create_head(head, input_shape=(dim,), seed=0)
    t0 = time.perf_counter()
    model.fit(x[:cut], y[:cut])
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    accuracy = float((model.predict(x[cut:]) == y[cut:]).mean())
    return {"head": head, "train_rows": cut, "fit_s": round(seconds, 1),
            "predict_rows_per_s": round((len(x) - cut) / (time.perf_counter() - t1)), "test_accuracy": accuracy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exact", default="2000,8000", help="training rows for both heads")
    ap.add_argument("--large", default="50000", help="training rows for the Nystroem head only")
    ap.add_argument("--dim", type=int, default=4096)
    ap.add_argument("--out", default="runs/bench_nystroem.json")
    args = ap.parse_args()
    rows = []
    for n in [int(v) for v in args.exact.split(",") if v]:
        for head in ("svm_binary", "svm_binary_nystroem"):
            rows.append(fit_and_score(head, n, args.dim))
            print(json.dumps(rows[-1]), flush=True)
    for n in [int(v) for v in args.large.split(",") if v]:
        rows.append(fit_and_score("svm_binary_nystroem", n, args.dim))
        print(json.dumps(rows[-1]), flush=True)
    largest = max((r for r in rows if r["head"] == "svm_binary_nystroem"), key=lambda r: r["train_rows"])
    projection = largest["fit_s"] * PAPER_ROWS / largest["train_rows"]
    print(f"projected svm_binary_nystroem fit on {PAPER_ROWS:,} rows: {projection / 60:.0f} min "
          f"(linear from {largest['train_rows']:,} rows)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows, "projected_paper_fit_s": projection}, indent=2))


if __name__ == "__main__":
    main()
