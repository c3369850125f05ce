"""The store of an extraction: create it, reopen it (refusing other settings, naming them), or grow it
by feature kinds or by images appended to its dataset, writing only what is new.

`pipeline.extraction.extract` plans a run and drives it; this module decides what the store needs before the work.
"""
from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np


from features import location as loc
from features import store as st
from features import store_schema as schema
from features import store_writer as sw
from features.pooling import SPP_GRID, WIDE_SIZE, stale_pooling, stale_pooling_lines
from features.weights import build_model

from pipeline.extraction.plan import ExtractConfig, ExtractError, ExtractPlan, manifest_sha256, versions

DISK_MARGIN = 1.05


def _settings_difference(old: dict, new: dict) -> List[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            diffs.append(f"{key}: store has {old.get(key)!r}, this run asks for {new.get(key)!r}")
    return diffs


def refuse_if_different(path: loc.Location, stored: dict, settings: dict) -> None:
    """Refuses to write into a store made with other settings, naming each difference and what to do."""
    diffs = _settings_difference(stored, settings)
    if diffs:
        raise ExtractError(
            f"store {path} was made with other settings; refusing to mix them.\n  "
            + "\n  ".join(diffs)
            + "\nRerun with the store's settings to resume, choose another --store, or add --overwrite "
              "to start over."
        )


def _kinds_to_do(cfg: ExtractConfig, fs: st.FeatureStore, layout: sw.StoreLayout) -> Dict[str, Tuple[int, ...]]:
    """The kinds with images left (a store grown by kinds finishes only those); all when none has any."""
    def open_(kind):
        c = fs.counts(kind)
        return c["pending"] + (c["failed"] if cfg.retry_failed else 0)

    todo = {k: s for k, s in layout.kinds.items() if open_(k)}
    return todo or dict(layout.kinds)


def _stale_pooling_guard(cfg: ExtractConfig, path: loc.Location, fs: st.FeatureStore, log) -> int:
    """Finishing a store pooled by an older revision: the two poolings agree on block maps of at least the
    grid's size, so only images with smaller maps are failed (returns that size; 0 for a current store)."""
    stale = stale_pooling(fs.extraction())
    counts = fs.counts()
    if not stale or not counts["pending"] + (counts["failed"] if cfg.retry_failed else 0):
        return 0
    grid = WIDE_SIZE if "mlsp_wide" in stale else SPP_GRID
    lines = stale_pooling_lines(fs.extraction(), "the store")
    log("\n  ".join([f"note: finishing {path}, made by an older pooling:"] + lines)
        + f"\n  images whose block maps are under {grid}x{grid} are recorded as failed rather than mixed in "
          f"(--overwrite re-extracts every image with today's pooling)")
    return grid


def check_disk(path: loc.Location, needed: int) -> None:
    """Refuses to start when the disk under `path` has less than `needed` bytes (with a margin) free;
    object storage is not checked.
    """
    if loc.is_url(path):
        return  # object storage has no free-space figure to check against
    probe = path
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed * DISK_MARGIN > free:
        raise ExtractError(
            f"not enough disk space for {path}: about {needed / 1e9:.2f} GB still to write, "
            f"{free / 1e9:.2f} GB free on {probe}. Free space, choose another --store location, "
            f"use fewer --features (mlsp_wide is 25x mlsp_narrow), --views none, or a smaller backbone."
        )


def added_kinds(stored: dict, settings: dict) -> List[str]:
    """Kinds a run adds to a store made with the same settings otherwise ([] when it adds none)."""
    def rest(s):
        return {k: v for k, v in s.items() if k != "features"}

    old, new = list(stored.get("features") or []), list(settings["features"])
    if rest(stored) != rest(settings) or not set(old) < set(new):
        return []
    return [k for k in new if k not in old]


def _grow(cfg: ExtractConfig, p: ExtractPlan, path: loc.Location, fs: st.FeatureStore, added: List[str], log):
    """Adds kinds of the same backbone to a finished Zarr store: only their arrays are written."""
    pending = fs.counts()["pending"]
    if pending:
        raise ExtractError(f"store {path} has {pending} images still to extract with its kinds "
                           f"({', '.join(fs.settings['features'])}): finish it with those --features first, then add "
                           f"{', '.join(added)}")
    layout = sw.StoreLayout(n=fs.n, n_views=fs.n_views, kinds={k: p.layout.kinds[k] for k in added},
                            task_size=fs.task_size, hist_bins=p.layout.hist_bins, compression=fs.compression)
    check_disk(path, layout.feature_bytes())
    sw.add_kinds(path, layout, schema.grown_record(fs.attrs, added, p.job.describe()["kinds"], versions()))
    log(f"adding {', '.join(added)} to {path}: its other arrays are kept as they are")
    return layout


def _append_order(fs: st.FeatureStore, p: ExtractPlan, path: loc.Location) -> Optional[np.ndarray]:
    """Manifest positions in store order (stored images, then the dataset's new ones) when the run's dataset
    holds every stored image with unchanged labels plus new images; None when it adds none.

    Raises:
        ExtractError: stored images missing from the dataset, or their labels or splits changed.
    """
    rest = {k: v for k, v in p.settings.items() if k != "manifest_sha256"}
    if rest != {k: v for k, v in fs.settings.items() if k != "manifest_sha256"}:
        return None
    n_before = schema.rows_before_append(fs.attrs, fs.n)
    stored = list(fs.ids[:n_before])
    position = {image: i for i, image in enumerate(p.manifest.ids)}
    missing = [image for image in stored if image not in position]
    known = set(stored)
    new = [i for i, image in enumerate(p.manifest.ids) if image not in known]
    if missing and new:
        raise ExtractError(f"store {path}: {len(missing)} of its images are no longer in the dataset (e.g. "
                           f"{', '.join(missing[:3])}): a store grows by new images only. Put them back, extract "
                           f"into another --store, or add --overwrite")
    if missing or not new:
        return None
    order = np.array([position[image] for image in stored] + new)
    old = p.manifest.take(order[:n_before])
    if manifest_sha256(old) != fs.settings["manifest_sha256"]:
        raise ExtractError(f"store {path}: the dataset adds {len(new)} images but also changed the labels or "
                           f"splits of stored ones ({_first_label_change(fs, old)}); a store keeps its images' "
                           f"labels. Extract into another --store, or add --overwrite")
    return order


def _first_label_change(fs: st.FeatureStore, old) -> str:
    split, mos = np.asarray(fs.split, dtype=str), np.asarray(fs.mos, np.float64)
    for i, image in enumerate(old.ids):
        if split[i] != old.split[i]:
            return f"{image}: split {split[i]} -> {old.split[i]}"
        if not (mos[i] == old.mos[i] or (np.isnan(mos[i]) and np.isnan(old.mos[i]))):
            return f"{image}: score {mos[i]:g} -> {float(old.mos[i]):g}"
    return "histograms, attributes or ratings"


def _append(p: ExtractPlan, path: loc.Location, fs: st.FeatureStore, order: np.ndarray, log,
            attributes: Callable[[ExtractPlan], dict]) -> ExtractPlan:
    """Appends the dataset's new images to a Zarr store (pending); returns the plan in store order."""
    n_before = schema.rows_before_append(fs.attrs, fs.n)
    m = p.manifest.take(order)
    settings = {**fs.settings, "manifest_sha256": manifest_sha256(m)}
    layout = replace(p.layout, n=len(m), task_size=fs.task_size)
    p = replace(p, manifest=m, layout=layout, settings=settings)
    check_disk(path, layout.feature_bytes() * (len(m) - n_before) // max(len(m), 1))
    record = schema.appended_record(fs.attrs, n_before, len(m), settings, attributes(p)["dataset"], versions())
    sw.append_rows(path, n_before, m.ids, m.split, [str(x) for x in m.paths], m.mos, m.hist, m.extra_labels(), record)
    log(f"appending {len(m) - n_before} new images of the dataset to {path} ({n_before} stored); "
        f"their features alone are extracted (and those sharing the last shard)")
    return p


GROUP_KEYS = ("backbone", "weights", "features")  # settings a further backbone's group may differ in


def _group_of(fs: st.FeatureStore, p: ExtractPlan) -> Optional[str]:
    """The backbone of a further group this run extracts into the store (same photos, views and max side,
    another backbone), else None."""
    def rest(s):
        return {k: v for k, v in s.items() if k not in GROUP_KEYS}

    backbone = p.settings["backbone"]
    if backbone == fs.settings.get("backbone") or rest(fs.settings) != rest(p.settings):
        return None
    return backbone


def _grow_group(p: ExtractPlan, path: loc.Location, fs: st.FeatureStore, backbone: str, log,
                attributes: Callable[[ExtractPlan], dict]):
    """Adds (or resumes) a further backbone's group of kinds: `features/<backbone>/<kind>` with their own status."""
    if fs.engine != "zarr":
        raise ExtractError(f"{path} is a finished HDF5 store, written once: a second backbone can be added to Zarr "
                           f"stores only")
    p = replace(p, job=replace(p.job, group=backbone))
    kinds = {f"{backbone}/{k}": shape for k, shape in p.layout.kinds.items()}
    layout = sw.StoreLayout(n=fs.n, n_views=fs.n_views, kinds=kinds, task_size=fs.task_size,
                            hist_bins=p.layout.hist_bins, compression=fs.compression)
    stored = fs.groups.get(backbone)
    if stored is not None:
        diffs = _settings_difference(stored.get("settings", {}), p.settings)
        if diffs:
            raise ExtractError(f"store {path} already holds {backbone} features made with other settings; "
                               f"refusing to mix them.\n  " + "\n  ".join(diffs) + "\nRerun with those "
                               "settings to resume, or extract into another --store")
        return p, layout
    if fs.counts()["pending"]:
        raise ExtractError(f"store {path} has {fs.counts()['pending']} images still to extract with "
                           f"{fs.settings['backbone']}: finish it first, then add {backbone}")
    check_disk(path, layout.feature_bytes())
    sw.add_kinds(path, layout, schema.group_record(fs.attrs, backbone, attributes(p)))
    log(f"adding {backbone} features ({', '.join(kinds)}) to {path} beside its {fs.settings['backbone']} "
        f"features; train on them with --kind {next(iter(kinds))}, or join kinds with +")
    return p, layout


def open_or_create(cfg: ExtractConfig, p: ExtractPlan, zarr_path: loc.Location, engine: str, log, *,
                   attributes: Callable[[ExtractPlan], dict]):
    """Reopens a store made with the same settings, grows one by new kinds or new images, or creates it.

    Returns:
        (the plan, in store order; the layout of the kinds to extract; the block-map side under which images
        fail: see `_stale_pooling_guard`).
    """
    if st.read_zarr_attrs(zarr_path) is not None:
        with st.FeatureStore(zarr_path) as fs:
            if cfg.compress and cfg.compress != fs.compression:
                raise ExtractError(f"store {zarr_path} is written with compression {fs.compression}, this run asks "
                                   f"for {cfg.compress}: omit --compress to continue it, or rewrite it with "
                                   f"`iaa compact {zarr_path} --compress {cfg.compress}`")
            added = added_kinds(fs.settings, p.settings)
            if added:
                return p, _grow(cfg, p, zarr_path, fs, added, log), 0
            backbone = _group_of(fs, p)
            if backbone:
                p, layout = _grow_group(p, zarr_path, fs, backbone, log, attributes)
                return p, layout, 0
            order = _append_order(fs, p, zarr_path) if fs.engine == "zarr" else None
            if order is not None:
                p = _append(p, zarr_path, fs, order, log, attributes)
        with st.FeatureStore(zarr_path) as fs:
            refuse_if_different(zarr_path, fs.settings, p.settings)
            guard = _stale_pooling_guard(cfg, zarr_path, fs, log)
            return p, sw.StoreLayout(n=p.layout.n, n_views=p.layout.n_views, kinds=_kinds_to_do(cfg, fs, p.layout),
                                     task_size=fs.task_size, hist_bins=p.layout.hist_bins), guard
    if loc.exists(zarr_path) and not loc.exists(loc.join(zarr_path, "zarr.json")):
        raise ExtractError(f"{zarr_path} exists and is not a feature store: choose another --store "
                           f"or remove it (or add --overwrite)")
    loc.require_bucket(zarr_path)
    if p.weights.kind == "imagenet":  # fail fast (offline) before creating anything; caches the file
        build_model(p.backbone, p.weights, include_top="fc7" in p.settings["features"])
    check_disk(zarr_path, p.layout.feature_bytes() * (2 if engine == "hdf5" else 1))
    m = p.manifest
    sw.create_zarr(zarr_path, p.layout, attributes(p), m.ids, m.split, [str(x) for x in m.paths],
                   m.mos, m.hist, m.extra_labels())
    return p, p.layout, 0

