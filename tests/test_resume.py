"""kill -9 of a running extraction (with its dask workers), then the same command finishes the store."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from features import store as st
from tests.conftest import kill_once_started, random_photo, write_image

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 64


def _command(folder, store):
    return [sys.executable, "-m", "pipeline", "extract", "--dataset", "folder", "--data-dir", str(folder),
            "--backbone", "vgg16_hed", "--weights", "random:0", "--features", "mlsp_narrow,gmp",
            "--views", "crop_flip", "--store", str(store), "--scheduler", "local"]


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".zarr", ".h5"])
def test_kill_9_then_resume_gives_a_complete_consistent_store(tmp_path, suffix):
    folder = tmp_path / "imgs"
    for i in range(N_IMAGES):
        write_image(folder / f"im{i:03d}.jpg", random_photo(200, 224 + (i % 2) * 8, seed=i))
    store = tmp_path / f"s{suffix}"
    zarr_path = store if suffix == ".zarr" else st.staging_path(store)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as in a user's shell: the command quiets TensorFlow itself

    killed_at = kill_once_started(_command(folder, store), ROOT, env, zarr_path)  # with its dask workers
    assert 0 < killed_at < N_IMAGES, f"kill came too late or never: {killed_at} processed"

    rerun = subprocess.run(_command(folder, store), cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "already processed" in rerun.stdout
    # start-up of the command and of its dask worker processes: no TensorFlow native log lines
    noise = [line for line in rerun.stderr.splitlines()
             if any(w in line for w in ("I0000", "E0000", "W0000", "absl", "cuda", "oneDNN"))]
    assert not noise, noise
    resumed = int(rerun.stdout.split("resuming")[1].split(":")[1].split()[0])
    assert resumed >= killed_at  # finished tasks were not recomputed

    from features.extractor import Extractor
    from features.augment import get_views, make_views
    from features.images import decode_image

    ex = Extractor.from_names("vgg16_hed", "random:0", "mlsp_narrow,gmp")
    with st.FeatureStore(store) as fs:
        assert fs.counts() == {"pending": 0, "done": N_IMAGES, "failed": 0}
        narrow = fs.features("mlsp_narrow")[:]
        assert np.isfinite(narrow).all()
        for i in (0, N_IMAGES // 2, N_IMAGES - 1):
            views = make_views(decode_image(folder / fs.ids[i]), get_views("crop_flip"))
            np.testing.assert_allclose(narrow[i].astype(np.float32),
                                       ex(views)["mlsp_narrow"].astype(np.float32), rtol=2e-2, atol=1e-2)
