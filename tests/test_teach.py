"""Teaching mode of `iaa serve`: pairs, answers, undo, skip, the personal run written and resumed, the token
and bad input (fuzzed bodies) answered 4xx, never 500."""
import json

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server's dependencies are not installed")

from fastapi.testclient import TestClient  # noqa: E402

from pipeline.scoring.predictor import Predictor  # noqa: E402
from pipeline.scoring.serve.app import create_app  # noqa: E402
from pipeline.scoring.serve.teach import TeachState  # noqa: E402

TOKEN = "teaching-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def teaching(scored, tmp_path_factory):
    teach_dir = tmp_path_factory.mktemp("teach")
    predictor = Predictor.from_run(scored["runs"]["ridge"])
    state = TeachState(predictor, teach_dir, scored["folder"] / "images", log=lambda m: None)
    return TestClient(create_app(predictor, token=TOKEN, teach=state), raise_server_exceptions=False), state, teach_dir


def test_answers_teach_a_personal_run_that_resumes(teaching, scored):
    client, state, teach_dir = teaching
    assert client.get("/api/teach/pair").status_code == 401
    assert client.get("/teach").status_code == 200 and "Which of these two" in client.get("/teach").text
    general = state.library.general
    for _ in range(8):  # this person prefers what the general run likes less
        pair = client.get("/api/teach/pair", headers=AUTH).json()
        a, b = pair["a"]["id"], pair["b"]["id"]
        better, worse = (a, b) if general[a] < general[b] else (b, a)
        ranking = client.post("/api/teach/answer", json={"better": better, "worse": worse}, headers=AUTH).json()
    assert ranking.get("answers") == 8 and len(ranking["personal"]) == 12, ranking
    assert (teach_dir / "answers.csv").read_text().count("\n") == 9
    config = json.loads((teach_dir / "personal" / "config.json").read_text())
    assert config["personal"]["pair_answers"] == 8
    photos = [str(p) for p in state.library.paths]
    mine = Predictor.from_run(teach_dir / "personal").score_paths(photos).score
    np.testing.assert_allclose(mine, state.model.predict(state.library.X), rtol=1e-4, atol=1e-4)
    assert client.post("/api/teach/undo", headers=AUTH).json()["answers"] == 7
    resumed = TeachState(state.predictor, teach_dir, state.library_dir, log=lambda m: None)
    assert resumed.answers == state.answers and resumed.model is not None
    photo = client.get("/api/teach/photo/0", headers=AUTH)
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"


def test_skipped_pairs_are_not_asked_again(teaching):
    client, state, _ = teaching
    pair = client.get("/api/teach/pair", headers=AUTH).json()
    a, b = pair["a"]["id"], pair["b"]["id"]
    assert client.post("/api/teach/skip", json={"a": a, "b": b}, headers=AUTH).status_code == 200
    assert tuple(sorted((a, b))) in state.asked


def test_fuzzed_teaching_requests_answer_4xx_never_500(teaching):
    client, state, _ = teaching
    rng = np.random.default_rng(28)
    n = len(state.library.names)
    values = [-1, 0, 1, n, n + 5, 2 ** 40, 1.5, "x", None, [], {}]
    answers = len(state.answers)
    for _ in range(120):
        body = {k: values[rng.integers(len(values))] for k in rng.choice(["better", "worse", "a", "b", "z"], 2)}
        path = rng.choice(["/api/teach/answer", "/api/teach/skip"])
        r = client.post(str(path), json=body, headers=AUTH)
        assert r.status_code in (200, 422), (path, body, r.status_code, r.text[:200])
    for bad in ("/api/teach/photo/-1", f"/api/teach/photo/{n}", "/api/teach/photo/x"):
        assert client.get(bad, headers=AUTH).status_code in (404, 422)
    assert client.post("/api/teach/answer", content=b"\xff\x00 not json", headers=AUTH).status_code == 422
    garbage = {**AUTH, "Content-Type": "multipart/form-data; boundary=x"}
    assert client.post("/api/score", content=b"\xff\x00--x\r\nnot a part", headers=garbage).status_code in (400, 422)
    assert len(state.answers) >= answers  # only well-formed answers (two different photos) were taken
