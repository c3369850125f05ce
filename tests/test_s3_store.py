"""Stores on object storage: an S3-compatible server (moto) on 127.0.0.1, credentials and endpoint from the
environment only. Extraction, resume after kill -9, store-info and training read back through the loader."""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from features import store as st
from features.loader import FeatureReader
from pipeline.cli import main
from pipeline.extraction.extract import ExtractConfig, run_extract
from tests.conftest import kill_once_started, random_photo, write_image

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")
ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 32
BUCKET = "iaa-test"


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server on loopback and the environment a user would set for it (module-wide)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir(BUCKET)
    yield env
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    s3fs.S3FileSystem.clear_instance_cache()


def _folder(root: Path, n: int) -> Path:
    lines = ["file,mos,split"]
    for i in range(n):
        write_image(root / f"im{i:03d}.jpg", random_photo(200, 224 + (i % 2) * 8, seed=i))
        lines.append(f"im{i:03d}.jpg,{1 + (i * 7) % 9},{('train', 'train', 'val', 'test')[i % 4]}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def _config(folder, store, scheduler="inprocess"):
    return ExtractConfig(dataset="folder", data_dir=str(folder), store=str(store), backbone="vgg16_hed",
                         weights="random:0", features="mlsp_narrow,gmp", views="crop_flip", scheduler=scheduler)


def test_extract_to_s3_equals_a_local_store_and_trains_from_it(tmp_path, s3_env, capsys):
    folder = _folder(tmp_path / "imgs", 12)
    url = f"s3://{BUCKET}/runs/small.zarr"
    result = run_extract(_config(folder, url), log=lambda m: None)
    assert result.counts == {"pending": 0, "done": 12, "failed": 0}
    run_extract(_config(folder, tmp_path / "local.zarr"), log=lambda m: None)

    with st.FeatureStore(url) as remote, st.FeatureStore(tmp_path / "local.zarr") as local:
        assert remote.path == url and remote.identity()["path"] == url
        assert list(remote.ids) == list(local.ids)
        for kind in ("mlsp_narrow", "gmp"):
            np.testing.assert_array_equal(remote.features(kind)[:], local.features(kind)[:])
        rows = np.arange(12)
        streamed = FeatureReader(remote, "mlsp_narrow", rows, cache="none")
        assert streamed.mode == "none"
        views = np.arange(12) % 8
        np.testing.assert_array_equal(streamed.read(rows[::-1], views), local.features("mlsp_narrow")[:][rows[::-1],
                                                                                                        views])

    assert run_extract(_config(folder, url), log=lambda m: None).processed == 0  # complete: nothing redone
    assert main(["store-info", url]) == 0
    assert "12 images" in capsys.readouterr().out
    run_dir = tmp_path / "run"
    assert main(["train", "--store", url, "--head", "ridge", "--run-dir", str(run_dir), "--cache", "none"]) == 0
    assert (run_dir / "metrics.json").is_file()
    assert main(["evaluate-on", str(run_dir), url, "--out", str(tmp_path / "eo")]) == 0
    assert json.loads((tmp_path / "eo" / "metrics.json").read_text())["store"] == url


def test_missing_bucket_and_hdf5_url_are_one_line_errors(tmp_path, s3_env, capsys):
    folder = _folder(tmp_path / "imgs", 2)
    common = ["extract", "--dataset", "folder", "--data-dir", str(folder), "--weights", "random:0",
              "--features", "gmp", "--views", "none", "--scheduler", "inprocess"]
    assert main(common + ["--store", "s3://no-such-bucket/a.zarr"]) == 2
    err = capsys.readouterr().err
    assert "no-such-bucket" in err and "does not exist" in err and "AWS_ENDPOINT_URL" in err
    assert main(common + ["--store", f"s3://{BUCKET}/a.h5"]) == 2
    assert "HDF5 stores are local files" in capsys.readouterr().err
    assert main(["store-info", f"s3://{BUCKET}/nothing-here.zarr"]) == 2
    assert "no initialised Zarr feature store" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_then_resume_on_s3(tmp_path, s3_env):
    folder = _folder(tmp_path / "imgs", N_IMAGES)
    url = f"s3://{BUCKET}/killed.zarr"
    command = [sys.executable, "-m", "pipeline", "extract", "--dataset", "folder", "--data-dir", str(folder),
               "--backbone", "vgg16_hed", "--weights", "random:0", "--features", "mlsp_narrow,gmp",
               "--views", "crop_flip", "--store", url, "--scheduler", "local"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    killed_at = kill_once_started(command, ROOT, env, url)
    assert 0 < killed_at < N_IMAGES, f"kill came too late or never: {killed_at} processed"

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    resumed = int(rerun.stdout.split(f"resuming {url}:")[1].split()[0])
    assert resumed >= killed_at  # finished tasks were not recomputed

    run_extract(_config(folder, tmp_path / "local.zarr", scheduler="inprocess"), log=lambda m: None)
    with st.FeatureStore(url) as remote, st.FeatureStore(tmp_path / "local.zarr") as local:
        assert remote.counts() == {"pending": 0, "done": N_IMAGES, "failed": 0}
        for kind in ("mlsp_narrow", "gmp"):
            a, b = remote.features(kind)[:], local.features(kind)[:]
            assert np.isfinite(a).all()
            np.testing.assert_array_equal(a, b)
