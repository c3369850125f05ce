"""The backbone's memory is estimated before a photo runs: views are split into passes that fit, and a
photo that cannot fit is recorded as failed with the `--max-side` that would."""
import re
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from features import store as st
from features.augment import get_views
from features.backbones import get_backbone
from features.core.errors import UsageError
from features.memory import MEMORY_ENV, memory_budget, pass_bytes, side_that_fits
from features.weights import parse_weights
from pipeline.extraction import worker as ew
from pipeline.extraction.worker import ExtractJob, compute_features


def _job(memory_gb=None, max_side=None):
    spec = get_backbone("vgg16_hed")
    return ExtractJob(spec, parse_weights("random:0", spec), ("mlsp_narrow",), get_views("crop_flip"), max_side,
                      batch_views=32, memory_gb=memory_gb)


def test_estimates_and_the_side_that_fits():
    assert pass_bytes(900, 100, 200, 8) == 900 * 100 * 200 * 8
    # a 6000x4000 photo, one 87.5 % view: 900 B/px x 18.4 MP = 16.5 GB; with 8 GB the side must shrink
    side = side_that_fits(900, 4000, 6000, 5250 * 3500, 8e9)
    assert side % 16 == 0 and pass_bytes(900, 3500 * side / 6000, 5250 * side / 6000) <= 8e9
    assert pass_bytes(900, 3500 * (side + 32) / 6000, 5250 * (side + 32) / 6000) > 8e9


def test_memory_budget_from_the_environment(monkeypatch):
    monkeypatch.setenv(MEMORY_ENV, "2.5")
    assert memory_budget() == 2_500_000_000
    assert memory_budget(1.0) == 1_000_000_000
    monkeypatch.setenv(MEMORY_ENV, "lots")
    with pytest.raises(UsageError, match="IAA_MEMORY_GB must be a number"):
        memory_budget()
    monkeypatch.delenv(MEMORY_ENV)
    assert memory_budget() > 0


def test_views_split_into_passes_that_fit_give_the_same_features(tiny_folder):
    paths = [str(tiny_folder / "images" / f"img{i}.jpg") for i in range(4)]
    whole = compute_features(_job(), paths)
    # 80x64 and 72x96 photos: one 87.5 % view is at most 70x56 or 63x84 px, about 4.8 MB in VGG16 here
    split = compute_features(_job(memory_gb=0.011), paths)  # two views per pass
    assert (whole.status == st.DONE).all() and (split.status == st.DONE).all()
    np.testing.assert_allclose(split.feats["mlsp_narrow"].astype(np.float32),
                               whole.feats["mlsp_narrow"].astype(np.float32), rtol=1e-2, atol=1e-3)


def test_a_photo_too_large_for_memory_is_failed_with_the_side_that_fits(tiny_folder):
    path = str(tiny_folder / "images" / "img1.jpg")  # 96x72
    tight = compute_features(_job(memory_gb=0.002), [path])
    assert tight.status[0] == st.FAILED
    reason = tight.reasons[0]
    assert reason.startswith("too large for memory") and "GB in vgg16_hed" in reason
    side = int(re.search(r"--max-side (\d+)", reason).group(1))
    assert 16 <= side < 96
    fitted = compute_features(_job(memory_gb=0.002, max_side=side), [path])
    assert fitted.status[0] == st.DONE, fitted.reasons


class _Recording:
    """An extractor that records when each forward pass ran (and lingers in it, so overlaps would show)."""

    def __init__(self, inner, passes):
        self.inner, self.passes = inner, passes

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, x):
        start = time.perf_counter()
        time.sleep(0.05)
        out = self.inner(x)
        self.passes.append((start, time.perf_counter()))
        return out


def test_tasks_running_at_once_take_turns_on_the_model(tiny_folder, monkeypatch):
    """A worker's task threads (`TASK_THREADS`) overlap decoding and writes, never two forward passes: one
    pass's memory budget holds and each task gets the features it gets alone."""
    job = _job()
    passes = []
    recording = _Recording(ew.get_extractor(job), passes)
    monkeypatch.setattr(ew, "get_extractor", lambda j: recording)
    tasks = [[str(tiny_folder / "images" / f"img{i}.jpg") for i in ids] for ids in ((0, 1, 2), (3, 4, 5))]
    alone = [compute_features(job, paths) for paths in tasks]
    passes.clear()
    with ThreadPoolExecutor(ew.TASK_THREADS) as pool:
        together = list(pool.map(lambda paths: compute_features(job, paths), tasks))
    passes.sort()
    assert len(passes) >= 4
    assert all(later[0] >= earlier[1] for earlier, later in zip(passes, passes[1:])), passes
    for a, b in zip(alone, together):
        assert (b.status == st.DONE).all()
        np.testing.assert_array_equal(b.feats["mlsp_narrow"], a.feats["mlsp_narrow"])
