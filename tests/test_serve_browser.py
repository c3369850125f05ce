"""The scoring page driven in headless Chromium (Debian's `chromium`, through Playwright): two photos and a
non-image dropped in, two ranked scores with histograms, the error shown, the CSV downloaded, and a
screenshot kept in test-artifacts/ to look at."""
import csv
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytest.importorskip("fastapi", reason="the server's dependencies are not installed")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: `apt-get install chromium` "
                                "(.ci/run does) to run the browser tests")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TOKEN = "browser-test-token-1234"


def _serve(scored, **app_options):
    import uvicorn

    from pipeline.scoring.predictor import Predictor
    from pipeline.scoring.serve.app import create_app

    predictor = Predictor.from_run(scored["runs"]["pool3fc_dist"])
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(predictor, **app_options), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", predictor, srv, thread


@pytest.fixture(scope="module")
def server(scored):
    url, predictor, srv, thread = _serve(scored)
    yield url, predictor
    srv.should_exit = True
    thread.join(timeout=10)


def test_a_token_server_asks_once_and_shows_the_model_card(scored):
    url, _, srv, thread = _serve(scored, token=TOKEN)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("#token")
            page.fill("#token", TOKEN)
            page.click("#usetoken")
            page.wait_for_function("document.getElementById('card').textContent.includes('pool3fc_dist')")
            page.click("#card summary")
            assert "## Known limits" in page.inner_text("#cardtext")
            fresh = browser.new_page()
            fresh.goto(f"{url}/#token={TOKEN}")  # a link carrying the token: no question, no token left in the bar
            fresh.wait_for_function("document.getElementById('card').textContent.includes('pool3fc_dist')")
            assert "token" not in fresh.url
            browser.close()
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_the_page_scores_ranks_shows_errors_and_downloads_csv(server, scored, tmp_path):
    url, predictor = server
    photos = [scored["folder"] / "images" / "p03.jpg", scored["folder"] / "images" / "p20.jpg"]
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo at all")
    expected = predictor.score_paths([str(p) for p in photos]).score
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(accept_downloads=True, viewport={"width": 1000, "height": 700})
        page.goto(url)
        page.wait_for_function("document.getElementById('card').textContent.includes('pool3fc_dist')")
        page.set_input_files("#pick", [str(x) for x in photos] + [str(text)])
        page.wait_for_selector(".row >> nth=1")
        page.wait_for_selector(".error")
        scores = [float(s) for s in page.locator(".row .score").all_inner_texts()]
        assert scores == sorted(scores, reverse=True) and len(scores) == 2
        assert sorted(scores) == pytest.approx(sorted(expected), abs=1e-3)
        assert page.locator(".row .rank").all_inner_texts() == ["#1", "#2"]
        assert page.locator(".row svg.hist").count() == 2 and page.locator(".row svg.hist rect").count() == 20
        assert "notes.jpg" in page.inner_text("#errors") and "not an image" in page.inner_text("#errors")
        with page.expect_download() as download:
            page.click("#csv")
        saved = tmp_path / "scores.csv"
        download.value.save_as(saved)
        with open(saved, newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["rank"] for r in rows] == ["1", "2"] and "p10" in rows[0]
        page.check("#heat")
        page.wait_for_function("document.querySelectorAll('.row img.overlay').length === 2", timeout=120_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serve_page.png"), full_page=True)
        browser.close()


def test_teaching_by_keyboard_changes_the_ranking_and_resumes_after_a_reload(scored, tmp_path):
    from pipeline.scoring.predictor import Predictor
    from pipeline.scoring.serve.teach import TeachState

    predictor = Predictor.from_run(scored["runs"]["pool3fc_dist"])
    state = TeachState(predictor, tmp_path / "teach", scored["folder"] / "images", log=lambda m: None)
    codes = state.base.encode(state.library.X)  # [general score, principal directions of the features]
    direction = 1 + int(np.argmin([abs(np.corrcoef(codes[:, k], codes[:, 0])[0, 1]) for k in (1, 2, 3)]))
    taste = dict(zip(state.library.names, codes[:, direction]))  # a taste the general score does not see
    url, _, srv, thread = _serve(scored, teach=state)
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"{url}/teach")
            for k in range(1, 13):
                page.wait_for_function(f"document.getElementById('status').textContent === '{k - 1} answers'")
                left, right = page.inner_text("#left .name"), page.inner_text("#right .name")
                page.keyboard.press("ArrowLeft" if taste[left] > taste[right] else "ArrowRight")
            page.wait_for_function("document.getElementById('status').textContent === '12 answers'")
            page.wait_for_function("document.getElementById('agreement').textContent.startsWith('12 answers')")
            mine = page.locator("#personal li").evaluate_all("els => els.map(e => e.dataset.id)")
            theirs = page.locator("#general li").evaluate_all("els => els.map(e => e.dataset.id)")
            assert mine != theirs and len(mine) == 12
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "teach_page.png"), full_page=True)
            page.keyboard.press("u")  # undo
            page.wait_for_function("document.getElementById('status').textContent === '11 answers'")
            page.reload()
            page.wait_for_function("document.getElementById('status').textContent === '11 answers'")
            assert page.locator("#personal li").count() == 12
            browser.close()
        assert (tmp_path / "teach" / "answers.csv").read_text().count("\n") == 12
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
