"""`iaa compact`: rewrite a finished store's feature arrays with another codec (`features.codecs`).

The copy keeps every array's shape, chunks and shards, and every attribute (plus the new `compression`);
features are copied one shard at a time, so memory stays near one task's bytes. The new store is written
beside the old one and only marked initialised at the end, so an interrupted run leaves no store that
opens; rerun it (it starts over).
"""
from __future__ import annotations

import time
from typing import Callable

from features import location as loc
from features import store as st
from features import store_schema as schema
from features.codecs import get_compression
from features.core.errors import UsageError


def compact_store(source: str, out: str, compression: str, log: Callable[[str], None] = print) -> dict:
    """Writes `out`, a copy of the Zarr store `source` with its features compressed by `compression`.

    Returns:
        {"source_bytes", "out_bytes", "seconds"} (bytes of the feature arrays as stored).
    Raises:
        StoreError, UsageError: no finished Zarr store at `source`, pending images, `out` exists, unknown codec.
    """
    import zarr

    spec = get_compression(compression)
    out = loc.location(out, absolute=True)
    with st.FeatureStore(source) as fs:
        if fs.engine != "zarr":
            raise UsageError(f"{source} is an HDF5 store; iaa compact rewrites Zarr stores")
        pending = fs.counts()["pending"]
        if pending:
            raise UsageError(f"{source} has {pending} images still to extract: finish it (rerun iaa extract) first")
        if loc.exists(out) and st.read_zarr_attrs(out) is None and loc.exists(loc.join(out, "zarr.json")):
            log(f"{out} is an interrupted copy: starting it over")
            loc.remove(out)
        if loc.exists(out):
            raise UsageError(f"{out} exists: choose another --out, or remove it")
        t0 = time.time()
        src = zarr.open_group(str(fs.path), mode="r")
        dst = zarr.open_group(str(out), mode="w", attributes=schema.compacted_record(fs.attrs, spec.name, False))
        sizes = [0, 0]
        for name, arr in _arrays(src):
            is_feature = name.startswith("features/")
            parent, leaf = _parent(dst, name)
            new = parent.create_array(leaf, shape=arr.shape, dtype=arr.dtype, chunks=arr.chunks,
                                      shards=arr.shards, fill_value=arr.fill_value,
                                      compressors=spec.make() if is_feature else arr.compressors)
            step = arr.shards[0] if arr.shards else max(arr.shape[0], 1)
            for start in range(0, arr.shape[0], step):
                new[start:start + step] = arr[start:start + step]
            if is_feature:
                sizes[0] += arr.nbytes_stored()
                sizes[1] += new.nbytes_stored()
                log(f"  {name}: {sizes[1] / max(sizes[0], 1):.3f}x so far ({time.time() - t0:.0f} s)")
        dst.attrs.update(schema.compacted_record({}, spec.name, True))
    return {"source_bytes": int(sizes[0]), "out_bytes": int(sizes[1]), "seconds": time.time() - t0}


def _arrays(group, prefix: str = ""):
    """(path, array) of every array under a group, depth first."""
    for name, arr in group.arrays():
        yield prefix + name, arr
    for name, sub in group.groups():
        yield from _arrays(sub, f"{prefix}{name}/")


def _parent(group, path: str):
    head, _, leaf = path.rpartition("/")
    return (group.require_group(head) if head else group), leaf
