"""The store's schema, owned here alone: its documented layout, attribute keys, status codes and the records
written into its attributes. Readers (`features.store`), the writer (`features.store_writer`) and the
extraction stage (`pipeline.extraction`) take every key and record from this module.

Layout (design.md section 6)::

    attrs            schema_version, settings (what made the store), backbone, weights identity,
                     blocks with channel offsets, kinds with shapes, views, preprocessing, versions
    ids (N,)         split (N,)   path (N,)   width (N,)   height (N,)
    labels/mos (N,)  labels/hist (N, K) when the dataset has vote histograms
    labels/attributes (N, A) attribute scores, names in attrs dataset.labels (schema 2, when the dataset has them)
    labels/rating_image, rating_rater, rating_score (R,): individual ratings with rater ids (schema 2)
    labels/group (N,) string: the group of each image, when the dataset names groups (a folder's `group` column)
    status (N,)      0 pending, 1 done, 2 failed;  reason (N,) why an image failed
    features/<kind>  (N, V, ...) float16, one chunk per view of one image

    kind_status/<kind> (N,) status of kinds added to a finished store (`grown`) or of a further backbone's
    groups           attrs: further backbones' kinds ({backbone: extraction record}; `features.groups`)

Root attributes: `root_record`; each growth adds to `grown` (`grown_record`), each append to `appended`
(`appended_record`); `appending` is present while rows are being appended, `initialized` once the arrays
exist, `compression` names the feature arrays' codec (`features.codecs`).
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional

from features.core.errors import IAAError

SCHEMA_VERSION = 3  # 2: optional attribute and rating labels; 3: kinds record their pooling revision
# (wide/SPP maps under the grid size: TF area weights, no replication). Older stores open unchanged.
PENDING, DONE, FAILED = 0, 1, 2
STATUS_NAMES = {PENDING: "pending", DONE: "done", FAILED: "failed"}
KIND_STATUS = "kind_status"  # group of per-kind status arrays of kinds added to a finished store
HDF5_SUFFIXES = (".h5", ".hdf5")
EXTRACTION_KEYS = ("schema_version", "settings", "backbone", "weights", "blocks", "last_block", "kinds", "views",
                   "view_set", "augmentation_order", "preprocessing", "max_side", "resize", "precision")
INITIALIZED = "initialized"
GROUPS = "groups"  # further backbones: {backbone: its extraction record, settings and kinds}
APPENDING = "appending"  # attribute present while rows are being appended (a rerun finishes the append)
PER_IMAGE_LABELS = ("attributes", "group", "tags")  # extra labels with one row per image (the others are long format)
PER_IMAGE_ARRAYS = ("ids", "split", "path", "width", "height", "status", "reason", "labels/mos")
OPTIONAL_LABELS = ("hist", "attributes", "rating_image", "rating_rater", "rating_score", "group", "tags")


class StoreError(IAAError):
    """A store that is missing, unfinished, damaged or does not fit the request."""


def timestamp() -> str:
    """UTC time as the store's records write it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def root_record(*, settings: dict, backbone: str, weights: dict, described: dict, view_set: str, task_size: int,
                compression: str, dataset: dict, versions: dict) -> dict:
    """The root attributes of a new store.

    Args:
        settings: what made the store (a rerun with others is refused).
        backbone, weights: the backbone's name and weights identity.
        described: the extraction job's own record (blocks, kinds with shapes, views, preprocessing, ...).
        view_set, task_size, compression: the view set's name, images per task/shard, the features' codec.
        dataset: name, root, n, splits, scale, label sources, notes and label description.
        versions: package versions that wrote it.
    """
    return {"schema_version": SCHEMA_VERSION, "settings": settings, "backbone": backbone, "weights": weights,
            **described, "view_set": view_set, "task_size": task_size, "compression": compression,
            "dataset": dataset, "status_codes": {str(k): v for k, v in STATUS_NAMES.items()},
            "versions": versions, "created": timestamp()}


def grown_record(attrs: dict, added: List[str], described_kinds: Dict[str, dict], versions: dict) -> dict:
    """The attributes that change when kinds of the same backbone are added to a finished store."""
    settings = {**attrs["settings"], "features": list(attrs["settings"]["features"]) + list(added)}
    grown = list(attrs.get("grown", [])) + [{"kinds": list(added), "at": timestamp(), "versions": versions}]
    kinds = {**attrs["kinds"], **{k: described_kinds[k] for k in added}}
    return {"settings": settings, "kinds": kinds, "grown": grown}


def appended_record(attrs: dict, n_before: int, n_after: int, settings: dict, dataset: dict,
                    versions: dict) -> dict:
    """The attributes that change when a dataset's new images are appended to a store."""
    appended = list(attrs.get("appended", [])) + [{"n_before": n_before, "n_after": n_after, "at": timestamp(),
                                                    "versions": versions}]
    return {"settings": settings, "dataset": dataset, "appended": appended}


def group_record(attrs: dict, backbone: str, fresh: dict) -> dict:
    """The attributes that change when a further backbone's kinds join the store as a group: `groups` gains
    the backbone's extraction record (from `fresh`, the `root_record` its own store would have had)."""
    record = {key: fresh[key] for key in EXTRACTION_KEYS if key in fresh}
    record.update(created=fresh["created"], versions=fresh["versions"])
    return {GROUPS: {**attrs.get(GROUPS, {}), backbone: record}}


def compacted_record(attrs: dict, compression: str, initialized: bool) -> dict:
    """The attributes of a store rewritten with another codec (`iaa compact`): its own, with the codec."""
    return {**attrs, INITIALIZED: initialized, "compression": compression}


def rows_before_append(attrs: dict, n: int) -> int:
    """Rows the store held before an append in progress (all `n` when none is)."""
    return int(attrs.get(APPENDING, {}).get("n_before", n))


def stored_scale(attrs: dict) -> Optional[tuple]:
    """(low, high) of the MOS as recorded (AVA's 1-10 for stores that do not say)."""
    lo, hi = attrs.get("dataset", {}).get("scale", (1.0, 10.0))
    return float(lo), float(hi)
