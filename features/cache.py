"""A feature cache for scoring: the features of photos already seen, keyed by file content.

Layout::

    cache.json                    format and the extraction it holds (backbone, weights, views, ...)
    <kind>/<ab>/<sha256>.npy      (V, ...) float16 features of one photo (ab = first two hex digits)

Scoring the same photos again, with any head trained on features of the same extraction, reads them
here instead of running the backbone. Keys are the sha256 of the file's bytes: a renamed photo still
hits, an edited one does not. Files are written whole (temporary name, then rename), so a killed run
leaves no half-written entry; a cache made by another extraction is refused, naming the difference.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from features.core.errors import UsageError

CACHE_FORMAT = 1
IDENTITY_KEYS = ("backbone", "blocks", "views", "preprocessing", "max_side")
OPTIONAL_IDENTITY_KEYS = ("resize",)  # recorded only when set, so caches made before them keep their identity


class CacheError(UsageError):
    """A cache directory made by another extraction, or one that cannot be read."""


def cache_identity(extraction: dict) -> dict:
    """What two extractions must share for their features to be interchangeable (every part's, for a kind
    joined across backbones: `{"parts": {part: record}}`)."""
    if "parts" in extraction:
        return {"parts": {name: cache_identity(record) for name, record in extraction["parts"].items()}}
    weights = extraction.get("weights") or {}
    kept = {k: weights[k] for k in ("kind", "sha256", "files") if weights.get(k)}
    if weights.get("kind") != "path":  # a local file may move; its digest identifies it
        kept["spec"] = weights.get("spec")
    if weights.get("kind") == "random":
        kept["keras_version"] = weights.get("keras_version")
    return {"weights": kept, **{k: extraction.get(k) for k in IDENTITY_KEYS},
            **{k: extraction[k] for k in OPTIONAL_IDENTITY_KEYS if extraction.get(k)}}


def file_key(path: str | Path) -> Optional[str]:
    """sha256 of a file's bytes, or None when it cannot be read (scoring then reports why)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


class FeatureCache:
    """Per-photo features of one extraction in a directory.

    Args:
        path: the cache directory (created when missing).
        extraction: the extraction record of the run that uses it (`FeatureStore.extraction()`).
    Raises:
        CacheError: the directory holds another extraction's features, or is not a cache.
    """

    MANIFEST = "cache.json"

    def __init__(self, path: str | Path, extraction: dict):
        self.path = Path(path)
        identity = cache_identity(extraction)
        manifest = self.path / self.MANIFEST
        if manifest.is_file():
            try:
                stored = json.loads(manifest.read_text())
            except json.JSONDecodeError as exc:
                raise CacheError(f"{manifest} is damaged ({exc}); remove the cache directory") from None
            diffs = [f"{k}: cache has {stored['identity'].get(k)!r}, this run needs {identity.get(k)!r}"
                     for k in identity if stored.get("identity", {}).get(k) != identity[k]]
            if diffs:
                raise CacheError(f"the feature cache {self.path} holds features of another extraction:\n  "
                                 + "\n  ".join(diffs) + "\nuse another --store for this run")
        elif self.path.exists() and any(self.path.iterdir()):
            raise CacheError(f"{self.path} exists and is not a feature cache (no {self.MANIFEST}); choose "
                             f"another --store")
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            manifest.write_text(json.dumps({"format": CACHE_FORMAT, "identity": identity}, indent=2))

    def _file(self, key: str, kind: str) -> Path:
        return self.path / kind / key[:2] / f"{key}.npy"

    def get(self, key: Optional[str], kind: str) -> Optional[np.ndarray]:
        """A photo's (V, ...) features of a kind, or None when not cached."""
        if key is None:
            return None
        path = self._file(key, kind)
        try:
            return np.load(path, allow_pickle=False)
        except (FileNotFoundError, ValueError, OSError):
            return None

    def put(self, key: Optional[str], feats: Dict[str, np.ndarray]) -> None:
        """Stores a photo's features of every kind given."""
        if key is None:
            return
        for kind, value in feats.items():
            path = self._file(key, kind)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, np.asarray(value, np.float16), allow_pickle=False)
            os.replace(tmp, path)
