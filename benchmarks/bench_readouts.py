"""Linear read-outs of one store: does more of the stored features lift ridge regression?

The `ridge` head (`heads.validated_estimators.ValidatedRidge`: penalty chosen on validation SRCC) on the
training rows of a store's `mlsp_narrow`, against the same ridge on richer inputs built from the same store:
per-channel hinges at the training quartiles, squares, rank-Gauss inputs, each channel's std or max over the
5 x 5 cells of `mlsp_wide`, and the whole wide map. Every input is standardised with the training rows'
statistics (after the signed log1p of the `log-standard` norm, except rank-Gauss); a photo's score is the mean over its
views. Prints test and validation SRCC per read-out. Reads the store into RAM (BIQ2021 dev, views none:
about 150 MB of wide features).

    python benchmarks/bench_readouts.py [--store stores/biq2021_vgg16_hed_none.zarr]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_common import save_json  # noqa: E402
from features import store as st  # noqa: E402
from features.loader import signed_log1p  # noqa: E402
from heads.validated_estimators import ValidatedRidge, _srcc  # noqa: E402

SPLITS = ("train", "val", "test")


def standardise(a: np.ndarray, train: np.ndarray) -> np.ndarray:
    """(a - mean) / std over the training rows' every view; channels constant in training become 0."""
    rows = a[train].reshape(-1, a.shape[-1])
    sd = rows.std(axis=0)
    return ((a - rows.mean(axis=0)) / np.where(sd > 1e-6, sd, np.inf)).astype(np.float32)


def rank_gauss(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Each channel mapped through the training rows' empirical CDF, then the normal quantile function."""
    from scipy.special import ndtri

    ref = np.sort(x[train].reshape(-1, x.shape[-1]), axis=0)
    flat, n = x.reshape(-1, x.shape[-1]), ref.shape[0]
    out = np.empty(flat.shape, np.float32)
    for c in range(flat.shape[1]):
        mid = (np.searchsorted(ref[:, c], flat[:, c], "left") + np.searchsorted(ref[:, c], flat[:, c], "right")) / 2
        out[:, c] = ndtri(np.clip(mid / n, 0.5 / n, 1 - 0.5 / n))
    return out.reshape(x.shape)


def ridge_srcc(features: np.ndarray, y: np.ndarray, rows: dict) -> dict:
    """Validation and test SRCC of ridge on (N, V, D) features, trained on every view of the training rows."""
    n_views = features.shape[1]

    def flat(split):
        return features[rows[split]].reshape(-1, features.shape[-1])

    model = ValidatedRidge().fit(flat("train"), np.repeat(y[rows["train"]], n_views), flat("val"),
                                 np.repeat(y[rows["val"]], n_views))
    score = {s: model.predict(flat(s)).reshape(-1, n_views).mean(axis=1) for s in ("val", "test")}
    return {"dims": int(features.shape[-1]), "val_srcc": _srcc(y[rows["val"]], score["val"]),
            "test_srcc": _srcc(y[rows["test"]], score["test"])}


def readouts(narrow: np.ndarray, wide: np.ndarray, train: np.ndarray) -> dict:
    """Name → (N, V, D) inputs, all from the same store."""
    z = standardise(signed_log1p(narrow), train)
    quartiles = np.quantile(z[train].reshape(-1, z.shape[-1]), [0.25, 0.5, 0.75], axis=0)
    log_wide = signed_log1p(wide)
    cell_std = standardise(log_wide.std(axis=(2, 3)), train)
    cell_max = standardise(log_wide.max(axis=(2, 3)), train)
    return {
        "narrow, log-standard (the ridge head)": z,
        "+ hinges at the training quartiles": np.concatenate([z] + [np.maximum(z - q, 0) for q in quartiles], -1),
        "+ squares": np.concatenate([z, z ** 2], -1),
        "narrow, rank-Gauss": rank_gauss(narrow, train),
        "+ std over the 5x5 wide cells": np.concatenate([z, cell_std], -1),
        "+ max over the 5x5 wide cells": np.concatenate([z, cell_max], -1),
        "whole wide map, log-standard": standardise(log_wide.reshape(log_wide.shape[:2] + (-1,)), train),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="stores/biq2021_efficientnet_lite0_none.zarr")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()
    if not Path(args.store).exists():
        print(f"no store {args.store}: make it with `python benchmarks/bench_quality.py --views none` first")
        return
    with st.FeatureStore(args.store) as fs:
        done = (fs.status_of("mlsp_narrow") == st.DONE) & (fs.status_of("mlsp_wide") == st.DONE)
        y, split = np.asarray(fs.mos, np.float64), np.asarray(fs.split)
        rows = {s: np.flatnonzero(done & np.isfinite(y) & (split == s)) for s in SPLITS}
        narrow = np.asarray(fs.features("mlsp_narrow")[:], np.float32)
        wide = np.asarray(fs.features("mlsp_wide")[:], np.float32)
    print(f"{args.store}: " + ", ".join(f"{len(rows[s])} {s}" for s in SPLITS) + f", {narrow.shape[1]} view(s)")
    print("| read-out | inputs | val SRCC | test SRCC |\n|---|---|---|---|")
    results = {}
    for name, features in readouts(narrow, wide, rows["train"]).items():
        r = results[name] = ridge_srcc(features, y, rows)
        print(f"| {name} | {r['dims']:,} | {r['val_srcc']:.3f} | {r['test_srcc']:.3f} |", flush=True)
    save_json(args.json, results)


if __name__ == "__main__":
    main()
