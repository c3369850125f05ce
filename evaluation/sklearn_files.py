"""scikit-learn heads on disk without pickle: the one owner of `model.skops` (skops.io).

A skops file is a zip of a JSON schema and numpy arrays (saved with `allow_pickle=False`). Loading builds
only the types on an allow-list: scikit-learn's own estimators (skops trusts them), plus the types the
caller allows (the trainer passes `BASE_TYPES` and the registered heads' `HeadSpec.saved_types`). A file
naming anything else (a function such as `os.system`, a class of its own) is refused before any object is
built.

`model.joblib` (a pickle: loading it can run any code) is no longer read; `convert_legacy` rewrites a run
that has one, once, when its owner says they trust it (`iaa convert RUN --trust`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from features.core.errors import IAAError

MODEL_FILE = "model.skops"
LEGACY_FILE = "model.joblib"
# Beyond the heads' own: what every fitted pipeline may hold (the log1p of `--input-norm log-standard`).
BASE_TYPES = ("features.loader.signed_log1p",)


class ModelFileError(IAAError):
    """A model file that is missing, changed, not ours, or would need code to load."""


def save(model, path: Path, allowed: Sequence[str]) -> str:
    """Writes a fitted estimator to `path` (skops format); returns the file's sha256. Refuses an estimator
    holding types outside `allowed` (no loader would accept the file)."""
    import skops.io as sio

    unknown = sorted(set(sio.get_untrusted_types(data=sio.dumps(model))) - set(allowed))
    if unknown:  # refuse now, not when someone tries to score with it
        raise ModelFileError(f"the fitted estimator holds types no loader would accept: {', '.join(unknown)}; "
                             f"declare them in the head's HeadSpec(saved_types=...)")
    sio.dump(model, path)
    return sha256_of(path)


def load(path: Path, expected_sha256: str, allowed: Sequence[str]):
    """The estimator in `path`, if its sha256 matches and it names only scikit-learn's and `allowed` types.

    Raises:
        ModelFileError: missing, changed since training, or naming a type outside the allow-list.
    """
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    if not path.is_file():
        raise ModelFileError(f"{path} is missing: the run did not finish training; retrain it")
    if sha256_of(path) != expected_sha256:
        raise ModelFileError(f"{path} does not match the sha256 in its run's config.json; it changed since "
                             f"training: retrain the run or restore the file")
    try:
        return sio.load(path, trusted=list(allowed))
    except UntrustedTypesFoundException as exc:
        raise ModelFileError(f"{path} names types outside the allow-list, refused without loading: {exc}") from None
    except Exception as exc:  # noqa: BLE001  (a damaged or foreign zip: one line, not a traceback)
        raise ModelFileError(f"{path} is not a readable skops model ({type(exc).__name__}: {exc}); "
                             f"retrain the run") from None


def refuse_legacy(run_path: Path) -> None:
    """Raises `ModelFileError` for a run holding only a pickled model, saying how to convert it."""
    raise ModelFileError(f"{run_path / LEGACY_FILE} is a pickle, which can run any code when loaded, so it is not "
                         f"read; if you trained this run yourself or trust where it came from, convert it once: "
                         f"iaa convert {run_path} --trust")


def convert_legacy(run_path: Path, expected_sha256: str, allowed: Sequence[str]) -> str:
    """Loads `model.joblib` once (sha256 checked), writes `model.skops`, removes the pickle; returns the new sha256."""
    import joblib

    legacy = run_path / LEGACY_FILE
    if sha256_of(legacy) != expected_sha256:
        raise ModelFileError(f"{legacy} does not match the sha256 in its config.json; not converting a pickle "
                             f"that changed since training")
    digest = save(joblib.load(legacy), run_path / MODEL_FILE, allowed)
    legacy.unlink()
    return digest


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
