"""Creating and writing feature stores (always Zarr: the store itself, or an HDF5 store's staging area).

Writing is done in tasks of `task_size` consecutive images. A task owns whole Zarr shards and whole
chunks of the small per-image arrays, writes its features first and its `status` chunk last, so a
crash loses at most the tasks in flight and rewriting a task is harmless (zarr-python replaces files
atomically; concurrent partial writes to one shard would lose rows, design.md section 12). HDF5 files
are not crash-safe while being written, so an HDF5 store is extracted into a Zarr staging directory
next to it and converted in one pass (then renamed into place) at the end. Reading is
`features.store.FeatureStore`'s job.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from features import location as loc
from features.codecs import get_compression
from features.store_schema import APPENDING, FAILED, INITIALIZED, KIND_STATUS, PENDING, PER_IMAGE_LABELS

MAX_TASK_BYTES = 256 << 20
MAX_TASK_IMAGES = 64


@dataclass(frozen=True)
class StoreLayout:
    """Array shapes of a store."""

    n: int
    n_views: int
    kinds: Dict[str, Tuple[int, ...]]  # per-view shape of each kind
    task_size: int
    hist_bins: Optional[int] = None
    compression: str = "none"  # features.codecs name, for the feature arrays

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
                         hist: Optional[np.ndarray], extra: Optional[Dict[str, np.ndarray]] = None) -> str:
    """sha256 of what a store's labels are made of (extra label arrays only when present, so stores
    made before they existed keep their fingerprint)."""
    h = hashlib.sha256()
    h.update("\n".join(ids).encode())
    h.update("\n".join(split).encode())
    h.update(np.ascontiguousarray(mos, dtype=np.float32).tobytes())
    if hist is not None:
        h.update(np.ascontiguousarray(hist, dtype=np.float32).tobytes())
    for name, values in sorted((extra or {}).items()):
        h.update(name.encode())
        values = np.asarray(values)
        h.update("\n".join(values.astype(str)).encode() if values.dtype.kind in "UOT" else
                 np.ascontiguousarray(values, dtype=np.float32).tobytes())
    return h.hexdigest()


def create_zarr(path: loc.Location, layout: StoreLayout, attrs: dict, ids, split, paths, mos, hist,
                extra_labels: Optional[Dict[str, np.ndarray]] = None) -> None:
    """Creates every array up front (empty features) and marks the store initialised last.

    `extra_labels` are written as `labels/<name>` (attributes, individual ratings), each in one chunk.
    """
    import zarr

    loc.remove(path)
    root = zarr.open_group(str(path), mode="w", attributes={**attrs, INITIALIZED: False})
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
    for name, values in (extra_labels or {}).items():
        values = np.asarray(values)
        dtype = str if values.dtype.kind in "UOT" else values.dtype
        arr = labels.create_array(name, shape=values.shape, dtype=dtype,
                                  chunks=(max(values.shape[0], 1),) + values.shape[1:])
        if values.size:
            arr[:] = values
    for name, dtype, fill in (("status", "int8", PENDING), ("width", "int32", 0), ("height", "int32", 0)):
        root.create_array(name, shape=(n,), dtype=dtype, chunks=(t,), fill_value=fill)
    root.create_array("reason", shape=(n,), dtype=str, chunks=(t,), fill_value="")
    _feature_arrays(root, layout)
    root.attrs.update({INITIALIZED: True})


def _feature_arrays(root, layout: StoreLayout) -> None:
    """`features/<kind>` (`features/<backbone>/<kind>` for a further backbone's group): one chunk per view of one
    image, inside shards of one task's images."""
    feats = root.require_group("features")
    n, t = layout.n, layout.task_size
    for kind, shape in layout.kinds.items():
        parent, name = _parent(feats, kind)
        parent.create_array(name, shape=(n, layout.n_views) + tuple(shape), dtype="float16",
                            chunks=(1, 1) + tuple(shape), shards=(t, layout.n_views) + tuple(shape),
                            fill_value=np.nan, compressors=get_compression(layout.compression).make(),
                            overwrite=True)


def _parent(group, key: str):
    """(the group holding `key`, created if needed, and the key's last name): "vgg16/gmp" → (group/vgg16, gmp)."""
    head, _, name = key.rpartition("/")
    return (group.require_group(head) if head else group), name


def add_kinds(zarr_path: loc.Location, layout: StoreLayout, attrs: dict) -> None:
    """Grows a finished store by the kinds of `layout` (empty; `<backbone>/<kind>` names a further backbone's
    group) with their own status arrays (`kind_status/<kind>`: images the store failed on start failed), then
    updates its attributes.

    The arrays already there are not touched; the attributes go last, so an interrupted call leaves a store
    that still opens as before and a rerun creates the arrays again.
    """
    import zarr

    root = zarr.open_group(str(zarr_path), mode="r+")
    status = np.asarray(root["status"][:])
    _feature_arrays(root, layout)
    grown = root.require_group(KIND_STATUS)
    for kind in layout.kinds:
        parent, name = _parent(grown, kind)
        arr = parent.create_array(name, shape=(layout.n,), dtype="int8", chunks=(layout.task_size,),
                                  fill_value=PENDING, overwrite=True)
        arr[:] = np.where(status == FAILED, FAILED, PENDING).astype(np.int8)
    root.attrs.update(attrs)




def append_rows(zarr_path: loc.Location, n_before: int, ids, split, paths, mos, hist,
                extra_labels: Optional[Dict[str, np.ndarray]], attrs: dict) -> None:
    """Appends images `n_before:` to a store (pending, every kind); the rows already there are not touched.

    `ids`... `hist` hold every image (store order; only rows from `n_before` are written). Per-image arrays
    grow, long-format label arrays (`extra_labels`, e.g. ratings) are rewritten whole (one chunk), then `attrs`
    are updated. The store is marked `APPENDING` (with `n_before`) until the end, so a rerun after a crash
    redoes the append from the same row.
    """
    import zarr

    root = zarr.open_group(str(zarr_path), mode="r+")
    root.attrs.update({APPENDING: {"n_before": int(n_before)}})
    n = len(ids)
    new = slice(n_before, n)
    per_image = {"ids": np.asarray(ids, dtype=str), "split": np.asarray(split, dtype=str),
                 "path": np.asarray(paths, dtype=str), "labels/mos": np.asarray(mos, np.float32)}
    if hist is not None:
        per_image["labels/hist"] = np.asarray(hist, np.float32)
    long_format = {}
    for name, values in (extra_labels or {}).items():
        values = np.asarray(values)
        (per_image if name in PER_IMAGE_LABELS else long_format)[f"labels/{name}"] = values
    for name, values in per_image.items():
        arr = root[name]
        arr.resize((n,) + tuple(arr.shape[1:]))
        arr[new] = values[new]
    for name, values in long_format.items():
        dtype = str if values.dtype.kind in "UOT" else values.dtype
        arr = root.create_array(name, shape=values.shape, dtype=dtype, chunks=(max(values.shape[0], 1),),
                                overwrite=True)
        if values.size:
            arr[:] = values
    for name in ("status", "width", "height", "reason"):
        root[name].resize((n,))
        root[name][new] = root[name].fill_value
    for kind, arr in root["features"].arrays():
        arr.resize((n,) + tuple(arr.shape[1:]))
    if KIND_STATUS in root:
        for kind, arr in root[KIND_STATUS].arrays():
            arr.resize((n,))
            arr[new] = PENDING
    root.attrs.update(attrs)
    if APPENDING in root.attrs:
        del root.attrs[APPENDING]


def write_task(zarr_path: str, start: int, stop: int, features: Dict[str, np.ndarray],
               status: np.ndarray, reason: Sequence[str], width: np.ndarray, height: np.ndarray) -> None:
    """Writes one task's rows: whole shards of features first, the status chunk last (commit)."""
    import zarr

    root = zarr.open_group(zarr_path, mode="r+")
    for kind, values in features.items():
        root[f"features/{kind}"][start:stop] = values
    grown = [k for k in features if KIND_STATUS in root and k in root[KIND_STATUS]]
    for kind in grown:  # kinds added to a finished store: only their own status
        root[f"{KIND_STATUS}/{kind}"][start:stop] = status
    if len(grown) < len(features):
        root["width"][start:stop] = width
        root["height"][start:stop] = height
        root["reason"][start:stop] = np.asarray(reason, dtype=str)
        root["status"][start:stop] = status


def pending_tasks(zarr_path: loc.Location, layout: StoreLayout, retry_failed: bool = False) -> List[Tuple[int, int]]:
    """Tasks with an image not yet done (nor failed, unless `retry_failed`) for a kind of `layout`."""
    import zarr

    root = zarr.open_group(str(zarr_path), mode="r")
    grown = root[KIND_STATUS] if KIND_STATUS in root else {}
    statuses = [np.asarray((grown[k] if k in grown else root["status"])[:]) for k in layout.kinds]
    todo = []
    for start, stop in layout.tasks():
        open_ = False
        for status in statuses:
            s = status[start:stop]
            open_ = open_ or bool(((s == PENDING) | ((s == FAILED) if retry_failed else False)).any())
        if open_:
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
