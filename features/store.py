"""Self-describing feature stores: one schema, two engines (Zarr v3 and HDF5).

Layout (design.md section 6)::

    attrs            schema_version, settings (what made the store), backbone, weights identity,
                     blocks with channel offsets, kinds with shapes, views, preprocessing, versions
    ids (N,)         split (N,)   path (N,)   width (N,)   height (N,)
    labels/mos (N,)  labels/hist (N, K) when the dataset has vote histograms
    status (N,)      0 pending, 1 done, 2 failed;  reason (N,) why an image failed
    features/<kind>  (N, V, ...) float16, one chunk per view of one image

Writing is done in tasks of `task_size` consecutive images. A task owns whole Zarr shards and whole
chunks of the small per-image arrays, writes its features first and its `status` chunk last, so
a crash loses at most the tasks in flight and rewriting a task is harmless (zarr-python replaces
files atomically; concurrent partial writes to one shard would lose rows, design.md section 12).
HDF5 files are not crash-safe while being written, so an HDF5 store is extracted into a Zarr
staging directory next to it and converted in one pass (then renamed into place) at the end.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from features.errors import IAAError

SCHEMA_VERSION = 1
PENDING, DONE, FAILED = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", DONE: "done", FAILED: "failed"}
MAX_TASK_BYTES = 256 << 20
MAX_TASK_IMAGES = 64
HDF5_SUFFIXES = (".h5", ".hdf5")


class StoreError(IAAError):
    """A store that is missing, unfinished, damaged or does not fit the request."""


def engine_for(path: str | Path, engine: Optional[str] = None) -> str:
    suffix_engine = "hdf5" if str(path).lower().endswith(HDF5_SUFFIXES) else "zarr"
    if engine is None:
        return suffix_engine
    if engine not in ("zarr", "hdf5"):
        raise StoreError(f"unknown store engine {engine!r}: expected zarr or hdf5")
    if engine != suffix_engine:
        want = "a .h5/.hdf5 file" if engine == "hdf5" else "a directory not ending in .h5/.hdf5"
        raise StoreError(f"--engine {engine} needs --store to be {want}; got {path}")
    return engine


def staging_path(path: str | Path) -> Path:
    """Where an HDF5 store is written before its final conversion."""
    return Path(str(path) + ".staging.zarr")


@dataclass(frozen=True)
class StoreLayout:
    """Array shapes of a store."""

    n: int
    n_views: int
    kinds: Dict[str, Tuple[int, ...]]  # per-view shape of each kind
    task_size: int
    hist_bins: Optional[int] = None

    @staticmethod
    def choose_task_size(n: int, n_views: int, kinds: Dict[str, Tuple[int, ...]]) -> int:
        """Images per task/shard: bounded in bytes, and small enough that small sets get several."""
        per_image = max(n_views * int(np.prod(s)) * 2 for s in kinds.values())
        by_bytes = max(1, MAX_TASK_BYTES // per_image)
        return int(max(1, min(MAX_TASK_IMAGES, by_bytes, math.ceil(n / 8))))

    def feature_bytes(self) -> int:
        return sum(self.n * self.n_views * int(np.prod(s)) * 2 for s in self.kinds.values())

    def tasks(self) -> List[Tuple[int, int]]:
        return [(s, min(s + self.task_size, self.n)) for s in range(0, self.n, self.task_size)]


def manifest_fingerprint(ids: Sequence[str], split: Sequence[str], mos: np.ndarray,
                         hist: Optional[np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update("\n".join(ids).encode())
    h.update("\n".join(split).encode())
    h.update(np.ascontiguousarray(mos, dtype=np.float32).tobytes())
    if hist is not None:
        h.update(np.ascontiguousarray(hist, dtype=np.float32).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Creation and writing (always Zarr: the target itself, or the staging area of an HDF5 store)


def create_zarr(path: Path, layout: StoreLayout, attrs: dict, ids, split, paths, mos, hist) -> None:
    """Creates every array up front (empty features) and marks the store initialised last."""
    import zarr

    if path.exists():
        shutil.rmtree(path)
    root = zarr.open_group(str(path), mode="w", attributes={**attrs, "initialized": False})
    n, t = layout.n, layout.task_size
    full = (max(n, 1),)
    root.create_array("ids", shape=(n,), dtype=str, chunks=full)[:] = np.asarray(ids, dtype=str)
    root.create_array("split", shape=(n,), dtype=str, chunks=full)[:] = np.asarray(split, dtype=str)
    root.create_array("path", shape=(n,), dtype=str, chunks=full)[:] = np.asarray(paths, dtype=str)
    labels = root.require_group("labels")
    labels.create_array("mos", shape=(n,), dtype="float32", chunks=full, fill_value=np.nan)[:] = mos
    if hist is not None:
        k = hist.shape[1]
        labels.create_array("hist", shape=(n, k), dtype="float32", chunks=(max(n, 1), k))[:] = hist
    for name, dtype, fill in (("status", "int8", PENDING), ("width", "int32", 0), ("height", "int32", 0)):
        root.create_array(name, shape=(n,), dtype=dtype, chunks=(t,), fill_value=fill)
    root.create_array("reason", shape=(n,), dtype=str, chunks=(t,), fill_value="")
    feats = root.require_group("features")
    for kind, shape in layout.kinds.items():
        feats.create_array(
            kind,
            shape=(n, layout.n_views) + tuple(shape),
            dtype="float16",
            chunks=(1, 1) + tuple(shape),
            shards=(t, layout.n_views) + tuple(shape),
            fill_value=np.nan,
            compressors=None,
        )
    root.attrs.update({"initialized": True})


def write_task(zarr_path: str, start: int, stop: int, features: Dict[str, np.ndarray],
               status: np.ndarray, reason: Sequence[str], width: np.ndarray, height: np.ndarray) -> None:
    """Writes one task's rows: whole shards of features first, the status chunk last (commit)."""
    import zarr

    root = zarr.open_group(zarr_path, mode="r+")
    for kind, values in features.items():
        root[f"features/{kind}"][start:stop] = values
    root["width"][start:stop] = width
    root["height"][start:stop] = height
    root["reason"][start:stop] = np.asarray(reason, dtype=str)
    root["status"][start:stop] = status


def read_zarr_attrs(path: Path) -> Optional[dict]:
    """The root attributes of a Zarr store, or None if there is no initialised store there.

    Raises:
        StoreError: a store that exists but cannot be read (permissions, damaged metadata): never
            reported as "no store", which would invite overwriting it.
    """
    import zarr

    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except FileNotFoundError:  # also zarr's GroupNotFoundError: nothing there, or not a group
        return None
    except PermissionError as exc:
        raise StoreError(f"cannot read the store {path}: {exc.strerror or exc}; check its permissions") from None
    except ValueError as exc:  # json.JSONDecodeError and zarr's metadata errors
        raise StoreError(f"the store {path} is damaged: its metadata cannot be parsed ({exc}). Restore it, "
                         f"or start over with --overwrite") from None
    return attrs if attrs.get("initialized") else None


def pending_tasks(zarr_path: Path, layout: StoreLayout, retry_failed: bool = False) -> List[Tuple[int, int]]:
    """Tasks with an image not yet done (nor failed, unless `retry_failed`)."""
    import zarr

    status = np.asarray(zarr.open_group(str(zarr_path), mode="r")["status"][:])
    todo = []
    for start, stop in layout.tasks():
        s = status[start:stop]
        open_ = (s == PENDING) | ((s == FAILED) if retry_failed else False)
        if open_.any():
            todo.append((start, stop))
    return todo


def finalize_hdf5(zarr_path: Path, h5_path: Path) -> None:
    """Copies a finished Zarr staging store into an HDF5 file (block by block), then renames it."""
    import h5py
    import zarr

    src = zarr.open_group(str(zarr_path), mode="r")
    tmp = Path(f"{h5_path}.tmp-{os.getpid()}")
    str_dt = h5py.string_dtype()
    with h5py.File(tmp, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = json.dumps(value)
        dst.attrs["_json_attrs"] = True

        def copy(name: str, arr) -> None:
            if arr.dtype.kind in "TUO" or str(arr.dtype).startswith("StringDType"):
                dst.create_dataset(name, data=np.asarray(arr[:], dtype=object), dtype=str_dt)
                return
            chunks = tuple(arr.chunks) if arr.ndim > 1 else None
            ds = dst.create_dataset(name, shape=arr.shape, dtype=arr.dtype, chunks=chunks,
                                    fillvalue=arr.fill_value)
            step = arr.shards[0] if getattr(arr, "shards", None) else max(arr.shape[0], 1)
            for s in range(0, arr.shape[0], step):
                ds[s: s + step] = arr[s: s + step]

        for name, arr in src.arrays():
            copy(name, arr)
        for gname, group in src.groups():
            for name, arr in group.arrays():
                copy(f"{gname}/{name}", arr)
    os.replace(tmp, h5_path)


# --------------------------------------------------------------------------------------------
# Reading: one API for both engines


class FeatureStore:
    """Read access to a finished or in-progress store of either engine.

    The store's attribute schema is read through this class (kinds, shapes, blocks, bins, scale,
    identity); callers never index `attrs` for those.

    Args:
        path: a Zarr store directory or an `.h5`/`.hdf5` file.
    Raises:
        StoreError: no store there, an unfinished HDF5 store, or one that cannot be read.

    Example:
        with FeatureStore("stores/demo_vgg16_hed.zarr") as fs:
            x = fs.features("mlsp_narrow")[10, 3]   # image 10, view 3, read alone
            y = fs.mos[fs.split == "train"]
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.engine = engine_for(self.path)
        if self.engine == "hdf5":
            if not self.path.is_file():
                if staging_path(self.path).exists():
                    raise StoreError(
                        f"{self.path} is not finished: its extraction stopped before the final HDF5 "
                        f"conversion (staging data in {staging_path(self.path)}). Rerun the same "
                        f"`iaa extract` command to finish it."
                    )
                raise StoreError(f"no HDF5 store at {self.path}")
            import h5py

            try:
                self._root = h5py.File(self.path, "r")
            except OSError as exc:
                raise StoreError(f"cannot open the HDF5 store {self.path}: {exc}. It is damaged or not an "
                                 f"HDF5 file; restore it, or re-extract with --overwrite") from None
            self.attrs = {k: json.loads(v) for k, v in self._root.attrs.items() if k != "_json_attrs"}
        else:
            attrs = read_zarr_attrs(self.path)
            if attrs is None:
                raise StoreError(
                    f"no initialised Zarr feature store at {self.path} (missing, or creation was "
                    f"interrupted: rerun `iaa extract`)"
                )
            import zarr

            self._root = zarr.open_group(str(self.path), mode="r")
            self.attrs = attrs

    # context manager -------------------------------------------------------------------------
    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.engine == "hdf5":
            self._root.close()

    # data ------------------------------------------------------------------------------------
    def _strings(self, name: str) -> np.ndarray:
        arr = self._root[name]
        values = arr.asstr()[:] if self.engine == "hdf5" else arr[:]
        return np.asarray(values, dtype=object).astype(str)

    def _numbers(self, name: str) -> np.ndarray:
        return np.asarray(self._root[name][:])

    @property
    def n(self) -> int:
        return int(self._root["ids"].shape[0])

    @property
    def ids(self) -> np.ndarray:
        return self._strings("ids")

    @property
    def split(self) -> np.ndarray:
        return self._strings("split")

    @property
    def paths(self) -> np.ndarray:
        return self._strings("path")

    @property
    def reasons(self) -> np.ndarray:
        return self._strings("reason")

    @property
    def mos(self) -> np.ndarray:
        return self._numbers("labels/mos")

    @property
    def hist(self) -> Optional[np.ndarray]:
        return self._numbers("labels/hist") if "hist" in self._root["labels"] else None

    @property
    def status(self) -> np.ndarray:
        return self._numbers("status")

    @property
    def width(self) -> np.ndarray:
        return self._numbers("width")

    @property
    def height(self) -> np.ndarray:
        return self._numbers("height")

    @property
    def kinds(self) -> List[str]:
        """Feature kinds the store holds, sorted."""
        return sorted(self.attrs.get("kinds", {}))

    def kind_shape(self, kind: str) -> Tuple[int, ...]:
        """Per-view shape of a kind, e.g. `(1472,)` or `(5, 5, 1472)`."""
        self.features(kind)  # refuses an unknown kind, naming the store's
        return tuple(int(d) for d in self.attrs["kinds"][kind]["shape"])

    @property
    def n_views(self) -> int:
        return int(self.features(self.kinds[0]).shape[1]) if self.kinds else 0

    @property
    def blocks(self) -> List[Tuple[str, int, int]]:
        """`(name, start, stop)` channel range of each MLSP block inside the concatenated features."""
        return [(b["name"], int(b["offset"]), int(b["offset"]) + int(b["channels"]))
                for b in self.attrs.get("blocks", [])]

    @property
    def n_bins(self) -> int:
        """Histogram bins K of `labels/hist` (0 when the dataset has only mean scores)."""
        return int(self._root["labels/hist"].shape[1]) if "hist" in self._root["labels"] else 0

    @property
    def scale(self) -> Tuple[float, float]:
        """(low, high) of the dataset's score scale (AVA's 1-10 when a store does not say)."""
        lo, hi = self.attrs.get("dataset", {}).get("scale", (1.0, 10.0))
        return float(lo), float(hi)

    @property
    def settings(self) -> dict:
        """The extraction settings that made the store (a rerun with others is refused)."""
        return dict(self.attrs.get("settings", {}))

    @property
    def task_size(self) -> int:
        """Images per extraction task (one Zarr shard)."""
        return int(self.attrs["task_size"])

    def identity(self) -> dict:
        """What a run records about the store it trained on: path, backbone, weights, settings, views."""
        return {"path": str(self.path.resolve()), "backbone": self.attrs.get("backbone"),
                "weights": self.attrs.get("weights"), "settings": self.attrs.get("settings"),
                "view_set": self.attrs.get("view_set"), "dataset": self.attrs.get("dataset", {}).get("name")}

    def open_tensorstore(self, kind: str, cache_bytes: int):
        """The Zarr array of a kind through tensorstore (parallel reads without the GIL; Zarr only)."""
        import tensorstore as ts

        if self.engine != "zarr":
            raise StoreError(f"{self.path} is an HDF5 store; tensorstore reads Zarr stores only")
        self.features(kind)
        spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(self.path / "features" / kind)},
                "context": {"cache_pool": {"total_bytes_limit": int(cache_bytes)}}}
        return ts.open(spec, read=True).result()

    def features(self, kind: str):
        """The `(N, V, ...)` float16 array of a kind, lazily (zarr.Array or h5py.Dataset)."""
        if kind not in self.attrs.get("kinds", {}):
            raise StoreError(
                f"store {self.path} has no feature kind {kind!r}; it has {', '.join(self.kinds) or 'none'}"
            )
        return self._root[f"features/{kind}"]

    def counts(self) -> Dict[str, int]:
        s = self.status
        return {name: int((s == code).sum()) for code, name in STATUS_NAMES.items()}

    def failures(self) -> List[Tuple[str, str]]:
        s, ids, reasons = self.status, self.ids, self.reasons
        return [(ids[i], reasons[i]) for i in np.flatnonzero(s == FAILED)]

    def info(self) -> dict:
        """What `iaa store-info --json` prints."""
        arrays = {}

        def visit(name):
            a = self._root[name]
            chunks = a.chunks if a.chunks is not None else None
            dtype = "string" if a.dtype.kind in "TOS" or "String" in str(a.dtype) else str(a.dtype)
            arrays[name] = {"shape": list(a.shape), "dtype": dtype,
                            "chunks": list(chunks) if chunks else None}

        names = ["ids", "split", "path", "width", "height", "status", "reason", "labels/mos"]
        names += ["labels/hist"] if self.hist is not None else []
        names += [f"features/{k}" for k in self.kinds]
        for name in names:
            visit(name)
        return {"path": str(self.path), "engine": self.engine, "n_images": self.n,
                "counts": self.counts(), "arrays": arrays, "attributes": self.attrs}


def open_store(path: str | Path) -> FeatureStore:
    return FeatureStore(path)

