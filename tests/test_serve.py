"""`iaa serve`'s JSON API: scores equal `iaa score`, every limit answers 4xx, a full queue 503, two requests
at once are both answered."""
import io
import threading

import numpy as np
import pytest

fastapi = pytest.importorskip("fastapi", reason="the server's dependencies are not installed")

from fastapi.testclient import TestClient  # noqa: E402

from pipeline.scoring.predictor import Predictor  # noqa: E402
from pipeline.scoring.serve.app import Limits, create_app  # noqa: E402


def _files(paths):
    return [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


@pytest.fixture(scope="module")
def served(scored):
    predictor = Predictor.from_run(scored["runs"]["pool3fc_dist"])
    app = create_app(predictor, Limits(max_file_mb=0.05, max_files=4, max_megapixels=0.01, queue_size=2))
    return TestClient(app), predictor, sorted((scored["folder"] / "images").glob("*.jpg"))


def test_scores_equal_iaa_score_with_ranks_and_histograms(served):
    client, predictor, photos = served
    r = client.post("/api/score", files=_files(photos[:3]))
    assert r.status_code == 200
    results = r.json()["results"]
    expected = predictor.score_paths([str(p) for p in photos[:3]])
    np.testing.assert_allclose([x["score"] for x in results], expected.score, rtol=1e-6)
    np.testing.assert_allclose([x["distribution"] for x in results], expected.dist, atol=1e-6)
    order = np.argsort(-expected.score)
    assert [results[i]["rank"] for i in order] == [1, 2, 3]
    card = client.get("/api/model").json()
    assert card["head"] == "pool3fc_dist" and card["distribution"] and card["limits"]["max_files"] == 4
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/docs").status_code == 200 and "Score your photos" in client.get("/").text


def test_every_limit_answers_4xx_and_a_bad_file_fails_only_itself(served):
    client, _, photos = served
    r = client.post("/api/score", files=_files(photos[:5]))
    assert r.status_code == 413 and "too many files: 5 > 4" in r.json()["detail"]
    text = ("notes.jpg", b"just text, named like a photo", "image/jpeg")
    r = client.post("/api/score", files=[("files", text)] + _files(photos[:1]))
    assert r.status_code == 200
    bad, good = r.json()["results"]
    assert bad["status"] == 415 and "not an image" in bad["error"] and good["score"] is not None
    assert client.post("/api/score", files=[("files", text)]).status_code == 415
    big = io.BytesIO()
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(big, "PNG")
    r = client.post("/api/score", files=[("files", ("big.png", big.getvalue(), "image/png"))])
    assert r.status_code == 413 and "file too large" in r.json()["results"][0]["error"]
    many = io.BytesIO()
    Image.new("RGB", (200, 100), (90, 120, 30)).save(many, "PNG")  # small file, 0.02 MP > 0.01 MP
    r = client.post("/api/score", files=[("files", ("wide.png", many.getvalue(), "image/png"))])
    assert r.status_code == 413 and "too many pixels" in r.json()["results"][0]["error"]


def test_two_requests_at_once_are_both_answered(served):
    client, predictor, photos = served
    out = {}

    def post(key, subset):
        out[key] = client.post("/api/score", files=_files(subset)).json()["results"]

    threads = [threading.Thread(target=post, args=(k, photos[k * 2:k * 2 + 2])) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        expected = predictor.score_paths([str(p) for p in photos[k * 2:k * 2 + 2]]).score
        np.testing.assert_allclose([x["score"] for x in out[k]], expected, rtol=1e-6)


def test_explain_returns_the_photo_with_its_heat_map(served):
    import cv2

    client, predictor, photos = served
    r = client.post("/api/explain", files={"file": (photos[0].name, photos[0].read_bytes(), "image/jpeg")})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["x-method"] == "occlusion"  # a wide kind: no gradient
    png = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert png.shape[:2] == cv2.imread(str(photos[0])).shape[:2]
    assert float(r.headers["x-score"]) == pytest.approx(predictor.score_paths([str(photos[0])]).score[0], rel=1e-5)
    bad = client.post("/api/explain", files={"file": ("x.jpg", b"text", "image/jpeg")})
    assert bad.status_code == 415


def test_a_full_queue_answers_503_with_retry_after(served, monkeypatch):
    from pipeline.scoring.serve.batcher import QueueFull

    client, _, photos = served

    def full(images):
        raise QueueFull

    monkeypatch.setattr(client.app.state.batcher, "submit", full)
    r = client.post("/api/score", files=_files(photos[:1]))
    assert r.status_code == 503 and r.headers["retry-after"] == "2"


TOKEN = "a-token-of-some-length"


@pytest.fixture(scope="module")
def guarded(scored):
    predictor = Predictor.from_run(scored["runs"]["ridge"])
    return TestClient(create_app(predictor, token=TOKEN)), predictor


def test_a_token_guards_every_api_call_and_healthz_names_the_model(guarded, scored):
    from pipeline.training.linked import model_checksum

    client, predictor = guarded
    photo = sorted((scored["folder"] / "images").glob("*.jpg"))[:1]
    for wrong in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        assert client.get("/api/model", headers=wrong).status_code == 401
        r = client.post("/api/score", files=_files(photo), headers=wrong)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    ok = {"Authorization": f"Bearer {TOKEN}"}
    card = client.get("/api/model", headers=ok).json()
    assert "# Model card: ridge" in card["card"] and "## Known limits" in card["card"]
    assert client.post("/api/score", files=_files(photo), headers=ok).status_code == 200
    health = client.get("/healthz").json()  # liveness stays open, and names what is served
    assert health["model_sha256"] == model_checksum(predictor.run) == card["model_sha256"]
    assert client.get("/").status_code == 200


def test_cors_is_off_unless_an_origin_is_named(served, scored):
    client, predictor, _ = served
    origin = {"Origin": "http://elsewhere.example"}
    assert "access-control-allow-origin" not in client.get("/api/model", headers=origin).headers
    allowed = TestClient(create_app(predictor, cors_origins=["http://elsewhere.example"]))
    assert allowed.get("/api/model", headers=origin).headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_a_request_past_its_time_limit_answers_503_and_the_server_goes_on(scored):
    import time

    predictor = Predictor.from_run(scored["runs"]["ridge"])
    photos = sorted((scored["folder"] / "images").glob("*.jpg"))[:2]
    predictor.score_paths([str(p) for p in photos])  # built and warm: a later request takes milliseconds
    slow, calls = predictor.score_arrays, []

    def first_call_stalls(images, names):
        calls.append(len(images))
        if len(calls) == 1:
            time.sleep(1.0)
        return slow(images, names)

    predictor.score_arrays = first_call_stalls
    client = TestClient(create_app(predictor, Limits(time_limit_s=0.5)))
    r = client.post("/api/score", files=_files(photos))
    assert r.status_code == 503 and r.headers["retry-after"] and "longer than 0.5 s" in r.json()["detail"]
    time.sleep(0.7)  # the stalled batch ends; its answer is dropped
    assert client.post("/api/score", files=_files(photos)).status_code == 200 and calls == [2, 2]


def test_stopping_finishes_the_batch_in_progress_and_the_queued_ones(scored):
    from pipeline.scoring.serve.batcher import Batcher, QueueFull

    predictor = Predictor.from_run(scored["runs"]["ridge"])
    image = np.full((48, 64, 3), 120, np.uint8)
    batcher = Batcher(predictor, queue_size=8, batch_images=2)
    futures = [batcher.submit([image, image]) for _ in range(5)]
    assert batcher.close(timeout=60)
    assert all(f.done() and f.result().ok.all() for f in futures)
    with pytest.raises(QueueFull):
        batcher.submit([image])
    with TestClient(create_app(predictor)) as client:  # the app's shutdown closes its batcher
        assert client.get("/healthz").status_code == 200
    assert not client.app.state.batcher._thread.is_alive()


def test_serving_beyond_loopback_needs_a_token_or_no_auth(scored, capsys):
    from pipeline.cli import main

    run = str(scored["runs"]["ridge"])
    assert main(["serve", run, "--host", "0.0.0.0"]) == 2
    assert "give --token TOKEN" in capsys.readouterr().err
    assert main(["serve", run, "--host", "0.0.0.0", "--token", "short"]) == 2
    assert "at least 16" in capsys.readouterr().err
