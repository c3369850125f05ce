"""Stage 1, worker side: one task = consecutive images = one Zarr shard, computed and written in one go.

Runs in dask workers (or in-process). A worker keeps one `Extractor` per job (models do not pickle and
building them is slow), decodes and crops the next images in a thread pool while the model runs the
current batch, writes its whole shard, then its status chunk; repeating a task is harmless.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from distributed.diagnostics.plugin import WorkerPlugin

from features import store as st
from features import store_writer as sw
from features.augment import View, make_views, view_size
from features.backbones import BackboneSpec
from features.images import ImageError, decode_image
from features.quiet import quiet_tensorflow
from features.weights import WeightsSpec

PROGRESS_TOPIC = "iaa-extract-progress"
DECODE_THREADS = 2
PREFETCH_IMAGES = 4


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
    """

    backbone: BackboneSpec
    weights: WeightsSpec
    kinds: Tuple[str, ...]
    views: Tuple[View, ...]
    max_side: Optional[int]
    batch_views: int

    @property
    def model_key(self) -> tuple:
        return (self.backbone.name, self.weights.text, self.kinds)


_EXTRACTORS: Dict[tuple, object] = {}
_EXTRACTOR_LOCK = threading.Lock()


def get_extractor(job: ExtractJob):
    """The worker process's model for this job (built on first use)."""
    from features.extractor import Extractor

    with _EXTRACTOR_LOCK:
        if job.model_key not in _EXTRACTORS:
            quiet_tensorflow()
            _EXTRACTORS[job.model_key] = Extractor(job.backbone, job.weights, job.kinds)
        return _EXTRACTORS[job.model_key]


def prepare_image(path: str, job: ExtractJob):
    """Decode + views of one image.

    Returns:
        ((V, h, w, 3) uint8 views, (height, width) of the decoded image).
    Raises:
        ImageError: an unusable file, or views smaller than the backbone accepts.
    """
    image = decode_image(path, job.max_side)
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


class _TaskBuffer:
    """A task's rows in memory until the one write at its end."""

    def __init__(self, n: int, n_views: int, shapes: Dict[str, tuple]):
        self.n_views = n_views
        self.feats = {k: np.full((n, n_views) + s, np.nan, dtype=np.float16) for k, s in shapes.items()}
        self.status = np.zeros(n, dtype=np.int8)
        self.reasons = [""] * n
        self.width = np.zeros(n, dtype=np.int32)
        self.height = np.zeros(n, dtype=np.int32)

    def fail(self, i: int, reason: str) -> None:
        self.status[i], self.reasons[i] = st.FAILED, reason[:500]
        _report_progress(1)

    def run(self, extractor, batch: List[Tuple[int, np.ndarray]]) -> None:
        """Runs a batch of same-sized images; on a model error, retries one by one to find the bad one."""
        try:
            out = extractor(np.concatenate([v for _, v in batch]))
        except Exception as exc:  # noqa: BLE001  (a model error on one image must not stop the task)
            if len(batch) > 1:
                for item in batch:
                    self.run(extractor, [item])
            else:
                self.fail(batch[0][0], f"backbone failed: {type(exc).__name__}: {exc}")
            return
        for j, (i, _) in enumerate(batch):
            for k, v in out.items():
                self.feats[k][i] = v[j * self.n_views:(j + 1) * self.n_views]
            self.status[i] = st.DONE
        _report_progress(len(batch))


def _decoded(paths: Sequence[str], job: ExtractJob):
    """(index, future of `prepare_image`) in order, with a few images decoded ahead."""
    with ThreadPoolExecutor(DECODE_THREADS) as pool:
        pending = [pool.submit(prepare_image, p, job) for p in paths[:PREFETCH_IMAGES]]
        for i in range(len(paths)):
            future = pending.pop(0)
            if i + PREFETCH_IMAGES < len(paths):
                pending.append(pool.submit(prepare_image, paths[i + PREFETCH_IMAGES], job))
            yield i, future


def extract_task(zarr_path: str, job: ExtractJob, start: int, paths: Sequence[str]) -> dict:
    """Computes and writes images [start, start + len(paths)) of the store; safe to repeat.

    Returns:
        {"start", "n", "done", "failed"} of the task.
    """
    extractor = get_extractor(job)
    n_views = len(job.views)
    buf = _TaskBuffer(len(paths), n_views, extractor.shapes())
    batch: List[Tuple[int, np.ndarray]] = []
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
        if batch and (batch[0][1].shape != views.shape
                      or (len(batch) + 1) * n_views > max(job.batch_views, n_views)):
            buf.run(extractor, batch)
            batch = []
        batch.append((i, views))
    if batch:
        buf.run(extractor, batch)
    sw.write_task(zarr_path, start, start + len(paths), buf.feats, buf.status, buf.reasons, buf.width, buf.height)
    return {"start": start, "n": len(paths), "done": int((buf.status == st.DONE).sum()),
            "failed": int((buf.status == st.FAILED).sum())}


class ExtractorPlugin(WorkerPlugin):
    """dask WorkerPlugin: pins one GPU per worker, turns on memory growth, builds the model once."""

    name = "iaa-extractor"

    def __init__(self, job: ExtractJob):
        self.job = job

    def setup(self, worker):
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
