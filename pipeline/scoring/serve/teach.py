"""`iaa serve GENERAL_RUN --teach-dir DIR --library FOLDER`: teach the scorer your taste, in the page.

    GET  /teach                   the teaching page (two photos: ← or → for the better one, S skips, U undoes)
    GET  /api/teach/pair          the next pair to ask about (`pipeline.training.active`)
    GET  /api/teach/photo/{i}     a library photo (JPEG, at most 640 px), by its row: never by a path
    POST /api/teach/answer        {"better": i, "worse": j}
    POST /api/teach/skip          {"a": i, "b": j}
    POST /api/teach/undo          the last answer taken back
    GET  /api/teach/ranking       the library ranked by the personal and the general model, the agreement

The library's photos are scored once by the general run (features kept in DIR/cache). Answers go to
DIR/answers.csv as they come; every few answers the personal head (`heads.personal`) is refitted and
written as a run directory, DIR/personal (score, serve or pack it like any run). Restarting with the
same DIR resumes. Nothing is sent anywhere: the page talks to this server only.
"""
from __future__ import annotations

import csv
import threading
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from pydantic import BaseModel

REFIT_EVERY = 2  # answers between refits (each takes well under a second on 2,000 photos)
SHOWN = 12  # photos per ranking on the page


class TeachState:
    """One person's teaching session: library, answers, the current personal model (thread-safe)."""

    def __init__(self, predictor, teach_dir: str | Path, library_dir: str | Path, log=print, seed: int = 0):
        from heads.personal import PersonalHead
        from pipeline.training.personalize import load_library

        self.dir, self.library_dir, self.predictor, self.seed = Path(teach_dir), str(library_dir), predictor, seed
        self.dir.mkdir(parents=True, exist_ok=True)
        predictor.use_cache(self.dir / "cache")
        self.library = load_library(predictor, library_dir, log=log)
        self.base = PersonalHead(seed=seed).fit_library(self.library.X)  # the projection, once
        self.codes = self.base.encode(self.library.X)
        self.answers: List[Tuple[int, int]] = []
        self.asked = set()
        self.model = None
        self.lock = threading.Lock()
        self.rng = np.random.default_rng(seed)
        self._resume(log)

    @property
    def answers_file(self) -> Path:
        return self.dir / "answers.csv"

    def _resume(self, log) -> None:
        if not self.answers_file.is_file():
            return
        index, unknown = self.library.index(), 0
        with open(self.answers_file, newline="") as f:
            for row in csv.reader(f):
                if len(row) == 2 and row[0] in index and row[1] in index:
                    self.answers.append((index[row[0]], index[row[1]]))
                elif row != ["better", "worse"]:
                    unknown += 1
        self.asked = {tuple(sorted(p)) for p in self.answers}
        log(f"resumed {len(self.answers)} answers from {self.answers_file}"
            + (f" ({unknown} naming photos no longer in the library left out)" if unknown else ""))
        self._refit()

    def _save_answers(self) -> None:
        names = self.library.names
        tmp = self.answers_file.with_suffix(".partial")
        tmp.write_text("better,worse\n" + "".join(f"{names[a]},{names[b]}\n" for a, b in self.answers))
        tmp.replace(self.answers_file)

    def _refit(self) -> None:
        from pipeline.training.personalize import fit_personal, write_personal_run

        if not self.answers:
            self.model = None
            return
        self.model = fit_personal(self.library, self.answers, self.seed, base=self.base)
        names = self.library.names
        write_personal_run(self.dir / "personal", self.predictor.run, self.model, self.library,
                           [(names[a], names[b]) for a, b in self.answers], (len(self.answers), 0), self.library_dir)

    def next_pair(self) -> Tuple[int, int]:
        """The next pair to ask about (the active rule once there are enough answers)."""
        from pipeline.training.active import next_pair

        with self.lock:
            return next_pair(self.model, self.codes, len(self.library.names), self.asked, len(self.answers), self.rng)

    def answer(self, better: int, worse: int) -> None:
        """Records an answer; refits every `REFIT_EVERY` answers."""
        self._check(better, worse)
        with self.lock:
            self.answers.append((better, worse))
            self.asked.add(tuple(sorted((better, worse))))
            self._save_answers()
            if len(self.answers) % REFIT_EVERY == 0 or len(self.answers) < REFIT_EVERY:
                self._refit()

    def skip(self, a: int, b: int) -> None:
        """A pair the person would rather not judge: never asked again (this session)."""
        self._check(a, b)
        with self.lock:
            self.asked.add(tuple(sorted((a, b))))

    def undo(self) -> Optional[Tuple[int, int]]:
        """Takes the last answer back (and refits); returns it, or None when there was none."""
        with self.lock:
            if not self.answers:
                return None
            last = self.answers.pop()
            self.asked.discard(tuple(sorted(last)))
            self._save_answers()
            self._refit()
            return last

    def ranking(self) -> dict:
        """The library ranked by the personal and by the general model (best first), and the agreement."""
        with self.lock:
            general = np.argsort(-self.library.general, kind="stable")
            mine = general if self.model is None else np.argsort(-self.model.predict(self.library.X), kind="stable")
            m = self.model
            return {"answers": len(self.answers), "photos": len(self.library.names),
                    "personal": [int(i) for i in mine[:SHOWN]], "general": [int(i) for i in general[:SHOWN]],
                    "choice": None if m is None else m.choice_,
                    "agreement": None if m is None or not np.isfinite(m.cv_accuracy_) else float(m.cv_accuracy_),
                    "agreement_general": None if m is None or not np.isfinite(m.cv_accuracy_general_)
                    else float(m.cv_accuracy_general_)}

    def _check(self, a: int, b: int) -> None:
        n = len(self.library.names)
        if not (0 <= a < n and 0 <= b < n) or a == b:
            raise ValueError(f"photos are rows 0 to {n - 1} of the library, two different ones; received {a} and {b}")


class Answer(BaseModel):
    """The body of POST /api/teach/answer: library rows of the preferred photo and the other."""
    better: int
    worse: int


class Pair(BaseModel):
    """The body of POST /api/teach/skip."""
    a: int
    b: int


def photo_jpeg(state: TeachState, i: int, side: int = 640) -> bytes:
    """A library photo as JPEG, decoded as scoring decodes it and shrunk to `side`."""
    import cv2

    from features.images import decode_image

    image = decode_image(state.library.paths[i], max_side=side)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    return data.tobytes()


def teach_router(state: TeachState, auth):
    """The /api/teach endpoints (behind the server's token dependency `auth`)."""
    from fastapi import APIRouter, Depends
    from fastapi.responses import JSONResponse, Response

    api = APIRouter(prefix="/api/teach", dependencies=[Depends(auth)])

    def photo(i: int) -> dict:
        return {"id": i, "name": state.library.names[i], "url": f"/api/teach/photo/{i}"}

    @api.get("/pair")
    def pair():
        try:
            a, b = state.next_pair()
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, 409)
        return {"a": photo(a), "b": photo(b), "answers": len(state.answers)}

    @api.get("/photo/{i}", responses={200: {"content": {"image/jpeg": {}}}})
    def library_photo(i: int):
        if not 0 <= i < len(state.library.names):
            return JSONResponse({"detail": f"no photo {i}: the library has {len(state.library.names)}"}, 404)
        return Response(photo_jpeg(state, i), media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    def checked(call, *args):
        try:
            call(*args)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, 422)
        return state.ranking()

    @api.post("/answer")
    def answer(body: Answer):
        return checked(state.answer, body.better, body.worse)

    @api.post("/skip")
    def skip(body: Pair):
        return checked(state.skip, body.a, body.b)

    @api.post("/undo")
    def undo():
        state.undo()
        return state.ranking()

    @api.get("/ranking")
    def ranking():
        out = state.ranking()
        return {**out, "names": {i: state.library.names[i] for i in set(out["personal"]) | set(out["general"])}}

    return api
