"""Stage 1 orchestration: dataset manifest → decode/augment → backbone → pooling → store.

`plan()` decides everything before any work (manifest, backbone, weights, kinds, views, layout,
settings); `run_extract` creates or reopens the store (refusing different settings, naming them),
then runs the pending tasks of consecutive images (one Zarr shard each) on a dask cluster
(`pipeline.extraction.cluster`, workers in `pipeline.extraction.worker`). Rerunning the same command resumes.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from features import location as loc
from features import store as st
from features import store_writer as sw
from features.core.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_SOME_FAILED
from features.groups import base_kind
from pipeline.extraction.cluster import run_tasks
from pipeline.extraction.plan import ExtractConfig, ExtractError, ExtractPlan, plan, store_record
from pipeline.extraction.store import added_kinds, check_disk, open_or_create, refuse_if_different

__all__ = ["ExtractConfig", "ExtractError", "ExtractPlan", "ExtractResult", "plan", "run_extract"]


@dataclass
class ExtractResult:
    """What a run did: counts by status, images skipped (done before) and processed, failures."""

    store: str
    n_images: int
    counts: Dict[str, int]
    skipped: int
    processed: int
    seconds: float
    failures: List[Tuple[str, str]] = field(default_factory=list)
    task_errors: List[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else float("nan")

    @property
    def exit_code(self) -> int:
        if self.task_errors or self.counts.get("pending", 0):
            return EXIT_INCOMPLETE
        return EXIT_SOME_FAILED if self.counts.get("failed", 0) else EXIT_OK


def _finished_hdf5(cfg: ExtractConfig, path: Path, p: ExtractPlan, t0: float, log) -> ExtractResult:
    with st.FeatureStore(path) as fs:
        if added_kinds(fs.settings, p.settings):
            raise ExtractError(f"{path} is a finished HDF5 store, written once: kinds can be added to Zarr stores "
                               f"only. Extract the new kinds into another --store, or use a Zarr store")
        refuse_if_different(path, fs.settings, p.settings)
        if cfg.retry_failed and fs.counts()["failed"]:
            raise ExtractError(f"--retry-failed cannot reopen the finished HDF5 store {path}; "
                               f"use a Zarr store for incremental retries, or --overwrite")
        log(f"{path} is already complete; nothing to do (use --overwrite to start over).")
        return ExtractResult(str(path), fs.n, fs.counts(), fs.n, 0, time.time() - t0, fs.failures())



def run_extract(cfg: ExtractConfig, log: Callable[[str], None] = print) -> ExtractResult:
    """Extracts the features of a dataset into a store (stage 1), resuming what a previous run left.

    Args:
        cfg: the settings (`iaa extract` options).
        log: where progress lines go (the progress bar itself goes to stderr).
    Returns:
        An `ExtractResult`; its `exit_code` is 0 (all done), 1 (some images failed) or 3 (work left).
    Raises:
        IAAError subclasses for bad names, settings, dataset files, disk space or a store made with
        other settings (nothing is written then).
    """
    t0 = time.time()
    p = plan(cfg)
    path = loc.location(cfg.store, absolute=True)
    try:
        engine = st.engine_for(path, cfg.engine)
    except st.StoreError as exc:
        raise ExtractError(str(exc)) from None
    if engine == "hdf5" and loc.is_url(path):
        raise ExtractError(f"--store {path}: HDF5 stores are local files; on object storage use a Zarr store "
                           f"(a URL not ending in .h5/.hdf5)")
    zarr_path = path if engine == "zarr" else st.staging_path(path)
    if cfg.overwrite:
        for p_ in (path, zarr_path):
            loc.remove(p_)
    if engine == "hdf5" and path.is_file() and not zarr_path.exists():
        return _finished_hdf5(cfg, path, p, t0, log)
    p, layout, fail_maps_under = open_or_create(cfg, p, zarr_path, engine, log,
                                                attributes=lambda plan_: store_record(cfg, plan_))
    job = replace(p.job, kinds=tuple(base_kind(k) for k in layout.kinds), fail_maps_under=fail_maps_under)
    tasks = sw.pending_tasks(zarr_path, layout, retry_failed=cfg.retry_failed)
    remaining = sum(b - a for a, b in tasks)
    skipped = layout.n - remaining
    if skipped:
        log(f"resuming {zarr_path}: {skipped} of {layout.n} images already processed")
    errors: List[str] = []
    t_work = time.time()
    if tasks:
        needed = int(layout.feature_bytes() * remaining / max(layout.n, 1))
        check_disk(zarr_path, needed * (2 if engine == "hdf5" else 1))
        log(f"extracting {remaining} images ({layout.n_views} views each) with {p.backbone.name} "
            f"[{p.weights.text}] into {path} ({engine}, about {needed / 1e9:.2f} GB); "
            f"kinds: {', '.join(layout.kinds)}")
        errors = run_tasks(str(zarr_path), job, [str(x) for x in p.manifest.paths], tasks, cfg.scheduler, log)
    seconds = time.time() - t_work
    with st.FeatureStore(zarr_path) as fs:
        counts, failures = fs.counts(next(iter(layout.kinds))), fs.failures()
    if engine == "hdf5" and counts["pending"] == 0 and not errors:
        log(f"writing {path} ...")
        sw.finalize_hdf5(zarr_path, path)
        shutil.rmtree(zarr_path)
    return ExtractResult(str(path), layout.n, counts, skipped, remaining, seconds, failures, errors)
