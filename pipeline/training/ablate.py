"""`iaa ablate`: a grid of heads x seeds on one store, and a leaderboard ranked by validation SRCC.

Keras heads that read the same feature kind are trained together (one read of each batch feeds every
head; see `pipeline.training.train.fit_keras_heads`), so K heads cost close to one pass over the store when
reading is the bottleneck.
"""
from __future__ import annotations

import csv
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np

from pipeline.training.train import TrainConfig, run_heads

ENSEMBLE = " ensemble"  # a leaderboard row's suffix for a head's seeds averaged (`--ensemble`)


def row_run_name(row_head: str, seed: int = 0, fold=None) -> str:
    """The run directory (inside the ablation's) of a leaderboard row: the seed's run, or the ensemble's."""
    part = "" if fold is None else f"_fold{fold}"
    if row_head.endswith(ENSEMBLE):
        return f"{row_head[:-len(ENSEMBLE)]}{part}_ensemble"
    return f"{row_head}{part}_seed{seed}"


COLUMNS = ("val_srcc", "test_srcc", "within_srcc", "test_plcc", "test_accuracy", "test_balanced_accuracy",
           "test_rmse")


def _value(metrics: dict, split: str, key: str):
    v = (metrics.get(split) or {}).get(key)
    return np.nan if v is None else float(v)


def run_ablation(base: TrainConfig, heads: Sequence[str], seeds: Sequence[int], out_dir: str | Path,
                 joint: bool = True, log: Callable[[str], None] = print, folds: int = 0,
                 ensemble: bool = False) -> List[dict]:
    """Trains every head with every seed on one store and writes leaderboard.csv / leaderboard.md.

    Args:
        base: shared run settings (its `seed` and `run_dir` are set per run).
        heads: head names.
        seeds: seeds to run; the leaderboard gives mean ± std over them.
        out_dir: where the runs (`<head>_seed<N>/`, with folds `<head>_fold<K>_seed<N>/`) and the leaderboard go.
        joint: Keras heads of one feature kind share each batch read (`--sequential` turns it off).
        log: where progress lines go.
        folds: 0 uses the store's split; K >= 2 runs a K-fold cross-validation (`pipeline.training.folds`) and ranks
            on the out-of-fold predictions of every photo.
        ensemble: also average each head's seeds into `<head>[_fold<K>]_ensemble/` (`pipeline.training.ensemble`), ranked
            as a head of its own, `<head> ensemble`.
    Returns:
        Leaderboard rows, ranked by validation SRCC.
    """
    out_dir = Path(out_dir)
    if ensemble:
        _check_ensemble(heads, seeds)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_head: Dict[str, List[dict]] = {h: [] for h in heads}
    t_all = time.perf_counter()
    for seed in seeds:
        for fold in range(folds) if folds else [None]:
            cfg = replace(base, seed=seed, run_dir=None, folds=folds, fold=fold or 0)
            if fold is not None:
                log(f"fold {fold + 1} of {folds}, seed {seed}")
            t0 = time.perf_counter()
            results = run_heads(cfg, list(heads), [out_dir / row_run_name(h, seed, fold) for h in heads], log,
                                joint=joint)
            wall = time.perf_counter() - t0
            for h, res in zip(heads, results):
                per_head[h].append(_run_row(res, seed, fold, wall))
    if ensemble:
        per_head.update(_ensembles(per_head, out_dir, folds, log))
    rows = [_leaderboard_row(h, runs, folds) for h, runs in per_head.items()]
    rows.sort(key=lambda r: -np.nan_to_num(r["val_srcc_mean"], nan=-np.inf))
    _add_paired_deltas(rows, {h: _seed_dirs(runs, folds) for h, runs in per_head.items()})
    write_leaderboard(rows, out_dir, time.perf_counter() - t_all, joint, folds)
    return rows


def _check_ensemble(heads: Sequence[str], seeds: Sequence[int]) -> None:
    from heads import get_head
    from pipeline.training.fitting import TrainError

    if len(seeds) < 2:
        raise TrainError(f"an ensemble averages seeds: give 2 or more (received {len(seeds)})")
    embedding = [h for h in heads if get_head(h).has_embedding]
    if embedding:
        raise TrainError(f"{', '.join(embedding)} learn embeddings whose axes differ between seeds; leave "
                         f"{'it' if len(embedding) == 1 else 'them'} out of an --ensemble grid")


def _ensembles(per_head: Dict[str, List[dict]], out_dir: Path, folds: int, log) -> Dict[str, List[dict]]:
    """Per head, its seeds averaged (per fold with cross-validation) into `<head>[_fold<K>]_ensemble/`."""
    from pipeline.training.ensemble import write_ensemble

    found = {}
    for head, runs in per_head.items():
        rows = []
        for fold in sorted({r["fold"] for r in runs}, key=lambda f: -1 if f is None else f):
            members = [r for r in runs if r["fold"] == fold]
            t0 = time.perf_counter()
            res = write_ensemble(out_dir / row_run_name(head + ENSEMBLE, fold=fold), [r["run_dir"] for r in members],
                                 log)
            rows.append(_run_row(res, "ensemble", fold, time.perf_counter() - t0 + sum(r["wall"] for r in members)))
        found[head + ENSEMBLE] = rows
    return found


def _run_row(res, seed: int, fold, wall: float) -> dict:
    m = res.metrics
    return {"seed": seed, "fold": fold, "run_dir": res.run_dir, "seconds": res.seconds, "wall": wall,
            "val_srcc": _value(m, "val", "srcc"), "test_srcc": _value(m, "test", "srcc"),
            "within_srcc": float(((m.get("test") or {}).get("within_group_srcc") or {}).get("mean", np.nan)),
            "test_plcc": _value(m, "test", "plcc"), "test_accuracy": _value(m, "test", "accuracy"),
            "test_balanced_accuracy": _value(m, "test", "balanced_accuracy"),
            "test_rmse": _value(m, "test", "rmse"), "kind": m.get("kind")}


def _seed_dirs(runs: List[dict], folds: int) -> list:
    """Per seed its run directory, or (cross-validation) its folds' directories in fold order."""
    if not folds:
        return [r["run_dir"] for r in runs]
    seeds = sorted({r["seed"] for r in runs})
    return [[r["run_dir"] for r in sorted(runs, key=lambda r: r["fold"]) if r["seed"] == s] for s in seeds]


def _leaderboard_row(head: str, runs: List[dict], folds: int) -> dict:
    """Mean ± std over seeds of each column; with folds, test SRCC / PLCC of the pooled out-of-fold
    predictions (and the per-fold SRCC beside them), the other test columns averaged over folds."""
    row = {"head": head, "kind": runs[0]["kind"], "seeds": len({r["seed"] for r in runs}),
           "seconds_per_run": float(np.mean([r["seconds"] for r in runs])), "fold_srcc_mean": np.nan,
           "fold_srcc_std": np.nan}
    for col in COLUMNS:
        vals = np.array([r[col] for r in runs], dtype=np.float64)
        row[f"{col}_mean"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else np.nan
        row[f"{col}_std"] = float(np.nanstd(vals)) if np.isfinite(vals).any() else np.nan
    if folds:
        from evaluation.compare import out_of_fold_summary

        oof = out_of_fold_summary(_seed_dirs(runs, folds))
        row.update({"test_srcc_mean": oof["srcc_mean"], "test_srcc_std": oof["srcc_std"],
                    "test_plcc_mean": oof["plcc_mean"], "test_plcc_std": oof["plcc_std"],
                    "fold_srcc_mean": oof["fold_srcc_mean"], "fold_srcc_std": oof["fold_srcc_std"],
                    "within_srcc_mean": oof["within_mean"], "within_srcc_std": oof["within_std"]})
    return row


def _add_paired_deltas(rows: List[dict], run_dirs: Dict[str, List[str]]) -> None:
    """Each row's test SRCC minus the reference's on the same photos, with a paired bootstrap 95 % interval:
    against `ridge` when the grid has it (the linear yardstick), and against the best head by validation."""
    from evaluation.compare import deltas_against

    for column, reference in (("vs_ridge", "ridge" if "ridge" in run_dirs else None), ("vs_best", rows[0]["head"])):
        deltas = deltas_against(reference, run_dirs) if reference and len(run_dirs) > 1 else {}
        for row in rows:
            row[f"test_srcc_{column}"] = deltas.get(row["head"], "")


def _csv_value(value):
    """An undefined metric (NaN: e.g. a classifier's SRCC) as an empty cell, never the text `nan`."""
    return "" if isinstance(value, float) and not np.isfinite(value) else value


def write_leaderboard(rows: List[dict], out_dir: Path, seconds: float, joint: bool, folds: int = 0) -> None:
    """Writes `leaderboard.csv` and `leaderboard.md` of an ablation: one row per head (and ensemble), ranked,
    with the paired differences against ridge and the best head.
    """
    keys = (["head", "kind", "seeds", "seconds_per_run"] + [f"{c}_{s}" for c in COLUMNS for s in ("mean", "std")]
            + ["fold_srcc_mean", "fold_srcc_std", "test_srcc_vs_ridge", "test_srcc_vs_best"])
    with open(out_dir / "leaderboard.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: _csv_value(r[k]) for k in keys})
    pm = lambda r, c: "n/a" if not np.isfinite(r[f"{c}_mean"]) else f"{r[f'{c}_mean']:.3f} ± {r[f'{c}_std']:.3f}"  # noqa: E731
    titles = {"vs_ridge": "Δ test SRCC vs ridge [95 %]", "vs_best": "Δ test SRCC vs best [95 %]"}
    paired = [c for c in titles if any(r[f"test_srcc_{c}"] for r in rows)]
    test = "out-of-fold test SRCC" if folds else "test SRCC"
    per_fold = ["fold_srcc"] if folds else []
    within = ["within_srcc"] if any(np.isfinite(r["within_srcc_mean"]) for r in rows) else []
    lines = [f"| rank | head | kind | val SRCC | {test} | " + "".join(f"{titles[c]} | " for c in paired)
             + ("within-group SRCC | " if within else "")
             + ("SRCC per fold | " if folds else "") + "test PLCC | test acc. | test bal. acc. | s / run |",
             "|---|---|---|---|---|" + "---|" * (len(paired) + len(per_fold) + len(within)) + "---|---|---|---|"]
    for i, r in enumerate(rows, start=1):
        lines.append(f"| {i} | {r['head']} | {r['kind']} | {pm(r, 'val_srcc')} | {pm(r, 'test_srcc')} | "
                     + "".join(f"{r[f'test_srcc_{c}']} | " for c in paired)
                     + "".join(f"{pm(r, c)} | " for c in within)
                     + "".join(f"{pm(r, c)} | " for c in per_fold)
                     + f"{pm(r, 'test_plcc')} | {pm(r, 'test_accuracy')} | {pm(r, 'test_balanced_accuracy')} | "
                     f"{r['seconds_per_run']:.1f} |")
    together = ("Keras heads of one feature kind trained together; s / run is their shared time." if joint
                else "Heads trained one after another.")
    delta = ("Δ: the head's test SRCC (mean over seeds) minus the reference's on the same test photos, with a paired "
             "bootstrap 95 % interval (1,000 resamples of the photos); a difference is real only when the interval "
             "excludes 0. " if paired else "")
    groups = ("Within-group SRCC: the test SRCC inside each group of the store's `group` column, averaged over "
              "groups (pooled SRCC also rewards telling the groups' mean scores apart). " if within else "")
    cv = (f"{folds}-fold cross-validation: every photo tested once; test SRCC and PLCC are those of the pooled "
          f"out-of-fold predictions (mean ± std over seeds), SRCC per fold beside them (mean ± std over folds), "
          f"the other test columns averaged over folds. " if folds else "")
    lines += ["", f"Ranked by validation SRCC (mean ± std over seeds; test metrics alongside). {cv}{delta}{groups}{together} "
                  f"Total {seconds:.0f} s."]
    (out_dir / "leaderboard.md").write_text("\n".join(lines) + "\n")
