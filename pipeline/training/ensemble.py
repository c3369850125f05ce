"""Seed ensembles: runs of one head that differ only in their seed, averaged into one run directory.

A small head's test SRCC moves by a few hundredths between seeds; the mean of a few seeds' predictions
is both steadier and better than a typical seed (README, "Trained heads against ridge"). The ensemble's
directory is an ordinary run directory (config, predictions, metrics, report) whose config names its
members (`"ensemble": {"members": [...], "seeds": [...]}`, paths relative to it); every member keeps its
own model, and loading the run (`load_run_model`: `iaa score`, `serve`, `export`, `explain`,
`evaluate-on`) averages the members' outputs. `iaa train --seeds N` puts the members inside the
ensemble (`members/seed<k>/`); `iaa ablate --ensemble` points at its own seed runs beside it.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, List, Sequence

import numpy as np

from evaluation.rundir import RunDir
from features import store as st
from heads import get_head
from pipeline.training.fitting import TRAINERS, FitResult, TrainConfig, TrainError, predict_store_rows
from pipeline.training.linked import KEY, load_run_model, members_of  # noqa: F401  (re-exported)

SAME = ("kind", "splits", "label", "scale")  # config fields every member must share


def _check_members(members: List[RunDir]) -> None:
    first = members[0].config
    for m in members[1:]:
        differ = [k for k in ("head",) + SAME if m.config.get(k) != first.get(k)]
        differ += ["store"] if m.config["store"].get("path") != first["store"].get("path") else []
        differ += [k for k in ("folds", "fold") if m.config["train"].get(k) != first["train"].get(k)]
        if differ:
            raise TrainError(f"{m.path} and {members[0].path} differ in {', '.join(differ)}: an ensemble averages "
                             f"seeds of one head trained on the same photos")
    seeds = [m.config["train"]["seed"] for m in members]
    if len(set(seeds)) != len(seeds):
        raise TrainError(f"ensemble members share seeds ({seeds}); each member needs its own seed")
    spec = get_head(first["head"]["name"])
    if spec.has_embedding:
        raise TrainError(f"head {spec.name!r} learns an embedding whose axes differ from seed to seed: averaging "
                         f"seeds is meaningless for it; train it with one seed")


def write_ensemble(run_dir: str | Path, member_dirs: Sequence[str | Path],
                   log: Callable[[str], None] = print):
    """Averages trained runs of one head (different seeds) into the run directory `run_dir`.

    Its validation and test predictions are those of the averaged model on the members' photos (every
    view), evaluated like any run.

    Args:
        run_dir: the ensemble's directory (created; members may live inside it or elsewhere).
        member_dirs: the members' run directories (at least two).
    Returns:
        A `pipeline.training.train.TrainResult`.
    Raises:
        TrainError: fewer than two members, or members that are not seeds of one run.
    """
    from pipeline.training.train import TrainResult, record_run

    if len(member_dirs) < 2:
        raise TrainError(f"a seed ensemble needs at least two members; received {len(member_dirs)}")
    members = [RunDir.open(d) for d in member_dirs]
    _check_members(members)
    first, run_dir = members[0].config, Path(run_dir)
    seeds = [m.config["train"]["seed"] for m in members]
    names = [os.path.relpath(m.path.resolve(), run_dir.resolve()) for m in members]
    config = {k: v for k, v in first.items() if k not in ("model_sha256", "fitted_to_data", "score_scale")}
    config[KEY] = {"members": names, "seeds": seeds}
    config["train"] = {**first["train"], "seed": seeds, "run_dir": str(run_dir)}
    run = RunDir.create(run_dir, config)
    spec, model = get_head(first["head"]["name"]), load_run_model(run)
    trainer = TRAINERS.get(spec.trainer)
    with st.FeatureStore(first["store"]["path"]) as opened:
        fs = opened.with_label(first.get("label") or "mos")
        index = {photo: row for row, photo in enumerate(fs.ids)}
        rows, views = {}, {}
        for split in ("val", "test"):
            pred = members[0].read_predictions(split)
            rows[split] = np.array([index[i] for i in pred["id"]] if pred else [], np.int64)
            views[split] = predict_store_rows(trainer, model, fs, first["kind"], rows[split]) if pred else None
        seconds = float(sum(m.config.get("train_seconds") or 0.0 for m in members))
        out = FitResult(val_views=views["val"], test_views=views["test"], seconds=seconds, reader_mode="none",
                        trained_with=[spec.name], params=int(sum(m.config.get("params") or 0 for m in members)))
        log(f"ensemble of {spec.name} seeds {seeds} → {run_dir}")
        result = record_run(run, spec, fs, rows, out, log)
    return TrainResult(result.run_dir, result.metrics, seconds)


def train_seeds(cfg: TrainConfig, seeds: Sequence[int], log: Callable[[str], None] = print):
    """`iaa train --seeds N`: trains `cfg.head` once per seed into `<run_dir>/members/seed<k>/`, then writes
    their ensemble into `<run_dir>` (see `write_ensemble`)."""
    from pipeline.training.train import default_run_dir, run_train

    run_dir = Path(cfg.run_dir or default_run_dir(cfg.store, cfg.head, seeds[0]).with_name(
        f"{Path(cfg.store).stem}_{cfg.head}_ensemble{len(seeds)}"))
    if get_head(cfg.head).has_embedding:
        raise TrainError(f"head {cfg.head!r} learns an embedding whose axes differ between seeds; train it with "
                         f"one seed")
    dirs = []
    for seed in seeds:
        log(f"seed {seed} ({len(dirs) + 1} of {len(seeds)})")
        dirs.append(run_train(replace(cfg, seed=seed, run_dir=str(run_dir / "members" / f"seed{seed}")), log).run_dir)
    return write_ensemble(run_dir, dirs, log)
