"""Real human judgement: BIQ2021 (../shared/data/biq2021-dev, 2,000 photos) with an offline backbone.

Extracts the backbone's (default: the project's default, `efficientnet_lite0`) MLSP features (narrow + wide)
and, for APM's branches, SPP + GMP at full resolution (resumable stores under stores/, reused between runs; a
store is made only when a chosen head needs it). By default it runs a 5-fold cross-validation over all
2,000 photos (`pipeline.training.folds`; in each fold a tenth of the training part validates) with 3 seeds and each
Keras head's 3-seed ensemble, and prints per head the SRCC/PLCC of the pooled out-of-fold predictions
(mean ± std over seeds), the SRCC per fold, the mean SRCC within each of BIQ2021's three sources (file
prefixes ss01-ss03, whose mean ratings differ) and the difference to `ridge` on the same photos with a
paired bootstrap 95 % interval (`evaluation.compare`). `--folds 0` uses the official 1,600 / 400 split
instead (and fuses APM's two branches, `iaa fuse`). Every head trains with its own recipe (`iaa
describe-head NAME`) unless `--train-args` overrides it. Skips cleanly when the folder is absent.

    python benchmarks/bench_quality.py [--backbone vgg16_hed] [--views none,crop_flip] [--seeds 3] [--folds 0]
                                       [--heads mlp,ridge | all] [--no-ensemble]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from features.core.quiet import quiet_tensorflow  # noqa: E402
from features.backbones import DEFAULT_BACKBONE  # noqa: E402

quiet_tensorflow()

BIQ = Path(__file__).resolve().parents[2] / "shared" / "data" / "biq2021-dev"
HEADS = {"mlsp_narrow": ["mlp", "single1fc", "single3fc", "multi3fc", "reg_rank", "reg_rank_cont", "triplet", "ridge", "svr",
                         "svm_photo_critic", "rf"],
         "mlsp_wide": ["pool3fc", "reg_rank_wide"], "spp": ["mean_huber"], "spp_max": ["mean_huber"],
         "gmp": ["mean_huber"]}
DEFAULT_HEADS = ("mlp", "single1fc", "single3fc", "ridge")
STORE_KINDS = {"": "mlsp_narrow,mlsp_wide", "_apm": "spp,spp_max,gmp"}  # store name suffix → kinds it holds
FUSED = (("spp", "mean_huber"), ("gmp", "mean_huber"))  # APM's two branches, fused late


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE, help="offline backbone (default: %(default)s)")
    ap.add_argument("--views", default="none", help="view sets, comma-separated (none, crop_flip)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--folds", type=int, default=5, help="K-fold cross-validation over all 2,000 photos (K >= 2; "
                    "0: the official split): pooled out-of-fold SRCC, SRCC per fold")
    ap.add_argument("--no-ensemble", dest="ensemble", action="store_false", help="leave out the rows averaging each "
                    "Keras head's seeds (per fold) into a seed ensemble (`pipeline.training.ensemble`)")
    ap.add_argument("--heads", default=",".join(DEFAULT_HEADS), help="comma-separated subset of "
                    + ", ".join(sum(HEADS.values(), [])) + " or all (default: %(default)s)")
    ap.add_argument("--max-side", type=int, default=None)
    ap.add_argument("--batch-size", type=int, help="training batch of every head (default: each head's recipe)")
    ap.add_argument("--train-args", default="{}", help='TrainConfig overrides as JSON, e.g. {"l2": 0}')
    ap.add_argument("--out", default="runs/bench_quality")
    return ap.parse_args()


def _store(backbone: str, views: str, max_side, kind: str) -> str:
    from pipeline.extraction.extract import ExtractConfig, run_extract

    suffix, features = next((s, k) for s, k in STORE_KINDS.items() if kind in k.split(","))
    store = f"stores/biq2021_{backbone}_{views}{'_' + str(max_side) if max_side else ''}{suffix}.zarr"
    res = run_extract(ExtractConfig(dataset="folder", data_dir=str(BIQ), store=store, backbone=backbone,
                                    views=views, features=features, max_side=max_side))
    print(f"{store}: {res.counts} ({res.images_per_second:.2f} images/s this run)", flush=True)
    return store


def source_of(photo_id: str) -> str:
    """BIQ2021's source from a file name: `ss02_1968.jpg` → `ss02`."""
    return str(photo_id).split("_", 1)[0]


def _within_source(run_dir: str) -> float:
    """Mean over BIQ2021's sources of the test SRCC inside each (nan when the run wrote no predictions)."""
    from evaluation.metrics import within_group_srcc
    from evaluation.rundir import RunDir

    pred = RunDir.open(run_dir).read_predictions("test")
    if pred is None:
        return float("nan")
    return within_group_srcc(pred["true"], pred["pred"], [source_of(i) for i in pred["id"]])["mean"]


def _row(views: str, kind: str, head: str, results: list) -> dict:
    test = [r.metrics.get("test", {}) for r in results]
    srcc, plcc = [t.get("srcc") for t in test], [t.get("plcc") for t in test]
    within = [_within_source(r.run_dir) for r in results]
    config = json.loads((Path(results[0].run_dir) / "config.json").read_text())
    return {"views": views, "kind": kind, "head": head, "recipe": config.get("recipe"), "seeds": len(results),
            "test_srcc": srcc, "test_plcc": plcc, "srcc_mean": float(np.mean(srcc)), "srcc_std": float(np.std(srcc)),
            "plcc_mean": float(np.mean(plcc)), "plcc_std": float(np.std(plcc)),
            "within_source_srcc": within, "within_mean": float(np.mean(within)), "within_std": float(np.std(within)),
            "val_srcc_mean": float(np.mean([r.metrics.get("val", {}).get("srcc") for r in results])),
            "run_dirs": [str(r.run_dir) for r in results],
            "seconds": float(np.mean([r.seconds for r in results]))}


def _run_dir(out: str, views: str, kind: str, head: str, seed: int, fold=None) -> Path:
    part = "" if fold is None else f"_fold{fold}"
    return Path(out) / f"{views}_{head}{'' if kind.startswith('mlsp') else '_' + kind}{part}_seed{seed}"


def _cv_row(views: str, kind: str, head: str, seed_dirs: list) -> dict:
    """A head's row from its folds' runs (per seed, the fold directories in order): out-of-fold figures."""
    from evaluation.compare import out_of_fold_summary, test_predictions
    from evaluation.metrics import within_group_srcc
    from evaluation.rundir import RunDir

    oof = out_of_fold_summary(seed_dirs)
    pooled = test_predictions(seed_dirs)
    groups = [source_of(i) for i in pooled["id"]]
    within = [within_group_srcc(pooled["true"], pooled["pred"][:, s], groups)["mean"]
              for s in range(pooled["pred"].shape[1])]
    runs = [RunDir.open(d) for dirs in seed_dirs for d in dirs]
    return {"views": views, "kind": kind, "head": head, "recipe": runs[0].config.get("recipe"),
            "seeds": len(seed_dirs), "folds": len(seed_dirs[0]), "srcc_mean": oof["srcc_mean"],
            "srcc_std": oof["srcc_std"], "plcc_mean": oof["plcc_mean"], "plcc_std": oof["plcc_std"],
            "fold_srcc_mean": oof["fold_srcc_mean"], "fold_srcc_std": oof["fold_srcc_std"],
            "within_source_srcc": within, "within_mean": float(np.mean(within)), "within_std": float(np.std(within)),
            "val_srcc_mean": float(np.mean([r.read_metrics()["val"]["srcc"] for r in runs])),
            "run_dirs": [[str(d) for d in dirs] for dirs in seed_dirs],
            "seconds": float(np.mean([r.read_metrics().get("train_seconds") or 0.0 for r in runs]))}


def _seeded(head: str) -> bool:
    """Whether seeds change the head (Keras heads; not ridge/SVR, whose fit is deterministic)."""
    from heads import get_head

    spec = get_head(head)
    return spec.trainer == "keras" and not spec.has_embedding


def _ensemble_row(args, views: str, kind: str, head: str) -> dict:
    """The head's seeds averaged per fold (`pipeline.training.ensemble.write_ensemble`), as a row of out-of-fold figures."""
    from pipeline.training.ensemble import write_ensemble

    dirs = []
    for fold in range(args.folds):
        members = [_run_dir(args.out, views, kind, head, s, fold) for s in range(args.seeds)]
        out = Path(args.out) / f"{views}_{head}_fold{fold}_ensemble{args.seeds}"
        dirs.append(write_ensemble(out, members, log=lambda m: print(m, flush=True)).run_dir)
    return _cv_row(views, kind, f"{head} ensemble of {args.seeds}", [dirs])


def _fused_row(out: str, views: str, seeds: int) -> dict:
    """APM's late fusion of the two branches, per seed (`iaa fuse`)."""
    from types import SimpleNamespace

    from pipeline.training.fuse import fuse_runs

    (kind_a, head_a), (kind_b, head_b) = FUSED
    results = []
    for seed in range(seeds):
        fused = Path(out) / f"{views}_fuse_{kind_a}+{kind_b}_seed{seed}"
        metrics = fuse_runs(_run_dir(out, views, kind_a, head_a, seed), _run_dir(out, views, kind_b, head_b, seed),
                            fused, log=lambda m: print(m, flush=True))
        results.append(SimpleNamespace(metrics=metrics, run_dir=str(fused), seconds=0.0))
    return _row(views, f"{kind_a}+{kind_b}", f"fuse({head_a}, {head_b})", results)


def _add_deltas(rows: list) -> None:
    """Each row's test SRCC minus ridge's (same views) on the same photos, paired bootstrap 95 % interval."""
    from evaluation.compare import compare_heads, delta_text

    for row in rows:
        ridge = next((r for r in rows if r["head"] == "ridge" and r["views"] == row["views"]), None)
        row["vs_ridge"] = ("-" if ridge is None else "0 (reference)" if ridge is row
                           else delta_text(compare_heads(row["run_dirs"], ridge["run_dirs"])))


def _table(rows: list) -> str:
    lines = ["| views | kind | head | recipe | test SRCC | Δ vs ridge [95 %] | within-source SRCC | SRCC per fold | "
             "test PLCC | val SRCC | s/seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rec = r["recipe"] or {}
        recipe = (f"{rec.get('input_norm')}, l2 {rec.get('l2'):g}, wd {rec.get('weight_decay', 0):g}, batch "
                  f"{rec.get('batch_size')}, stop {rec.get('early_stop')}" if rec else "-")
        lines.append(f"| {r['views']} | {r['kind']} | {r['head']} | {recipe} | {r['srcc_mean']:.3f} ± "
                     f"{r['srcc_std']:.3f} | {r['vs_ridge']} | {r['within_mean']:.3f} ± {r['within_std']:.3f} | "
                     f"{_per_fold(r)} | "
                     f"{r['plcc_mean']:.3f} ± {r['plcc_std']:.3f} | {r['val_srcc_mean']:.3f} "
                     f"| {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def _per_fold(row: dict) -> str:
    return f"{row['fold_srcc_mean']:.3f} ± {row['fold_srcc_std']:.3f}" if "fold_srcc_mean" in row else "-"


def _wanted(text):
    """The heads `--heads` names (earlier names resolved through the registry), or None for all; names this
    benchmark does not run are refused."""
    if not text or text == "all":
        return None
    from features.core.registry import UnknownNameError
    from heads import get_head

    try:
        names = {get_head(name.strip()).name for name in text.split(",")}
    except UnknownNameError as exc:
        raise SystemExit(f"--heads: {exc}") from None
    known = set(sum(HEADS.values(), []))
    if names - known:
        raise SystemExit(f"--heads: {', '.join(sorted(names - known))} not benchmarked here; choose from "
                         f"{', '.join(sorted(known))}")
    return names


def main() -> None:
    args = _parse()
    if not BIQ.is_dir():
        print(f"skipped: {BIQ} is not here (BIQ2021 is read from ../shared/data, never copied)")
        return
    from pipeline.training.train import TrainConfig, run_heads

    wanted = _wanted(args.heads)
    overrides = json.loads(args.train_args)
    rows = []
    for views in args.views.split(","):
        for kind, heads in HEADS.items():
            heads = [h for h in heads if wanted is None or h in wanted]
            if not heads:
                continue
            store = _store(args.backbone, views, args.max_side, kind)
            per_seed = []
            for seed in range(args.seeds):
                for fold in range(args.folds) if args.folds else [None]:
                    cfg = TrainConfig(**{"store": store, "head": heads[0], "kind": kind, "batch_size": args.batch_size,
                                         "seed": seed, "folds": args.folds, "fold": fold or 0, **overrides})
                    dirs = [_run_dir(args.out, views, kind, h, seed, fold) for h in heads]
                    per_seed.append(run_heads(cfg, heads, dirs, log=lambda m: print(m, flush=True)))
            if args.folds:
                rows += [_cv_row(views, kind, h, [[str(_run_dir(args.out, views, kind, h, s, f))
                                                   for f in range(args.folds)] for s in range(args.seeds)])
                         for h in heads]
                if args.ensemble and args.seeds > 1:
                    rows += [_ensemble_row(args, views, kind, h) for h in heads if _seeded(h)]
            else:
                rows += [_row(views, kind, h, [s[i] for s in per_seed]) for i, h in enumerate(heads)]
        if (wanted is None or "mean_huber" in wanted) and not args.folds:  # fusion per fold: not wired
            rows.append(_fused_row(args.out, views, args.seeds))
    _add_deltas(rows)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "table.md").write_text(_table(rows))
    (Path(args.out) / "table.json").write_text(json.dumps(rows, indent=2))
    print(_table(rows))


if __name__ == "__main__":
    main()
