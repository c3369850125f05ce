"""Where a run's features come from: the extraction (backbone job) of every part of its kind.

A run trained on a kind of its store's first backbone (`mlsp_narrow`) has one part and one job. A run on a
further backbone's kind (`vgg16/gmp`) or on a concatenation across backbones (`irnv2/mlsp_narrow+vgg16_hed/
mlsp_narrow`, `features.groups`) has one part per name and one job per backbone, each rebuilt from the
record its store kept for that backbone and checked against it like a single one. Scoring runs every job
over the same photos and joins the parts on their channel axis, as the store's reader did in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from features import store as st
from features.augment import get_views
from features.backbones import BACKBONES, get_backbone
from features.core.errors import UsageError
from features.groups import base_kind, parts
from features.weights import identity_differences, parse_weights, weights_identity
from pipeline.extraction.worker import ExtractJob, TaskFeatures, compute_features

CHECKED_KEYS = ("blocks", "last_block", "views", "preprocessing", "max_side", "resize")


class PredictorError(UsageError):
    """A run that cannot score photos here; the message names what differs and what to do."""


@dataclass(frozen=True)
class Part:
    """One part of a run's kind: `kind` (a pooling kind) of the extraction `jobs[job]`, named `name` in the run."""

    name: str
    kind: str
    job: int


def part_records(kind: str, record: dict) -> List[Tuple[str, dict]]:
    """(part name, its extraction record) of every part of a run's kind (`FeatureStore.extraction(kind)`)."""
    names = parts(kind)
    if "parts" not in record:
        return [(names[0], record)]
    missing = [n for n in names if n not in record["parts"]]
    if missing:
        raise PredictorError(f"the run's extraction record has no part {', '.join(missing)} of its kind {kind}: "
                             f"retrain the run")
    return [(n, record["parts"][n]) for n in names]


def job_from_record(record: dict, kinds: Sequence[str], weights: Optional[str],
                    memory_gb: Optional[float] = None) -> ExtractJob:
    """The extraction the record describes, rebuilt from the registries and checked against it."""
    name = record.get("backbone")
    if name not in BACKBONES:
        raise PredictorError(f"the run's features come from {name!r}, not a registered backbone (a synthetic "
                             f"store?): it cannot score photos. Backbones: {', '.join(b.name for b in BACKBONES)}")
    spec = get_backbone(name)
    settings = record.get("settings") or {}
    ws = parse_weights(weights or settings.get("weights"), spec)
    views = get_views(record.get("view_set") or settings.get("views"))
    job = ExtractJob(spec, ws, tuple(kinds), views, record.get("max_side"), batch_views=32, memory_gb=memory_gb,
                     precision=record.get("precision", "float32"), resize=record.get("resize"))
    rebuilt = job.describe()
    diffs = [f"{key}: the run recorded {record.get(key)!r}, this installation makes {rebuilt[key]!r}"
             for key in CHECKED_KEYS if record.get(key) != rebuilt.get(key)]
    for kind in kinds:
        recorded = (record.get("kinds") or {}).get(kind, {}).get("shape")
        if recorded != rebuilt["kinds"][kind]["shape"]:
            diffs.append(f"kind {kind}: recorded shape {recorded}, now {rebuilt['kinds'][kind]['shape']}")
    include_top = "fc7" in settings.get("features", kinds)
    diffs += identity_differences(record.get("weights") or {}, weights_identity(spec, ws, include_top))
    if diffs:
        raise PredictorError(f"the run's {name} features cannot be reproduced here, so its scores would not mean "
                             f"what they meant in training:\n  " + "\n  ".join(diffs))
    return job


def build_jobs(kind: str, record: dict, *, weights: Optional[str], memory_gb: Optional[float],
               extra_kinds: Sequence[str] = ()) -> Tuple[List[ExtractJob], List[Part]]:
    """One job per backbone of the run's kind and its parts.

    Args:
        extra_kinds: further kinds for a single-backbone run's job (a feature cache keeps them too).
        weights: a moved weights file; only for a run of one backbone.
    """
    by_backbone: Dict[str, Tuple[dict, List[str]]] = {}
    found = []
    for name, rec in part_records(kind, record):
        entry = by_backbone.setdefault(rec.get("backbone"), (rec, []))
        if base_kind(name) not in entry[1]:
            entry[1].append(base_kind(name))
        found.append((name, base_kind(name), list(by_backbone).index(rec.get("backbone"))))
    if weights and len(by_backbone) > 1:
        raise PredictorError(f"--weights points to one backbone's weights; this run uses {' and '.join(by_backbone)}: "
                             f"put their weights where training found them")
    if len(by_backbone) == 1:
        rec, kinds = next(iter(by_backbone.values()))
        kinds += [k for k in extra_kinds if k not in kinds]
    jobs = [job_from_record(rec, kinds, weights, memory_gb) for rec, kinds in by_backbone.values()]
    if len({(j.views, j.max_side) for j in jobs}) > 1:
        raise PredictorError(f"the parts of {kind} were extracted with other views or max sides; such a run "
                             f"cannot be scored")
    return jobs, [Part(name, k, job) for name, k, job in found]


def kind_shape(jobs: Sequence[ExtractJob], parts_: Sequence[Part]) -> tuple:
    """The per-view shape of the joined kind."""
    shapes = [tuple(jobs[p.job].describe()["kinds"][p.kind]["shape"]) for p in parts_]
    return shapes[0][:-1] + (sum(s[-1] for s in shapes),)


def compute_parts(jobs: Sequence[ExtractJob], parts_: Sequence[Part], kind: str, paths: Sequence,
                  on_done) -> TaskFeatures:
    """Every job over the photos, the parts joined under `kind`: done where every job is. A single job's other
    kinds are kept under their own names (for a feature cache)."""
    bufs = [compute_features(job, paths, on_done if i == len(jobs) - 1 else (lambda n: None))
            for i, job in enumerate(jobs)]
    first = bufs[0]
    joined = np.concatenate([bufs[p.job].feats[p.kind] for p in parts_], axis=-1)
    if len(jobs) == 1:
        first.feats[kind] = joined
        return first
    out = TaskFeatures(len(paths), first.n_views, {}, on_done=lambda n: None)
    out.feats = {kind: joined}
    out.status = np.where(np.all([b.status == st.DONE for b in bufs], axis=0), st.DONE, st.FAILED).astype(np.int8)
    out.reasons = ["; ".join(f"{job.backbone.name}: {b.reasons[i]}" for job, b in zip(jobs, bufs) if b.reasons[i])
                   for i in range(len(paths))]
    out.height, out.width = first.height, first.width
    return out
