"""One model in memory, fed by a bounded queue: requests' images are scored together in batches.

A single worker thread owns the predictor (TensorFlow is not re-entered from request threads). A request
puts its decoded images in the queue and waits on a future; when the queue is full the request is
refused at once (the server answers 503 with Retry-After) instead of letting memory grow.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np


class QueueFull(Exception):
    """The queue holds as many requests as it may (or the server is stopping): come back later."""


@dataclass
class _Job:
    images: List[np.ndarray]
    future: Future = field(default_factory=Future)
    call: Optional[Callable] = None  # other work on the model (an explanation), run alone


class Batcher:
    """Scores lists of images with one predictor in a background thread.

    Args:
        predictor: a `pipeline.scoring.predictor.Predictor`.
        queue_size: most requests waiting (beyond it `submit` raises `QueueFull`).
        batch_images: most images scored in one call (jobs are joined up to it).
    """

    def __init__(self, predictor, queue_size: int = 8, batch_images: int = 16):
        self.predictor = predictor
        self.batch_images = batch_images
        self._queue: "queue.Queue[_Job]" = queue.Queue(maxsize=queue_size)
        self._closing = self._stopping = False
        self.scored_batches = 0
        self._thread = threading.Thread(target=self._run, name="iaa-batcher", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 60.0) -> bool:
        """Stops taking work, finishes the batch in progress and the jobs already queued; True when done in time."""
        self._closing = True
        self._queue.put(_Job([], call=_STOP))  # blocks only while the queue is full, i.e. while work drains
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def submit(self, images: List[np.ndarray]) -> Future:
        """A future of the images' `PhotoScores`; raises `QueueFull` when the queue is full."""
        return self._put(_Job(list(images)))

    def submit_call(self, call: Callable) -> Future:
        """A future of `call(predictor)`, run in the model's thread between batches (`QueueFull` as above)."""
        return self._put(_Job([], call=call))

    def _put(self, job: _Job) -> Future:
        if self._closing:
            raise QueueFull
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFull from None
        return job.future

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def _take(self, block: bool) -> Optional[_Job]:
        """The next job whose request still waits for it (a request past its time limit cancelled its own)."""
        while True:
            job = self._queue.get(block=block)
            if job.call is _STOP or job.future.set_running_or_notify_cancel():
                return job

    def _next_batch(self) -> List[_Job]:
        """The next job alone when it is a call (or the stop), else queued images' jobs joined up to a batch."""
        first = self._take(block=True)
        if first.call is not None:
            return [first]
        jobs, total = [first], len(first.images)
        while total < self.batch_images:
            try:
                job = self._take(block=False)
            except queue.Empty:
                break
            if job.call is _STOP:  # nothing was queued after it: end after this batch
                self._stopping = True
                break
            if job.call is not None:  # runs on its own, now
                self._run_call(job)
                continue
            jobs.append(job)
            total += len(job.images)
        return jobs

    def _run_call(self, job: _Job) -> None:
        try:
            job.future.set_result(job.call(self.predictor))
        except Exception as exc:  # noqa: BLE001  (reported to its request)
            job.future.set_exception(exc)

    def _run(self) -> None:
        while not self._stopping:
            jobs = self._next_batch()
            if jobs[0].call is _STOP:
                return
            if jobs[0].call is not None:
                self._run_call(jobs[0])
                continue
            images = [im for job in jobs for im in job.images]
            try:
                result = self.predictor.score_arrays(images, [str(i) for i in range(len(images))])
            except Exception as exc:  # noqa: BLE001  (a failed batch fails its requests, not the server)
                for job in jobs:
                    job.future.set_exception(exc)
                continue
            self.scored_batches += 1
            start = 0
            for job in jobs:
                stop = start + len(job.images)
                job.future.set_result(_slice(result, start, stop))
                start = stop


def _STOP(predictor):  # noqa: N802  (a marker job: the worker ends after the work queued before it)
    return None


def _slice(result, start: int, stop: int):
    from pipeline.scoring.predictor import PhotoScores

    return PhotoScores(result.paths[start:stop], result.ok[start:stop], result.score[start:stop],
                       result.spread[start:stop], None if result.dist is None else result.dist[start:stop],
                       result.reasons[start:stop], {})
