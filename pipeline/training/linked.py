"""Runs that need other runs to predict: a seed ensemble's members (`pipeline.training.ensemble`) and a
personal run's general run (`pipeline.training.personal`). Packs carry them, checksums cover them.
"""
from __future__ import annotations

import hashlib
from typing import List, Tuple

from evaluation import sklearn_files
from evaluation.rundir import RunDir, RunDirError

KEY = "ensemble"
MODEL_FILES = (RunDir.KERAS_MODEL, sklearn_files.MODEL_FILE)


def members_of(run: RunDir) -> List[RunDir]:
    """The member runs of an ensemble run (empty for a plain run); a missing member is refused."""
    names = (run.config.get(KEY) or {}).get("members") or []
    members = []
    for name in names:
        path = run.path / name
        if not (path / RunDir.CONFIG).is_file():
            raise RunDirError(f"{run.path} is a seed ensemble whose member {name} is missing ({path}); move the "
                              f"ensemble together with its members, or retrain it")
        members.append(RunDir.open(path))
    return members


def load_run_model(run: RunDir):
    """The model of a run directory: its head, or for a seed ensemble one model averaging its members."""
    from heads import get_head
    from pipeline.training.fitting import TRAINERS

    trainer = TRAINERS.get(get_head(run.config["head"]["name"]).trainer)
    members = members_of(run)
    if not members:
        return trainer.load(run)
    return trainer.average([trainer.load(m) for m in members])


def linked_runs(run: RunDir) -> List[Tuple[str, RunDir]]:
    """(name under linked/, run) of the runs `run` needs to predict: a seed ensemble's members, a personal
    run's general run (refused when missing)."""
    links = [(f"{KEY}_{i}", m) for i, m in enumerate(members_of(run))]
    personal = run.config.get("personal")
    if personal:
        path = run.path / personal["general"]
        if not (path / RunDir.CONFIG).is_file():
            raise RunDirError(f"{run.path} is a personal run whose general run is missing ({path}); move the run "
                              f"directory as a whole, or teach it again")
        links.append(("general", RunDir.open(path)))
    return links


def model_checksum(run: RunDir) -> str:
    """sha256 naming the model a run predicts with: its model files' and its linked runs' (the same for a run
    directory and its pack)."""
    lines = [f"{name}:{sklearn_files.sha256_of(run.path / name)}" for name in MODEL_FILES if (run.path / name).is_file()]
    lines += [f"{key}/{model_checksum(linked)}" for key, linked in linked_runs(run)]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()
