"""Stage 1, driver side: runs extraction tasks on a dask.distributed cluster with a progress bar.

`local` (default) starts a local cluster with one worker process per GPU (dask-cuda's LocalCUDACluster when
installed; one worker on CPU), each running `TASK_THREADS` tasks at once (their forward passes take turns;
one task's shard write overlaps the next one's compute); `inprocess` runs the worker in this process
(debugging); any other value is the address of an existing scheduler, whose workers must see the store's
filesystem. Workers report each finished image as an event, so the bar (rate, ETA) moves with remote work
too.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from typing import Callable, List, Optional, Sequence, Tuple

from pipeline.extraction.worker import PROGRESS_TOPIC, TASK_THREADS, ExtractJob, ExtractorPlugin, extract_task


def make_client(scheduler: Optional[str]):
    """(dask Client, the LocalCluster it owns or None) for `--scheduler`."""
    from distributed import Client, LocalCluster

    if scheduler and scheduler not in ("local", "inprocess"):
        return Client(scheduler), None
    if scheduler == "inprocess":
        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    else:
        import tensorflow as tf

        n_gpu = len(tf.config.list_physical_devices("GPU"))
        cluster = _cuda_cluster(n_gpu) or LocalCluster(n_workers=max(1, n_gpu), threads_per_worker=TASK_THREADS,
                                                       processes=True, dashboard_address=None,
                                                       local_directory=tempfile.gettempdir())
    return Client(cluster), cluster


def _cuda_cluster(n_gpu: int):
    """dask-cuda's LocalCUDACluster (one worker per GPU, each seeing only its own) when GPUs are there and it is
    installed; else None, and `ExtractorPlugin` pins worker i to GPU i of a plain LocalCluster."""
    if not n_gpu:
        return None
    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        return None
    return LocalCUDACluster(threads_per_worker=TASK_THREADS, dashboard_address=None,
                            local_directory=tempfile.gettempdir())


class _Progress:
    """A tqdm bar fed by worker events and by finished tasks (events may lag; never show less)."""

    def __init__(self, total: int):
        from tqdm import tqdm

        self.total, self.seen = total, 0
        self.lock = threading.Lock()
        self.bar = tqdm(total=total, unit="img", desc="extract", file=sys.stderr, dynamic_ncols=True,
                        mininterval=1.0, smoothing=0.1)

    def on_event(self, event) -> None:
        n = event[1] if isinstance(event, tuple) else event
        self.advance_to(self.seen + int(n))

    def advance_to(self, n: int) -> None:
        with self.lock:
            step = min(n, self.total) - self.seen
            if step > 0:
                self.seen += step
                self.bar.update(step)


def run_tasks(zarr_path: str, job: ExtractJob, paths: Sequence[str], tasks: Sequence[Tuple[int, int]],
              scheduler: Optional[str], log: Callable[[str], None]) -> List[str]:
    """Runs every task (image ranges) on the cluster; returns the errors of tasks that failed."""
    from distributed import as_completed

    progress = _Progress(sum(stop - start for start, stop in tasks))
    client, cluster = make_client(scheduler)
    errors: List[str] = []
    subscribed = False
    try:
        client.register_plugin(ExtractorPlugin(job))
        client.subscribe_topic(PROGRESS_TOPIC, progress.on_event)
        subscribed = True
        futures = {client.submit(extract_task, zarr_path, job, start, list(paths[start:stop]),
                                 key=f"extract-{start}-{stop}-{os.getpid()}-{time.time_ns()}", pure=False): (start, stop)
                   for start, stop in tasks}
        finished = 0
        for future in as_completed(futures):
            start, stop = futures[future]
            try:
                future.result()
                finished += stop - start
            except Exception as exc:  # noqa: BLE001  (a task's failure is reported; the rerun resumes it)
                errors.append(f"images {start}..{stop - 1}: {type(exc).__name__}: {exc}")
                log(f"task for images {start}..{stop - 1} failed: {exc}")
            progress.advance_to(finished)
    finally:
        progress.bar.close()
        if subscribed:
            client.unsubscribe_topic(PROGRESS_TOPIC)
        client.close()
        if cluster is not None:
            cluster.close()
    return errors
