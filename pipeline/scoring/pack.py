"""A packed model (`NAME.iaa`): one file holding a run, to pass around and load without running its code.

    pack.json                format, version, run name, date packed, the model's sha256, every member's sha256
    run/config.json          the run's config (with its extraction record: backbone, weights identity, views)
    run/model.keras | run/model.skops   the head (Keras safe mode | skops with an allow-list: no pickle)
    run/metrics.json  run/report.md  run/MODEL_CARD.md  (run/answers.csv: a personal run's answers)
    run/linked/<name>/...    the runs it builds on (a seed ensemble's members, a personal run's general run)

It is a zip file. Opening one checks every member's name against that layout and its sha256 against
`pack.json` (anything else is refused), then unpacks it once into a cache folder named by the pack's own
sha256; the commands then read it as a run directory. Nothing in it is executed: the model files load
through the same safe loaders as a run directory's, and a pickle (`model.joblib`) is never packed.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Dict

from evaluation import sklearn_files
from evaluation.model_card import CARD_FILE, read_model_card
from evaluation.rundir import RunDir, RunDirError
from pipeline.training.linked import KEY, MODEL_FILES, linked_runs, model_checksum

FORMAT, VERSION, MANIFEST = "mlsp-iaa pack", 1, "pack.json"
RUN_FILES = (RunDir.CONFIG, RunDir.KERAS_MODEL, sklearn_files.MODEL_FILE, RunDir.METRICS, RunDir.REPORT, CARD_FILE,
             "answers.csv")
_MEMBER = re.compile(r"^run(/linked/[A-Za-z0-9_-]{1,80}){0,3}/(" + "|".join(map(re.escape, RUN_FILES)) + r")$")
MAX_UNPACKED_GB = 8.0  # a zip bomb's declared sizes are refused before anything is written


class PackError(RunDirError):
    """A file that is not a pack, or one whose contents do not match its manifest."""


def run_files(run: RunDir, prefix: str) -> Dict[str, bytes]:
    """The pack members of one run (and, recursively, of the runs it links to) as {name: bytes}."""
    if (run.path / sklearn_files.LEGACY_FILE).is_file() and not (run.path / sklearn_files.MODEL_FILE).is_file():
        sklearn_files.refuse_legacy(run.path)
    if not any((run.path / name).is_file() for name in MODEL_FILES) and not linked_runs(run):
        raise PackError(f"{run.path} has no model file ({' or '.join(MODEL_FILES)}): the run did not finish training")
    config, links = dict(run.config), linked_runs(run)
    if config.get(KEY):  # members may live anywhere: in the pack they sit under linked/
        config[KEY] = dict(config[KEY], members=[f"linked/{key}" for key, _ in links if key.startswith(KEY)])
    members: Dict[str, bytes] = {}
    for key, linked in links:
        members.update(run_files(linked, f"{prefix}/linked/{key}"))
    members[f"{prefix}/{RunDir.CONFIG}"] = json.dumps(config, indent=1).encode()
    members[f"{prefix}/{CARD_FILE}"] = read_model_card(run).encode()
    for name in RUN_FILES[1:]:
        if name != CARD_FILE and (run.path / name).is_file():
            members[f"{prefix}/{name}"] = (run.path / name).read_bytes()
    return members


def write_pack(run_dir: str | Path, out: str | Path) -> dict:
    """Packs a run directory (and the runs it builds on) into one file; returns its manifest."""
    run = RunDir.open(run_dir)
    members = run_files(run, "run")
    manifest = {"format": FORMAT, "version": VERSION, "run": run.path.name,
                "packed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "model_sha256": model_checksum(run),
                "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(MANIFEST, json.dumps(manifest, indent=1))
        for name, data in sorted(members.items()):
            z.writestr(name, data)
    os.replace(partial, out)
    return manifest


def read_manifest(z: zipfile.ZipFile, path: Path) -> dict:
    """The checked manifest of an open pack: its format, and members that are exactly the listed ones."""
    try:
        manifest = json.loads(z.read(MANIFEST))
    except (KeyError, ValueError) as exc:
        raise PackError(f"{path} is a zip file but not a model pack (no readable {MANIFEST}: {exc})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise PackError(f"{path} is a {manifest.get('format')!r} version {manifest.get('version')!r} file; this "
                        f"version of iaa reads {FORMAT!r} version {VERSION}")
    names = {i.filename for i in z.infolist()} - {MANIFEST}
    listed = set(manifest.get("files") or {})
    odd = sorted(n for n in names | listed if not _MEMBER.match(n))
    if odd or names != listed:
        raise PackError(f"{path} holds members outside a pack's layout or its manifest "
                        f"({', '.join((odd or sorted(names ^ listed))[:3])}); refusing it")
    total = sum(i.file_size for i in z.infolist())
    if total > MAX_UNPACKED_GB * 1e9:
        raise PackError(f"{path} would unpack to {total / 1e9:.1f} GB > {MAX_UNPACKED_GB:g} GB; refusing it")
    return manifest


def open_pack(path: str | Path, cache: str | Path | None = None) -> Path:
    """The run directory of a pack, unpacked once (checked member by member) into the pack cache.

    Raises:
        PackError: not a pack, an unknown format version, members outside the layout, a checksum mismatch.
    """
    path = Path(path)
    digest = sklearn_files.sha256_of(path)
    root = Path(cache or os.environ.get("IAA_PACK_CACHE") or Path.home() / ".cache" / "mlsp-iaa" / "packs")
    target = root / digest[:32]
    done = [p.parent for p in target.glob(f"*/{RunDir.CONFIG}")]
    if done:
        return done[0]
    try:
        z = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise PackError(f"{path} is neither a run directory nor a model pack (not a zip file)") from None
    with z:
        manifest = read_manifest(z, path)
        run_name = _run_name(manifest)
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".unpacking-"))
        try:
            for name, expected in manifest["files"].items():
                data = z.read(name)
                if hashlib.sha256(data).hexdigest() != expected:
                    raise PackError(f"{path}: {name} does not match its sha256 in {MANIFEST}; the file is damaged "
                                    f"or was changed: get it again")
                dest = tmp / name.replace("run/", f"{run_name}/", 1)  # the run keeps its name on disk
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
            if target.exists():  # another process unpacked the same pack meanwhile
                shutil.rmtree(tmp)
            else:
                os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target / run_name


def _run_name(manifest: dict) -> str:
    name = str(manifest.get("run") or "")
    return name if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", name) else "run"


def is_pack(path: str | Path) -> bool:
    """Whether `path` is a file in zip format (a pack, or something claiming to be one)."""
    return Path(path).is_file() and zipfile.is_zipfile(path)
