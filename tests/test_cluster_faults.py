"""A real cluster started outside `iaa` (dask scheduler + two dask worker processes on loopback): a worker
killed with SIGKILL mid-run, and the extraction still completes with the store an in-process run makes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from features import store as st
from pipeline.extraction.worker import TASK_THREADS
from tests.conftest import done_count, random_photo, write_image

ROOT = Path(__file__).resolve().parents[1]
DASK = str(Path(sys.executable).parent / "dask")
N_IMAGES = 48


def _start(args, env, log):
    return subprocess.Popen([DASK, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_on_an_external_cluster(tmp_path):
    from pipeline.extraction.extract import ExtractConfig, run_extract

    folder = tmp_path / "imgs"
    for i in range(N_IMAGES):
        write_image(folder / f"im{i:03d}.jpg", random_photo(120, 136 + (i % 3) * 8, seed=i))
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    scheduler_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "w")
    procs = [_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(scheduler_file)], env, log)]
    try:
        deadline = time.time() + 60
        while not scheduler_file.is_file() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        workers = [_start(["worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard",
                           "--name", f"w{i}"], env, log) for i in range(2)]
        procs += workers
        store = tmp_path / "remote.zarr"
        command = [sys.executable, "-m", "pipeline", "extract", "--dataset", "folder", "--data-dir", str(folder),
                   "--backbone", "vgg16_hed", "--weights", "random:0", "--features", "mlsp_narrow,gmp",
                   "--views", "none", "--store", str(store), "--scheduler", address]
        run = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
        deadline = time.time() + 240
        while time.time() < deadline and done_count(store) == 0 and run.poll() is None:
            time.sleep(0.05)
        killed_at = done_count(store)
        os.killpg(workers[0].pid, signal.SIGKILL)
        out, _ = run.communicate(timeout=300)
        assert 0 < killed_at < N_IMAGES, f"the kill came too late or never: {killed_at} done"
        assert run.returncode == 0, out
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        log.close()
    assert "Remove worker" in (tmp_path / "cluster.log").read_text()  # the scheduler saw w0 die mid-run

    local = tmp_path / "local.zarr"
    run_extract(ExtractConfig(dataset="folder", data_dir=str(folder), store=str(local), backbone="vgg16_hed",
                              weights="random:0", features="mlsp_narrow,gmp", views="none", scheduler="inprocess"),
                log=lambda m: None)
    with st.FeatureStore(store) as remote, st.FeatureStore(local) as here:
        assert remote.counts() == here.counts() == {"pending": 0, "done": N_IMAGES, "failed": 0}
        assert list(remote.ids) == list(here.ids)
        for kind in ("mlsp_narrow", "gmp"):
            np.testing.assert_allclose(remote.features(kind)[:].astype(np.float32),
                                       here.features(kind)[:].astype(np.float32), rtol=1e-3, atol=1e-3)


def test_local_gpus_use_dask_cuda_when_installed(monkeypatch):
    """One worker per GPU: dask-cuda's LocalCUDACluster when importable, a plain LocalCluster without it or on CPU."""
    import types

    from pipeline.extraction import cluster

    made = {}

    def fake_cluster(**kwargs):
        made.update(kwargs)
        return "cuda-cluster"

    monkeypatch.setitem(sys.modules, "dask_cuda", types.SimpleNamespace(LocalCUDACluster=fake_cluster))
    assert cluster._cuda_cluster(2) == "cuda-cluster" and made["threads_per_worker"] == TASK_THREADS
    assert cluster._cuda_cluster(0) is None  # CPU only: the plain cluster
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # not installed: import fails
    assert cluster._cuda_cluster(2) is None
