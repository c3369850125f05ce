"""`iaa serve`: a web page and a JSON API scoring uploaded photos with one trained run (FastAPI).

    GET  /             the page (plain HTML/CSS/JS served by the app: no build step, no CDN)
    POST /api/score    multipart field `files` (one or many images) → scores, ranks, histograms
    POST /api/explain  multipart field `file` → PNG of the photo with its heat map
    GET  /api/model    the model card
    GET  /healthz      liveness, queue length and the model's sha256
    GET  /docs         OpenAPI documentation

Uploads stay in memory (Starlette spools large parts to anonymous temporary files it deletes; nothing
is written under a name the client chooses, nothing is kept after scoring). Limits answer 4xx; a full
queue, a request past its time limit or a server stopping answers 503 with Retry-After; a bad image in a
batch fails only itself. With a token, every /api/ call needs `Authorization: Bearer <token>` (401
otherwise). No CORS header is sent unless origins are named, so other sites' pages cannot read answers.
Stopping (Ctrl-C, SIGTERM) lets requests in flight finish, then the batch in progress and those queued.
"""
import asyncio
import hmac
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, File, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from features.images import ImageError, ImageTooLarge, UnsupportedImage, decode_bytes
from pipeline.scoring.serve.batcher import Batcher, QueueFull

STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class Limits:
    """What one request may send (each beyond it is a 4xx answer naming the limit)."""

    max_file_mb: float = 25.0
    max_files: int = 16
    max_megapixels: float = 50.0
    queue_size: int = 8
    batch_images: int = 16
    time_limit_s: float = 60.0  # waiting in the queue and scoring; beyond it 503 + Retry-After


class Rejected(Exception):
    """An upload or request refused with an HTTP status and a message a person understands."""
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def check_image(data: bytes, limits: Limits, max_side) -> np.ndarray:
    """Sniffs the type from the bytes (not the name), checks size and pixels from the header before
    decoding, then decodes as extraction does. Every refusal is a `Rejected` with its 4xx status."""
    if len(data) > limits.max_file_mb * 1e6:
        raise Rejected(413, f"file too large: {len(data) / 1e6:.1f} MB > {limits.max_file_mb:g} MB")
    try:
        return decode_bytes(data, max_side, limits.max_megapixels)
    except (UnsupportedImage, ImageTooLarge) as exc:
        raise Rejected(exc.status, str(exc)) from None
    except ImageError as exc:
        raise Rejected(exc.status, f"cannot decode: {exc}") from None


def model_card(predictor, limits: Limits) -> dict:
    """What the page and `/api/model` show about the served run: head, kind, backbone, test figures, limits,
    the model's sha256 and its card (`MODEL_CARD.md`)."""
    from evaluation.model_card import read_model_card
    from pipeline.training.linked import model_checksum

    cfg, metrics = predictor.run.config, predictor.run.read_metrics() or {}
    store, test = cfg.get("store") or {}, metrics.get("test") or {}
    return {"run": predictor.run.path.name, "head": cfg["head"]["name"], "kind": cfg["kind"],
            "backbone": " + ".join(j.backbone.name for j in predictor.jobs),
            "weights": " + ".join(j.weights.text for j in predictor.jobs),
            "views": store.get("view_set"), "dataset": store.get("dataset"),
            "train_images": (cfg.get("splits") or {}).get("train"), "test_srcc": test.get("srcc"),
            "test_plcc": test.get("plcc"), "distribution": predictor.dist, "max_side": predictor.job.max_side,
            "scale": cfg.get("scale"), "limits": asdict(limits), "model_sha256": model_checksum(predictor.run),
            "card": read_model_card(predictor.run)}


async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming what is wrong with a request, without echoing its input (FastAPI's own answer turns a body
    that is not UTF-8 into a 500 while encoding it back)."""
    return JSONResponse({"detail": [{"loc": e.get("loc"), "msg": e.get("msg")} for e in exc.errors()]}, 422)


def _busy(why: str) -> JSONResponse:
    return JSONResponse({"detail": f"busy: {why}, retry shortly"}, 503, headers={"Retry-After": "2"})


def _bearer(token: Optional[str]):
    """A dependency refusing API calls without `Authorization: Bearer <token>` (none when token is None)."""
    from fastapi import HTTPException

    def check(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "missing or wrong token: send Authorization: Bearer <token> (the one given "
                                     "to iaa serve --token)", headers={"WWW-Authenticate": "Bearer"})
    return check


def create_app(predictor, limits: Limits = Limits(), token: Optional[str] = None,
               cors_origins: Sequence[str] = (), log=lambda line: None, teach=None):
    """The FastAPI app serving one predictor.

    Args:
        token: when given, every /api/ call needs `Authorization: Bearer <token>`.
        cors_origins: origins whose pages may call the API from a browser (none by default).
        log: told when the server has stopped, and how.
        teach: a `pipeline.scoring.serve.teach.TeachState`: adds the teaching page and its endpoints.
    """
    batcher = Batcher(predictor, limits.queue_size, limits.batch_images)
    card = model_card(predictor, limits)

    @asynccontextmanager
    async def lifespan(app):
        yield
        drained = await run_in_threadpool(batcher.close, limits.time_limit_s)
        log(f"stopped after {batcher.scored_batches} batches: " + ("requests in flight answered, queued batches "
            "scored" if drained else f"queued work still running after {limits.time_limit_s:g} s, left"))

    app = FastAPI(title="mlsp-iaa scoring", description="Aesthetic scores of photos from one trained run.",
                  lifespan=lifespan)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization"])
    api = APIRouter(prefix="/api", dependencies=[Depends(_bearer(token))])

    async def scored(future):
        """The batcher's answer, or a 503 response when the queue is full or the time limit passes (the job is
        then dropped unless it already runs), or a 422 saying why the model failed on these photos."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future()), limits.time_limit_s)
        except QueueFull:
            return _busy("the scoring queue is full")
        except asyncio.TimeoutError:
            return _busy(f"the request took longer than {limits.time_limit_s:g} s")
        except Exception as exc:  # noqa: BLE001  (the model failed on these photos: said, not a 500)
            return JSONResponse({"detail": f"cannot score these photos: {type(exc).__name__}: {exc}"}, 422)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "waiting": batcher.waiting, "run": card["run"], "model_sha256": card["model_sha256"]}

    @api.get("/model")
    def model():
        return card

    @api.post("/score")
    async def score(files: List[UploadFile] = File(...)):  # noqa: B008  (FastAPI's idiom)
        t0 = time.perf_counter()
        if len(files) > limits.max_files:
            return JSONResponse({"detail": f"too many files: {len(files)} > {limits.max_files} per request"}, 413)
        results, images, slots = [], [], []
        for f in files:
            data = await f.read(int(limits.max_file_mb * 1e6) + 1)
            await f.close()
            try:  # decoding in a worker thread: one large photo does not hold up other requests
                images.append(await run_in_threadpool(check_image, data, limits, predictor.job.max_side))
                slots.append(len(results))
                results.append({"name": f.filename, "score": None, "error": None})
            except Rejected as exc:
                results.append({"name": f.filename, "score": None, "error": exc.message, "status": exc.status})
        if images:
            answer = await scored(lambda: batcher.submit(images))
            if isinstance(answer, Response):
                return answer
            _fill(results, slots, answer)
        if not any(r["score"] is not None for r in results):
            status = next((r.get("status", 422) for r in results if r["error"]), 422)
            return JSONResponse({"detail": "no image could be scored", "results": results}, status)
        return {"results": results, "run": card["run"], "seconds": time.perf_counter() - t0}

    @api.post("/explain", responses={200: {"content": {"image/png": {}}}})
    async def explain_photo(file: UploadFile = File(...)):  # noqa: B008  (FastAPI's idiom)
        """The photo with its heat map: red raises the score, blue lowers it (gradient for Keras heads,
        occlusion otherwise; see `iaa explain`)."""
        from pipeline.scoring.explain import explain, overlay_png

        data = await file.read(int(limits.max_file_mb * 1e6) + 1)
        await file.close()
        try:
            image = await run_in_threadpool(check_image, data, limits, predictor.job.max_side)
        except Rejected as exc:
            return JSONResponse({"detail": exc.message}, exc.status)
        exp = await scored(lambda: batcher.submit_call(lambda p: explain(p, image)))
        if isinstance(exp, Response):
            return exp
        return Response(overlay_png(exp, image), media_type="image/png",
                        headers={"X-Score": f"{exp.score:.6g}", "X-Method": exp.method})

    app.include_router(api)
    if teach is not None:
        from pipeline.scoring.serve.teach import teach_router

        app.include_router(teach_router(teach, _bearer(token)))
        app.add_api_route("/teach", lambda: FileResponse(STATIC / "teach.html"), include_in_schema=False)
    app.state.batcher = batcher
    return app


def _fill(results: list, slots: list, scored) -> None:
    """Writes scores, ranks (1 = best among this request's scored images) and histograms into results."""
    for j, i in enumerate(slots):
        if scored.ok[j]:
            results[i]["score"] = float(scored.score[j])
            results[i]["spread"] = float(scored.spread[j])
            if scored.dist is not None:
                results[i]["distribution"] = [float(v) for v in scored.dist[j]]
        else:
            results[i].update(error=scored.reasons[j], status=422)
    ranked = sorted((r for r in results if r["score"] is not None), key=lambda r: -r["score"])
    for rank, r in enumerate(ranked, 1):
        r["rank"] = rank
