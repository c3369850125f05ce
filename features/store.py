"""Reading self-describing feature stores: one schema (`features.store_schema`), two engines (Zarr v3 and
HDF5). `FeatureStore` opens a store and reads its arrays; its labels come as an immutable view
(`features.store_labels`), its kind names resolve through `features.kind_index`. Writing is
`features.store_writer` (tasks of whole shards, status last, HDF5 through a Zarr staging area).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from features import groups as fg
from features.kind_index import KindIndex
from features.location import exists, is_url, join, location, reaching
from features.store_labels import StoreLabels
from features.store_schema import (DONE, FAILED, HDF5_SUFFIXES, INITIALIZED, KIND_STATUS, OPTIONAL_LABELS,  # noqa: F401
                                   PENDING, PER_IMAGE_ARRAYS, STATUS_NAMES, StoreError)


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


def read_zarr_attrs(path: Path) -> Optional[dict]:
    """The root attributes of a Zarr store, or None if there is no initialised store there.

    Raises:
        StoreError: a store that exists but cannot be read (permissions, damaged metadata): never
            reported as "no store", which would invite overwriting it.
    """
    import zarr

    if is_url(path) and not exists(join(path, "zarr.json")):  # one request first: zarr's own would fail many at once
        return None
    try:
        with reaching(path):
            attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except FileNotFoundError:  # also zarr's GroupNotFoundError: nothing there, or not a group
        return None
    except PermissionError as exc:
        raise StoreError(f"cannot read the store {path}: {exc.strerror or exc}; check its permissions") from None
    except ValueError as exc:  # json.JSONDecodeError and zarr's metadata errors
        raise StoreError(f"the store {path} is damaged: its metadata cannot be parsed ({exc}). Restore it, "
                         f"or start over with --overwrite") from None
    return attrs if attrs.get(INITIALIZED) else None


class FeatureStore(StoreLabels, KindIndex):
    """Read access to a finished or in-progress store of either engine.

    The store's attribute schema is read through this class (kinds, shapes, blocks, bins, scale,
    identity); callers never index `attrs` for those.

    Args:
        path: a Zarr store directory, an fsspec URL of one (`s3://bucket/ava.zarr`; `features.location`),
            or an `.h5`/`.hdf5` file.
    Raises:
        StoreError: no store there, an unfinished HDF5 store, or one that cannot be read.

    Example:
        with FeatureStore("stores/demo_efficientnet_lite0.zarr") as fs:
            x = fs.features("mlsp_narrow")[10, 3]   # image 10, view 3, read alone
            y = fs.mos[fs.split == "train"]
    """

    def __init__(self, path: str | Path):
        self.path = location(path)
        self.engine = engine_for(self.path)
        if self.engine == "hdf5" and is_url(self.path):
            raise StoreError(f"{self.path}: HDF5 stores are local files; on object storage use a Zarr store "
                             f"(a URL not ending in .h5/.hdf5)")
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
    def status(self) -> np.ndarray:
        return self._numbers("status")

    @property
    def width(self) -> np.ndarray:
        return self._numbers("width")

    @property
    def height(self) -> np.ndarray:
        return self._numbers("height")

    @property
    def n_views(self) -> int:
        return int(self.features(self.kinds[0]).shape[1]) if self.kinds else 0

    @property
    def settings(self) -> dict:
        """The extraction settings that made the store (a rerun with others is refused)."""
        return dict(self.attrs.get("settings", {}))

    @property
    def compression(self) -> str:
        """The `features.codecs` name its feature arrays are written with ("none" for older stores)."""
        return str(self.attrs.get("compression", "none"))

    @property
    def task_size(self) -> int:
        """Images per extraction task (one Zarr shard)."""
        return int(self.attrs["task_size"])

    def identity(self) -> dict:
        """What a run records about the store it trained on: path, backbone, weights, settings, views."""
        path = self.path if is_url(self.path) else str(self.path.resolve())
        return {"path": path, "backbone": self.attrs.get("backbone"),
                "weights": self.attrs.get("weights"), "settings": self.attrs.get("settings"),
                "view_set": self.attrs.get("view_set"), "dataset": self.attrs.get("dataset", {}).get("name")}

    def open_tensorstore(self, kind: str, cache_bytes: int):
        """The Zarr array of a kind through tensorstore (parallel reads without the GIL; Zarr only)."""
        import tensorstore as ts

        if self.engine != "zarr" or is_url(self.path):
            raise StoreError(f"{self.path} is not a local Zarr store; tensorstore reads those only here")
        self.features(kind)
        context = ts.Context({"cache_pool": {"total_bytes_limit": int(cache_bytes)}})
        arrays = [ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": str(self.path / key)}},
                          read=True, context=context).result() for key in self._keys(kind)]
        return arrays[0] if len(arrays) == 1 else ts.concat(arrays, axis=-1)

    def features(self, kind: str):
        """The `(N, V, ...)` float16 array of a kind, lazily (zarr.Array or h5py.Dataset; a concatenation: a
        `features.groups.ConcatFeatures` view of its parts)."""
        keys = self._keys(kind)
        if len(keys) == 1:
            return self._root[keys[0]]
        try:
            return fg.ConcatFeatures({part: self._root[key] for part, key in zip(fg.parts(kind), keys)})
        except ValueError as exc:
            raise StoreError(f"store {self.path}: {exc}") from None

    def status_of(self, kind: str) -> np.ndarray:
        """(N,) status of a kind's features: its own for kinds added later (`iaa extract` growing a store, or a
        further backbone's), else the store's; of a concatenation, done where every part is done."""
        statuses = []
        for part, key in zip(fg.parts(kind), self._keys(kind)):
            own = KIND_STATUS + key[len("features"):]
            statuses.append(self._numbers(own) if KIND_STATUS in self._root and own[len(KIND_STATUS) + 1:]
                            in self._root[KIND_STATUS] else self.status)
        return statuses[0] if len(statuses) == 1 else fg.combined_status(statuses, DONE, FAILED, PENDING)

    @property
    def grown_kinds(self) -> List[str]:
        """Kinds added to the store after its first extraction (each with its own status)."""
        if KIND_STATUS not in self._root:
            return []
        group = self._root[KIND_STATUS]
        return sorted(group.array_keys() if self.engine == "zarr" else group.keys())

    def counts(self, kind: Optional[str] = None) -> Dict[str, int]:
        """{"pending", "done", "failed"} image counts of the store (or of one kind's features)."""
        s = self.status if kind is None else self.status_of(kind)
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

        names = list(PER_IMAGE_ARRAYS) + [f"labels/{k}" for k in OPTIONAL_LABELS if k in self._root["labels"]]
        names += [f"features/{k}" for k in self.kinds] + [f"{KIND_STATUS}/{k}" for k in self.grown_kinds]
        names += [f"{KIND_STATUS}/{k}" for k in self.kinds if "/" in k]
        for name in names:
            visit(name)
        return {"path": str(self.path), "engine": self.engine, "n_images": self.n,
                "counts": self.counts(), "arrays": arrays, "attributes": self.attrs}


def open_store(path: str | Path) -> FeatureStore:
    return FeatureStore(path)

