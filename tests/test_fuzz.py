"""Fuzzed uploads (seeded, bounded): hostile files through `POST /api/score` and through one `iaa score`
process never give a 500 or a traceback, and a good photo sent beside them is always scored.

The corpus (`tests/fuzz_corpus.py`): the regression files, header bombs of every accepted format, and
mutations of small JPEG, PNG, WebP, TIFF and BMP files. A failure names the case: add its bytes to
`tests/data/fuzz_regressions/` when fixing it.
"""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

fastapi = pytest.importorskip("fastapi", reason="the server's dependencies are not installed")

from fastapi.testclient import TestClient  # noqa: E402

from pipeline.scoring.predictor import Predictor  # noqa: E402
from pipeline.scoring.serve.app import Limits, create_app  # noqa: E402
from tests.fuzz_corpus import corpus, encode, photo  # noqa: E402

MUTATIONS = 300
PER_REQUEST = 15  # + one good photo = 16, the default limit


@pytest.fixture(scope="module")
def cases():
    return corpus(MUTATIONS, seed=27)


def test_fuzzed_uploads_never_give_500_and_good_photos_are_scored(scored, cases):
    app = create_app(Predictor.from_run(scored["runs"]["ridge"]), Limits(queue_size=64))
    client = TestClient(app, raise_server_exceptions=False)
    good = encode(photo(56, 72, seed=99), "JPEG", quality=92)
    statuses, refused = {}, 0
    for start in range(0, len(cases), PER_REQUEST):
        batch = cases[start:start + PER_REQUEST]
        files = [("files", (name, data, "application/octet-stream")) for name, data in batch]
        r = client.post("/api/score", files=files + [("files", ("good.jpg", good, "image/jpeg"))])
        if r.status_code == 503:  # the designed answer to overload, counted apart
            assert r.headers["Retry-After"]
            refused += 1
            continue
        assert r.status_code == 200, (r.status_code, r.text[:300], [n for n, _ in batch])
        results = r.json()["results"]
        assert results[-1]["name"] == "good.jpg" and results[-1]["score"] is not None, [n for n, _ in batch]
        for (name, _), res in zip(batch, results):
            assert (res["score"] is None) != (res["error"] is None), name
            if res["error"] is not None:
                assert 400 <= res["status"] < 500 and "Traceback" not in res["error"], (name, res)
                statuses[res["status"]] = statuses.get(res["status"], 0) + 1
    assert refused == 0  # one client, a queue of 64: nothing should wait
    assert statuses.get(413, 0) >= 10 and statuses.get(415, 0) and statuses.get(422, 0), statuses
    one = client.post("/api/score", files=[("files", (cases[0][0], cases[0][1], "image/png"))])
    assert one.status_code == 413 and "too many pixels: 60000x60000" in one.json()["results"][0]["error"]


@pytest.mark.slow
def test_fuzzed_files_through_one_iaa_score_process(scored, cases, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    suffix = {b"\x89P": ".png", b"\xff\xd8": ".jpg", b"RI": ".webp", b"II": ".tif", b"MM": ".tif", b"BM": ".bmp"}
    for i, (_, data) in enumerate(cases):
        (folder / f"case{i:03d}{suffix.get(data[:2], '.jpg')}").write_bytes(data)
    (folder / "good.jpg").write_bytes(encode(photo(56, 72, seed=99), "JPEG", quality=92))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = tmp_path / "scores"
    proc = subprocess.run([sys.executable, "-m", "pipeline", "score", str(scored["runs"]["ridge"]), str(folder),
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=Path(__file__).parents[1])
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]  # some photos failed, none crashed
    assert "Traceback" not in proc.stdout + proc.stderr
    with open(out / "scores.csv", newline="") as f:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(f)}
    assert len(rows) == len(cases) + 1 and rows["good.jpg"]["score"]
    failed = [r for r in rows.values() if not r["score"]]
    assert failed and all(r["reason"] and "validateInputImageSize" not in r["reason"] for r in failed)
    assert "too many pixels: 60000x60000" in rows["case000.png"]["reason"]
