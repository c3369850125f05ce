"""Stage 1, worker side: one task = consecutive images = one Zarr shard, computed and written in one go.

Runs in dask workers (or in-process). A worker keeps one `Extractor` per job (models do not pickle and
building them is slow), decodes and crops the next images in a thread pool while the model runs the
current batch, writes its whole shard, then its status chunk; repeating a task is harmless.

A worker may run several tasks at once (`TASK_THREADS` in local clusters, `dask worker --nthreads`): their
forward passes take turns on the worker's one model (`_COMPUTE_LOCK`, so one pass's memory budget holds),
while one task's decoding and shard write overlap another's passes, and the device never waits for a write.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from features import store as st
from features import store_writer as sw
from features.augment import View, make_views, view_size
from features.backbones import BackboneSpec
from features.images import ImageError, decode_image, shrink
from features.resize import resize_input
from features.memory import (MEMORY_FRACTION, RELEASE_ABOVE_BYTES, memory_budget, pass_bytes,
                             release_memory, side_that_fits)
from features.core.quiet import quiet_tensorflow
from features.weights import WeightsSpec

PROGRESS_TOPIC = "iaa-extract-progress"
DECODE_THREADS = 2
PREFETCH_IMAGES = 4
TASK_THREADS = 2  # tasks a local cluster's worker runs at once: one writes (and decodes) while another computes


@dataclass(frozen=True)
class ExtractJob:
    """Parsed extraction settings, as the workers receive them (nothing is re-parsed there).

    Attributes:
        backbone: the backbone spec.
        weights: the weights spec.
        kinds: feature kinds, validated for the backbone.
        views: the views of every image, in stored order.
        max_side: shrink images whose longer side exceeds it (None: full resolution).
        batch_views: most views per forward pass when consecutive images share a size.
        memory_gb: memory budget of one forward pass (None: `features.memory.memory_budget`'s default).
        fail_maps_under: record as failed the images whose smallest block map has a shorter side (0: none);
            used to finish a store pooled by an older revision without mixing two poolings.
        precision: "float32" or "mixed" (`features.extractor.PRECISIONS`).
        group: where the kinds go in the store: "" for its first backbone (`features/<kind>`), the backbone's
            name for a further group (`features/<backbone>/<kind>`, `features.groups`).
        resize: a `features.resize` rule applied after decoding, before the views (None: none).
    """

    backbone: BackboneSpec
    weights: WeightsSpec
    kinds: Tuple[str, ...]
    views: Tuple[View, ...]
    max_side: Optional[int]
    batch_views: int
    memory_gb: Optional[float] = None
    fail_maps_under: int = 0
    group: str = ""
    precision: str = "float32"
    resize: Optional[str] = None

    @property
    def model_key(self) -> tuple:
        return (self.backbone.name, self.weights.text, self.kinds, self.precision)

    def describe(self) -> dict:
        """What a store records about how its features were made (and a predictor checks before scoring):
        blocks with channel offsets, kinds with shapes, views, preprocessing, max side."""
        from features.backbones import PREPROCESSING
        from features.pooling import get_kind

        spec = self.backbone
        return {
            "blocks": [{"name": b, "channels": c, "offset": spec.block_offsets()[b][0]}
                       for b, c in zip(spec.blocks, spec.channels)],
            "last_block": {"name": spec.last_block, "channels": spec.last_channels},
            "kinds": {k: get_kind(k).record(spec) for k in self.kinds},
            "views": [v.to_dict() for v in self.views],
            "augmentation_order": "decode (EXIF orientation applied) -> crop -> flip -> preprocess",
            "preprocessing": {"name": spec.preprocessing, "text": PREPROCESSING[spec.preprocessing]},
            "max_side": self.max_side,
            **({"resize": self.resize} if self.resize else {}),
            **({"precision": self.precision} if self.precision != "float32" else {}),
        }


_EXTRACTORS: Dict[tuple, object] = {}
_EXTRACTOR_LOCK = threading.Lock()
_COMPUTE_LOCK = threading.Lock()  # one forward pass at a time per process, whatever the task threads


def get_extractor(job: ExtractJob):
    """The worker process's model for this job (built on first use)."""
    from features.extractor import Extractor

    with _EXTRACTOR_LOCK:
        if job.model_key not in _EXTRACTORS:
            quiet_tensorflow()
            _EXTRACTORS[job.model_key] = Extractor(job.backbone, job.weights, job.kinds, job.precision)
        return _EXTRACTORS[job.model_key]


def prepare_image(path, job: ExtractJob):
    """Decode + views of one image: a file path, or an (H, W, 3) uint8 RGB array already decoded (a
    video frame), which gets the same `max_side` shrinking and `resize` rule.

    Returns:
        ((V, h, w, 3) uint8 views, (height, width) of the decoded image).
    Raises:
        ImageError: an unusable file, or views smaller than the backbone accepts.
    """
    image = shrink(path, job.max_side) if isinstance(path, np.ndarray) else decode_image(path, job.max_side)
    image = resize_input(image, job.resize)
    h, w = image.shape[:2]
    vh, vw = view_size(job.views, h, w)
    if min(vh, vw) < job.backbone.min_side:
        raise ImageError(
            f"image too small for {job.backbone.name}: {w}x{h} px gives {vw}x{vh} px views, the backbone "
            f"needs at least {job.backbone.min_side} px per side"
        )
    return make_views(image, job.views), (h, w)


def _report_progress(n: int) -> None:
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:  # a direct call, outside any worker: nothing to report to
        return
    worker.log_event(PROGRESS_TOPIC, n)


class TaskFeatures:
    """The features, status and failure reasons of consecutive images, in memory (a task's rows until
    its one write; a batch of photos being scored).

    Args:
        n, n_views, shapes: images, views per image, per-view shape of each kind.
        on_done: called with the number of images finished (done or failed) after each batch.
    """

    def __init__(self, n: int, n_views: int, shapes: Dict[str, tuple], on_done: Callable[[int], None]):
        self.n_views = n_views
        self.on_done = on_done
        self.feats = {k: np.full((n, n_views) + s, np.nan, dtype=np.float16) for k, s in shapes.items()}
        self.status = np.zeros(n, dtype=np.int8)
        self.reasons = [""] * n
        self.width = np.zeros(n, dtype=np.int32)
        self.height = np.zeros(n, dtype=np.int32)

    def fail(self, i: int, reason: str) -> None:
        """Records image `i` as failed with its reason (kept to 500 characters)."""
        self.status[i], self.reasons[i] = st.FAILED, reason[:500]
        self.on_done(1)

    def run(self, extractor, batch: List[Tuple[int, np.ndarray]], views_per_pass: int) -> None:
        """Runs a batch of same-sized images, at most `views_per_pass` views per forward pass; on a model
        error, retries one by one to find the bad one."""
        try:
            x = np.concatenate([v for _, v in batch])
            parts = [extractor(x[i:i + views_per_pass]) for i in range(0, len(x), views_per_pass)]
            out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        except Exception as exc:  # noqa: BLE001  (a model error on one image must not stop the task)
            if len(batch) > 1:
                for item in batch:
                    self.run(extractor, [item], views_per_pass)
            else:
                self.fail(batch[0][0], f"backbone failed: {type(exc).__name__}: {exc}")
            return
        for j, (i, _) in enumerate(batch):
            for k, v in out.items():
                self.feats[k][i] = v[j * self.n_views:(j + 1) * self.n_views]
            self.status[i] = st.DONE
        self.on_done(len(batch))


def _decoded(paths: Sequence[str], job: ExtractJob):
    """(index, future of `prepare_image`) in order, with a few images decoded ahead."""
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        pending = [pool.submit(prepare_image, p, job) for p in paths[:PREFETCH_IMAGES]]
        for i in range(len(paths)):
            future = pending.pop(0)
            if i + PREFETCH_IMAGES < len(paths):
                pending.append(pool.submit(prepare_image, paths[i + PREFETCH_IMAGES], job))
            yield i, future


def compute_features(job: ExtractJob, paths: Sequence,
                     on_done: Callable[[int], None] = _report_progress) -> TaskFeatures:
    """Decodes, views, runs the backbone and pools the given images (paths, or RGB arrays), batching
    same-sized ones.

    The one path from photo to features: extraction writes its result into a store, scoring feeds it
    to a head. A bad image is recorded as failed (with the reason) and never stops the others.
    """
    extractor = get_extractor(job)
    n_views = len(job.views)
    buf = TaskFeatures(len(paths), n_views, extractor.shapes(), on_done)
    budget = memory_budget(job.memory_gb)
    batch: List[Tuple[int, np.ndarray]] = []
    per_pass = job.batch_views
    for i, future in _decoded(paths, job):
        try:
            views, (h, w) = future.result()
        except ImageError as exc:
            buf.fail(i, str(exc))
            continue
        except Exception as exc:  # noqa: BLE001  (never let one odd file stop the run; recorded per image)
            buf.fail(i, f"decode error: {type(exc).__name__}: {exc}")
            continue
        buf.height[i], buf.width[i] = h, w
        per_view = pass_bytes(job.backbone.bytes_per_pixel, *views.shape[1:3])
        if per_view > budget:
            buf.fail(i, _too_large(job, h, w, views.shape[1:3], per_view, budget))
            continue
        if job.fail_maps_under and extractor.smallest_map_side(*views.shape[1:3]) < job.fail_maps_under:
            buf.fail(i, f"block maps under {job.fail_maps_under}x{job.fail_maps_under}: this store's other images were "
                        f"pooled by an older revision, which differs at that size; re-extract it with --overwrite")
            continue
        if batch and (batch[0][1].shape != views.shape or (len(batch) + 1) * n_views > per_pass):
            _run_and_release(buf, extractor, batch, per_pass, budget)
            batch = []
        per_pass = int(max(1, min(job.batch_views, budget // per_view)))
        batch.append((i, views))
    if batch:
        _run_and_release(buf, extractor, batch, per_pass, budget)
    return buf


def _run_and_release(buf: TaskFeatures, extractor, batch, per_pass: int, budget: int) -> None:
    with _COMPUTE_LOCK:
        buf.run(extractor, batch, per_pass)
        view_shape = batch[0][1].shape[1:3]
        if pass_bytes(extractor.spec.bytes_per_pixel, *view_shape, min(per_pass, len(batch) * buf.n_views)) \
                > RELEASE_ABOVE_BYTES:
            release_memory()  # a large photo's peak would otherwise stay resident for the rest of the run


def _too_large(job: ExtractJob, h: int, w: int, view_shape, need: int, budget: int) -> str:
    fits = side_that_fits(job.backbone.bytes_per_pixel, h, w, view_shape[0] * view_shape[1], budget)
    return (f"too large for memory: one {view_shape[1]}x{view_shape[0]} px view of this {w}x{h} px photo needs "
            f"about {need / 1e9:.1f} GB in {job.backbone.name} (budget {budget / 1e9:.1f} GB, "
            f"{MEMORY_FRACTION:.0%} of available RAM, or --memory-gb); extract with --max-side {fits} or less "
            f"(scoring uses the run's), or give it more memory")


def extract_task(zarr_path: str, job: ExtractJob, start: int, paths: Sequence[str]) -> dict:
    """Computes and writes images [start, start + len(paths)) of the store; safe to repeat.

    Returns:
        {"start", "n", "done", "failed"} of the task.
    """
    buf = compute_features(job, paths)
    feats = {f"{job.group}/{k}" if job.group else k: v for k, v in buf.feats.items()}
    sw.write_task(zarr_path, start, start + len(paths), feats, buf.status, buf.reasons, buf.width, buf.height)
    return {"start": start, "n": len(paths), "done": int((buf.status == st.DONE).sum()),
            "failed": int((buf.status == st.FAILED).sum())}


class ExtractorPlugin(WorkerPlugin):
    """dask WorkerPlugin: pins one GPU per worker, turns on memory growth, builds the model once."""

    name = "iaa-extractor"

    def __init__(self, job: ExtractJob):
        self.job = job

    def setup(self, worker):
        """On each dask worker: quiet TensorFlow, pin the worker's GPU and let its memory grow."""
        quiet_tensorflow()
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            try:
                index = int(str(worker.name).rsplit("-", 1)[-1]) % len(gpus)
                tf.config.set_visible_devices(gpus[index], "GPU")
                tf.config.experimental.set_memory_growth(gpus[index], True)
            except (ValueError, RuntimeError):  # already initialised (in-process) or odd names
                pass
        get_extractor(self.job)
