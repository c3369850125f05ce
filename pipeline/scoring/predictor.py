"""A trained run as a predictor of new photos, built from its run directory alone.

The run records how its store's features were made (`config.json` "extraction": backbone, weights identity,
blocks, kinds, views, preprocessing, max side; one record per backbone for a kind of several,
`pipeline.scoring.sources`). `Predictor.from_run` rebuilds that extraction with the same code as `iaa extract`
(`pipeline.extraction.worker.compute_features`: decode, views, backbone, pooling), refuses when it cannot be
reproduced (naming what differs), and loads the head through its trainer. A photo's score is the head's
output averaged over the run's views, as in the test protocol (`evaluation.rundir.summarise_views`);
distribution heads also give the K-bin histogram.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence

import numpy as np

from evaluation.rundir import RunDir, RunDirError, summarise_views
from features import store as st
from features.cache import FeatureCache, file_key
from features.groups import base_kind, parts
from features.pooling import stale_pooling_lines
from heads import get_head
from pipeline.training import fit_keras, fit_sklearn, personal  # noqa: F401  (trainer registration)
from pipeline.training.ensemble import load_run_model
from pipeline.training.fitting import TRAINERS
from pipeline.scoring.sources import Part, PredictorError, build_jobs, compute_parts, kind_shape, part_records

PREDICT_ROWS = 256


@dataclass
class PhotoScores:
    """Scores of consecutive photos.

    Attributes:
        paths: the photos.
        ok: (n,) bool, scored.
        score: (n,) the head's score (NaN where not scored): the mean over views, or the histogram's
            expected bin (1..K) for distribution heads, as in the run's predictions.csv.
        spread: (n,) std of the per-view scores.
        dist: (n, K) histograms of distribution heads, else None.
        reasons: why a photo failed ("" when scored).
        features: {kind: (n, V, ...) float16} the photos' features (NaN where failed).
        embedding: (n, d) unit-norm embeddings Φ of embedding heads (`triplet`: φ averaged over views, then
            normalised; NaN where not scored), else None.
    """

    paths: List[str]
    ok: np.ndarray
    score: np.ndarray
    spread: np.ndarray
    dist: Optional[np.ndarray]
    reasons: List[str]
    features: dict
    embedding: Optional[np.ndarray] = None


def refuse_fused(run: RunDir) -> None:
    """A fused run (`iaa fuse`) holds predictions, not a model."""
    fusion = run.config.get("fusion")
    if fusion:
        raise PredictorError(f"{run.path} fuses the predictions of {' and '.join(fusion['members'])} (weight "
                             f"{fusion['weight']:.2f}); it has no model of its own: score photos with each member")


def extraction_record(run: RunDir) -> dict:
    """How the run's features were extracted: its config's record, else (older runs) its store's, when present."""
    refuse_fused(run)
    record = run.config.get("extraction")
    if record:
        return record
    store = (run.config.get("store") or {}).get("path")
    if store and Path(store).exists():  # runs trained before the record existed, next to their store
        with st.FeatureStore(store) as fs:
            return fs.extraction()
    raise RunDirError(f"{run.path}/config.json does not record how its features were extracted (trained before "
                      f"`iaa score` existed) and its store {store} is not here: retrain the run")


def cache_name(kind: str) -> str:
    """A kind's name in a feature cache: one part by its pooling kind (shared by every run of that backbone's
    extraction), a concatenation by its name with '/' (a directory separator there) as '~'."""
    names = parts(kind)
    return base_kind(names[0]) if len(names) == 1 else kind.replace("/", "~")


class Predictor:
    """Scores photos with a trained run: the run's extraction, then its head.

    Args:
        run: the run directory.
        jobs: the rebuilt extractions, one per backbone of the run's kind (`from_run` makes and checks them).
        parts: the parts of the run's kind (`pipeline.scoring.sources.Part`).
        extraction: the run's extraction record.

    Example:
        predictor = Predictor.from_run("runs/demo_efficientnet_lite0/single3fc_seed0")
        predictor.notes   # what differs from training and may move scores (shown by the commands)
        result = predictor.score_paths(["a.jpg", "b.jpg"])
        result.score, result.dist
    """

    def __init__(self, run: RunDir, jobs: Sequence, parts_: Sequence[Part], extraction: dict):
        cfg = run.config
        self.run = run
        self.jobs, self.parts = list(jobs), list(parts_)
        self.job = self.jobs[0]  # views and max side are every job's
        self.extraction = extraction
        self.cache: Optional[FeatureCache] = None
        self.head = get_head(cfg["head"]["name"])
        self.kind = cfg["kind"]
        self.trainer = TRAINERS.get(self.head.trainer)
        self.model = load_run_model(run)
        self.dist = self.head.target == "dist"
        self.notes = []
        for name, record in part_records(self.kind, extraction):
            kind_record = (record.get("kinds") or {}).get(base_kind(name))
            self.notes += stale_pooling_lines({"kinds": {base_kind(name): kind_record}} if kind_record else {},
                                              f"run {run.path.name}")

    @classmethod
    def from_run(cls, run_dir: str | Path, *, weights: Optional[str] = None, all_kinds: bool = False,
                 memory_gb: Optional[float] = None) -> "Predictor":
        """The predictor of a run directory (its store is not needed).

        Args:
            run_dir: a directory written by `iaa train` / `iaa ablate`.
            weights: where the backbone weights file is now, if it moved (its sha256 must match the record).
            all_kinds: compute every kind the store had (for a feature cache), not only the head's.
            memory_gb: memory budget of one forward pass (`features.memory`; default 70 % of available RAM).
        Raises:
            RunDirError, PredictorError, WeightsError: not a finished run; an extraction that cannot be
                reproduced (other weights, blocks, views, ImageNet weights offline).
        """
        run = RunDir.open(run_dir)
        if "kind" not in run.config or "head" not in run.config:
            raise RunDirError(f"{run.path}/config.json has no head or feature kind: the run is incomplete; retrain it")
        record = extraction_record(run)
        extra = list((record.get("settings") or {}).get("features") or []) if all_kinds else []
        jobs, parts_ = build_jobs(run.config["kind"], record, weights=weights, memory_gb=memory_gb, extra_kinds=extra)
        return cls(run, jobs, parts_, record)

    def single_source(self, use: str, hint: str = "score it with iaa score, best-shot, video or serve") -> tuple:
        """(extraction job, pooling kind) of a run whose kind is one backbone's one kind; else refused, naming
        `use` (something built on one backbone's graph: export, gradient maps) and what to do instead."""
        if len(self.parts) > 1:
            raise PredictorError(f"{use} needs one backbone's graph with one feature kind; run {self.run.path.name} "
                                 f"joins {' + '.join(p.name for p in self.parts)}: {hint}")
        return self.jobs[0], self.parts[0].kind

    def predict_features(self, feats: np.ndarray) -> np.ndarray:
        """(n, V, *kind shape) features → (n, V, out) head outputs."""
        n, n_views = feats.shape[:2]
        x = np.asarray(feats, np.float32).reshape((n * n_views,) + feats.shape[2:])
        parts = [self.trainer.predict(self.model, x[i:i + PREDICT_ROWS]) for i in range(0, len(x), PREDICT_ROWS)]
        out = np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)
        return out.reshape(n, n_views, -1)

    def features(self, paths: Sequence, on_done: Callable[[int], None] = lambda n: None):
        """The extraction of these photos (paths, or decoded RGB arrays; `extract_worker.TaskFeatures`), the run's
        kind under its name."""
        return compute_parts(self.jobs, self.parts, self.kind,
                             [p if isinstance(p, np.ndarray) else str(p) for p in paths], on_done)

    def score_features(self, paths: Sequence[str], feats: dict, ok: np.ndarray, reasons: List[str]) -> PhotoScores:
        """Scores photos whose features are known (`ok` marks those that have them)."""
        n = len(paths)
        score, spread = np.full(n, np.nan), np.full(n, np.nan)
        dist = embedding = None
        if ok.any():
            outputs = self.predict_features(feats[self.kind][ok])
            s, sp, d = summarise_views(outputs, self.dist)
            score[ok], spread[ok] = s, sp
            if d is not None:
                dist = np.full((n, d.shape[1]), np.nan)
                dist[ok] = d
            if self.head.has_embedding:  # outputs are [‖φ‖, φ]
                phi = outputs[..., 1:].mean(axis=1)
                embedding = np.full((n, phi.shape[1]), np.nan, np.float32)
                embedding[ok] = phi / np.maximum(np.linalg.norm(phi, axis=1, keepdims=True), 1e-12)
        return PhotoScores(list(map(str, paths)), ok, score, spread, dist, list(reasons), feats, embedding)

    def score_arrays(self, images: Sequence[np.ndarray], names: Sequence[str]) -> PhotoScores:
        """Scores decoded (H, W, 3) uint8 RGB images (video frames), named for the result."""
        buf = self.features(images)
        return self.score_features(names, buf.feats, buf.status == st.DONE, buf.reasons)

    def use_cache(self, path: str | Path) -> None:
        """Keeps the photos' features in a `FeatureCache` directory and reads them from there when seen
        before (any run of the same extraction can share it)."""
        self.cache = FeatureCache(path, self.extraction)

    def score_paths(self, paths: Sequence[str], on_done: Callable[[int], None] = lambda n: None) -> PhotoScores:
        """Extracts and scores photos; a bad one is recorded with its reason and never stops the others."""
        if self.cache is None:
            buf = self.features(paths, on_done)
            return self.score_features(paths, buf.feats, buf.status == st.DONE, buf.reasons)
        keys = [file_key(p) for p in paths]
        cached = [self.cache.get(k, cache_name(self.kind)) for k in keys]
        missing = [i for i, c in enumerate(cached) if c is None]
        buf = self.features([paths[i] for i in missing], on_done)
        on_done(len(paths) - len(missing))
        n, n_views = len(paths), len(self.job.views)
        feats = np.full((n, n_views) + self.job_shape, np.nan, np.float16)
        ok, reasons = np.ones(n, bool), [""] * n
        for i, c in enumerate(cached):
            if c is not None:
                feats[i] = c
        for j, i in enumerate(missing):
            ok[i], reasons[i] = buf.status[j] == st.DONE, buf.reasons[j]
            if ok[i]:
                feats[i] = buf.feats[self.kind][j]
                self.cache.put(keys[i], {cache_name(k): v[j] for k, v in buf.feats.items()})
        return self.score_features(paths, {self.kind: feats}, ok, reasons)

    @property
    def job_shape(self) -> tuple:
        return kind_shape(self.jobs, self.parts)

    def iter_scores(self, paths: Sequence[str], chunk: int = 16,
                    on_done: Callable[[int], None] = lambda n: None) -> Iterator[PhotoScores]:
        """`score_paths` over consecutive chunks, so memory stays bounded for any number of photos."""
        for i in range(0, len(paths), chunk):
            yield self.score_paths(paths[i:i + chunk], on_done)
