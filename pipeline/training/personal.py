"""Personal runs: a person's answers on top of a general run (`heads.personal`), as a run directory.

    config.json        the general run's kind and extraction record; head `personal`; `personal`: the
                       general run (copied under linked/general, its model sha256 pinned), the answers'
                       counts, the penalty chosen and the agreement with held-back answers
    model.skops        the fitted `PersonalHead` (no pickle)
    linked/general/    the general run it builds on (config, model, metrics, card; an ensemble's members)
    answers.csv        the answers it learnt from (better,worse file names)
    MODEL_CARD.md

Scoring reads it like any run (`iaa score`, `serve`, `best-shot`, `pack`): the trainer `personal` loads the
general run's model and the personal head, and scores a photo's features with both.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from evaluation.rundir import RunDir, RunDirError
from pipeline.training.fitting import TrainerSpec, TrainError, register_trainer

GENERAL = "linked/general"
ANSWERS = "answers.csv"


def pooled(feats: np.ndarray) -> np.ndarray:
    """(n, V, *shape) → (n, C): the mean over views and, for spatial kinds, over positions."""
    f = np.asarray(feats, np.float64)
    return f.reshape(f.shape[0], -1, f.shape[-1]).mean(axis=1)


@dataclass
class Library:
    """A person's photos as the personal head sees them: general scores and pooled features (rows of X)."""

    names: List[str]
    paths: List[str]
    general: np.ndarray
    features: np.ndarray

    @property
    def X(self) -> np.ndarray:
        return np.column_stack([self.general, self.features])

    def index(self) -> dict:
        """{photo name: row}."""
        return {name: i for i, name in enumerate(self.names)}


class PersonalModel:
    """The general run's model and the personal head, scoring (m, *kind shape) features of one view each."""

    def __init__(self, general_trainer, general_model, general_dist: bool, head):
        self.general_trainer, self.general_model, self.general_dist, self.head = (
            general_trainer, general_model, general_dist, head)

    def general_scores(self, x: np.ndarray) -> np.ndarray:
        """(m,) the general run's scores (a distribution head's: its mean)."""
        from evaluation.metrics import mos_from_distribution

        out = np.asarray(self.general_trainer.predict(self.general_model, x), np.float64)
        return mos_from_distribution(out) if self.general_dist else out[:, 0]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(m, 1) personal scores of (m, *kind shape) features."""
        x = np.asarray(x, np.float32)
        rows = np.column_stack([self.general_scores(x), pooled(x[:, None])])
        return self.head.predict(rows).astype(np.float32).reshape(-1, 1)


def general_run(run: RunDir) -> RunDir:
    """The general run a personal run builds on (refused when missing or changed)."""
    from pipeline.training.linked import linked_runs, model_checksum

    general = dict(linked_runs(run))["general"]
    path = general.path
    if model_checksum(general) != run.config["personal"]["general_model_sha256"]:
        raise RunDirError(f"{path} is not the general run {run.path.name} was taught on (its model's sha256 "
                          f"differs); teach it again")
    return general


def load_personal(run: RunDir) -> PersonalModel:
    """The trainer's `load`: the general run's model (its pin checked) and the personal head."""
    from heads import get_head
    from pipeline.training.fit_sklearn import load_sklearn_run
    from pipeline.training.linked import load_run_model
    from pipeline.training.fitting import TRAINERS

    general = general_run(run)
    spec = get_head(general.config["head"]["name"])
    return PersonalModel(TRAINERS.get(spec.trainer), load_run_model(general), spec.target == "dist",
                         load_sklearn_run(run))


def _not_trained_here(group):
    raise TrainError("the `personal` head learns one person's answers: run `iaa personalize GENERAL_RUN FOLDER "
                     "--answers answers.csv --out RUN` (or `iaa serve GENERAL_RUN --teach-dir DIR --library FOLDER`)")


def _not_averaged(models):
    raise TrainError("personal runs are not averaged into seed ensembles")


register_trainer(TrainerSpec("personal", _not_trained_here, load_personal,
                             lambda model, x: model.predict(x), _not_averaged))


def answers_to_pairs(rows: Sequence[Tuple[str, str]], index: dict, where: str) -> Tuple[List[Tuple[int, int]], int, int]:
    """(pairs of library rows (better, worse), pair answers, ratings) from `better,worse` / `file,rating` rows.

    Ratings become the pairs they imply (each two rated photos with different ratings).

    Raises:
        UsageError: a row naming a photo that is not in the library, or neither form.
    """
    from features.core.errors import UsageError

    pairs, ratings = [], {}
    for line, (a, b) in rows:
        if a not in index:
            raise UsageError(f"{where}:{line}: {a!r} is not a photo of the library (names are relative to its folder)")
        try:
            ratings[index[a]] = float(b)
            continue
        except ValueError:
            pass
        if b not in index:
            raise UsageError(f"{where}:{line}: {b!r} is neither a rating nor a photo of the library")
        if index[a] != index[b]:
            pairs.append((index[a], index[b]))
    n_pairs = len(pairs)
    rated = sorted(ratings.items())
    pairs += [(i, j) if ri > rj else (j, i) for k, (i, ri) in enumerate(rated) for j, rj in rated[k + 1:] if ri != rj]
    return pairs, n_pairs, len(ratings)


def read_answers(path: str | Path) -> List[Tuple[int, Tuple[str, str]]]:
    """(line number, (first, second)) of an answers CSV; a header line (`better,worse`, `file,rating`) is skipped."""
    from features.core.errors import UsageError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such answers file (rows `better,worse` of photo names and/or `file,rating`)")
    rows = []
    with open(path, newline="") as f:
        for line, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row]
            if not row or not any(row) or (line == 1 and row[:2] in (["better", "worse"], ["file", "rating"])):
                continue
            if len(row) != 2 or not all(row):
                raise UsageError(f"{path}:{line}: expected two fields (better,worse or file,rating); received {row}")
            rows.append((line, (row[0], row[1])))
    return rows
