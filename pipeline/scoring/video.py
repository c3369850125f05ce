"""`iaa video`: a video's sampled frames scored by a trained run, the score curve, and its key frames.

Frames are decoded with OpenCV (already a dependency; no package pulling in `opencv-python`), sampled
every N-th frame or N per second, scored in chunks (memory stays bounded for any length), smoothed by a
centred moving average, and cut into shots where the colour histograms of consecutive samples stop
correlating. Key frames are the best smoothed samples, at most one per shot and at least `min_gap`
seconds apart, saved as JPEGs at the video's resolution.
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np

from features.core.errors import UsageError
from pipeline.scoring.predictor import Predictor

SHOT_CORRELATION = 0.6  # consecutive samples whose HSV histograms correlate less start a new shot


class VideoError(UsageError):
    """A video that cannot be opened or decoded."""


@dataclass
class VideoResult:
    """Per sample: frame index, time, score, smoothed score, shot; the picked samples (best first)."""

    frames: np.ndarray
    times: np.ndarray
    scores: np.ndarray
    smoothed: np.ndarray
    shots: np.ndarray
    picks: List[int]
    fps: float
    failed: int
    seconds: float


def open_video(path: str):
    """(cv2.VideoCapture, fps, frame count); refuses what OpenCV cannot decode."""
    import cv2

    if not Path(path).is_file():
        raise VideoError(f"{path}: no such video file")
    from features.images import MAX_MEGAPIXELS

    try:
        cap = cv2.VideoCapture(str(path))
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > MAX_MEGAPIXELS * 1e6:  # from the container's header, before a frame is decoded
            cap.release()
            raise VideoError(f"{path}: frames of {w}x{h} = {w * h / 1e6:,.0f} MP > {MAX_MEGAPIXELS:g} MP")
        ok, _ = cap.read() if cap.isOpened() else (False, None)
    except cv2.error as exc:
        raise VideoError(f"{path}: OpenCV cannot decode it ({str(exc).strip().splitlines()[-1]})") from None
    if not ok:
        cap.release()
        raise VideoError(f"{path}: cannot be decoded as a video by OpenCV (not a video, or a codec this "
                         f"build lacks); convert it, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`")
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    fps = cap.get(cv2.CAP_PROP_FPS)
    return cap, (fps if fps and np.isfinite(fps) and fps > 0 else 25.0), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))


def sample_frames(cap, step: int) -> Iterator[Tuple[int, np.ndarray]]:
    """(frame index, RGB frame) of every `step`-th frame, decoding only those (grab skips the rest)."""
    import cv2

    index = 0
    while True:
        if index % step == 0:
            ok, frame = cap.read()
            if not ok:
                return
            yield index, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        elif not cap.grab():
            return
        index += 1


def colour_signature(frame: np.ndarray) -> np.ndarray:
    """A normalised 8x8 hue-saturation histogram (cheap, robust to small motion)."""
    import cv2

    hsv = cv2.cvtColor(cv2.resize(frame, (128, 72), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [8, 8], [0, 180, 0, 256]).ravel()
    return hist / max(hist.sum(), 1)


def shots_from_signatures(signatures: List[np.ndarray], threshold: float = SHOT_CORRELATION) -> np.ndarray:
    """Shot number of every sample: a new shot where consecutive histograms correlate below `threshold`."""
    shots, shot = [], 0
    for i, sig in enumerate(signatures):
        if i and np.corrcoef(signatures[i - 1], sig)[0, 1] < threshold:
            shot += 1
        shots.append(shot)
    return np.asarray(shots, int)


def smooth(values: np.ndarray, window: int, shots: Optional[np.ndarray] = None) -> np.ndarray:
    """Centred moving average over `window` samples within each shot (never across a cut; shorter at the
    ends); NaNs (failed frames) are ignored."""
    v = np.asarray(values, np.float64)
    shots = np.zeros(len(v), int) if shots is None else np.asarray(shots)
    out = np.full(len(v), np.nan)
    half = max(1, window) // 2
    for shot in np.unique(shots):
        idx = np.flatnonzero(shots == shot)
        ok = np.isfinite(v[idx])
        total = np.concatenate([[0.0], np.cumsum(np.where(ok, v[idx], 0.0))])
        count = np.concatenate([[0], np.cumsum(ok)])
        pos = np.arange(len(idx))
        lo, hi = np.clip(pos - half, 0, len(idx)), np.clip(pos - half + max(1, window), 0, len(idx))
        n = count[hi] - count[lo]
        out[idx] = np.where(n > 0, (total[hi] - total[lo]) / np.maximum(n, 1), np.nan)
    return out


def pick_key_frames(smoothed: np.ndarray, times: np.ndarray, shots: np.ndarray, top: int, min_gap: float) -> List[int]:
    """Best samples first, at most one per shot and at least `min_gap` seconds from each other."""
    picks: List[int] = []
    for i in np.argsort(-np.nan_to_num(smoothed, nan=-np.inf), kind="stable"):
        if len(picks) == top or not np.isfinite(smoothed[i]):
            break
        if all(shots[i] != shots[j] and abs(times[i] - times[j]) >= min_gap for j in picks):
            picks.append(int(i))
    return picks


def score_video(predictor: Predictor, path: str, *, every: Optional[int] = None, per_second: Optional[float] = None,
                window: int = 5, top: int = 5, min_gap: float = 2.0, chunk: int = 16,
                progress: bool = True) -> Tuple[VideoResult, dict]:
    """Samples, scores, smooths and picks key frames.

    Args:
        every, per_second: sample every N-th frame, or N frames per second (default 1 per second).
        window: moving-average window in samples.
        top, min_gap: key frames to pick, and the fewest seconds between two.
        chunk: frames per extraction batch.
        progress: show a progress bar (rate, ETA) on stderr.
    Returns:
        (the result, {sample index: BGR frame} of the picks).
    Raises:
        VideoError: a file OpenCV cannot decode.
    """
    from pipeline.scoring.score import progress_bar

    cap, fps, n_frames = open_video(path)
    step = every or max(1, int(round(fps / (per_second or 1.0))))
    frames, scores, signatures, failed = [], [], [], 0
    t0 = time.perf_counter()
    bar = progress_bar(-(-n_frames // step) if n_frames > 0 else None, "video", "frame") if progress else None
    on_done = bar.update if bar is not None else (lambda n: None)
    try:
        batch: List[Tuple[int, np.ndarray]] = []
        for item in sample_frames(cap, step):
            batch.append(item)
            signatures.append(colour_signature(item[1]))
            if len(batch) == chunk:
                failed += _score_batch(predictor, batch, frames, scores, on_done)
                batch = []
        if batch:
            failed += _score_batch(predictor, batch, frames, scores, on_done)
    finally:
        cap.release()
        if bar is not None:
            bar.close()
    if not frames:
        raise VideoError(f"{path}: no frame could be decoded")
    frames_a, scores_a = np.asarray(frames), np.asarray(scores, np.float64)
    times, shots = frames_a / fps, shots_from_signatures(signatures)
    smoothed = smooth(scores_a, window, shots)
    picks = pick_key_frames(smoothed, times, shots, top, min_gap)
    result = VideoResult(frames_a, times, scores_a, smoothed, shots, picks, fps, failed, time.perf_counter() - t0)
    return result, _picked_frames(path, frames_a, picks)


def _score_batch(predictor: Predictor, batch, frames: list, scores: list, on_done) -> int:
    out = predictor.score_arrays([f for _, f in batch], [f"frame {i}" for i, _ in batch])
    frames += [i for i, _ in batch]
    scores += list(out.score)
    on_done(len(batch))
    return int((~out.ok).sum())


def _picked_frames(path: str, frames: np.ndarray, picks: List[int]) -> dict:
    """Decodes the picked frames again (keeping every sample in memory would not be bounded)."""
    import cv2

    out = {}
    cap = cv2.VideoCapture(str(path))
    try:
        for i in picks:
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(frames[i]))
            ok, frame = cap.read()
            if ok:
                out[i] = frame  # BGR, as cv2.imwrite wants it
    finally:
        cap.release()
    return out


def write_video_outputs(result: VideoResult, picked: dict, out: Path, title: str) -> None:
    """frames.csv, keyframes/*.jpg and curve.png (scores, smoothed curve, shot cuts, picks)."""
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    keydir = out / "keyframes"
    keydir.mkdir(exist_ok=True)
    rank = {i: r + 1 for r, i in enumerate(result.picks)}
    with open(out / "frames.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "time_s", "score", "smoothed", "shot", "key_rank"])
        for i in range(len(result.frames)):
            w.writerow([int(result.frames[i]), f"{result.times[i]:.3f}", f"{result.scores[i]:.6g}",
                        f"{result.smoothed[i]:.6g}", int(result.shots[i]), rank.get(i, "")])
    for i, frame in picked.items():
        cv2.imwrite(str(keydir / f"key{rank[i]:02d}_t{result.times[i]:08.2f}s.jpg"), frame,
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot(result.times, result.scores, ".", color="#999", ms=3, label="sampled frames")
    ax.plot(result.times, result.smoothed, "-", color="#2a7", label="smoothed")
    for t in result.times[1:][np.diff(result.shots) > 0]:
        ax.axvline(t, color="#ccc", lw=0.8, zorder=0)
    for i in result.picks:
        ax.plot(result.times[i], result.smoothed[i], "v", color="#c33", ms=9)
        ax.annotate(str(rank[i]), (result.times[i], result.smoothed[i]), textcoords="offset points",
                    xytext=(0, 8), ha="center", color="#c33")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("score")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "curve.png", dpi=110)
    plt.close(fig)
