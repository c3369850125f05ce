"""`iaa explain`: heat maps of what raises and what lowers a photo's score under a trained run.

- `gradient` (Keras heads): gradient × (input − the photo's mean colour), through the run's own graph
  (backbone, pooling, head) on each of its views, mapped back through crop and flip and averaged where
  views overlap, then blurred into regions (σ = 2 % of the longer side). It is the first-order estimate
  of how much each pixel adds to the score relative to a flat photo of its mean colour, in one backward
  pass per view.
- `occlusion` (any head, scikit-learn included): the photo is re-scored with each cell of a grid painted
  in its mean colour; a cell's value is the score lost by hiding it. Model-agnostic and exact for what it
  measures, but grid² + 1 scorings.
`auto` uses the gradient where the head and its feature kind are differentiable, else occlusion.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from features.core.errors import UsageError
from features.images import decode_image
from pipeline.extraction.worker import get_extractor, prepare_image
from pipeline.scoring.predictor import Predictor

METHODS = ("auto", "gradient", "occlusion")


@dataclass
class Explanation:
    """A photo's score and its signed heat map (H, W) in score units (positive: raises the score)."""

    path: str
    score: float
    heat: np.ndarray
    method: str


def _score_tensor(predictor: Predictor, out):
    """The score of head outputs (V, out) as the run defines it (expected bin for distributions)."""
    import tensorflow as tf

    if not predictor.dist:
        return out[:, 0]
    bins = tf.range(1, out.shape[-1] + 1, dtype=out.dtype)
    return tf.reduce_sum(out * bins, axis=-1) / tf.maximum(tf.reduce_sum(out, axis=-1), 1e-12)


def view_gradients(predictor: Predictor, views: np.ndarray) -> np.ndarray:
    """d(mean score over views) / d(pixels) of each view: (V, h, w, 3), one backward pass per view."""
    import tensorflow as tf

    job, kind = predictor.single_source("--method gradient", "use --method occlusion")
    extractor = get_extractor(job)
    grads = []
    for view in views:
        x = tf.constant(view[None], tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x)
            feats = extractor.pooled(x)[kind]
            score = _score_tensor(predictor, predictor.model(feats, training=False))[0] / len(views)
        grad = tape.gradient(score, x)
        if grad is None:
            raise UsageError(f"no gradient flows through {predictor.kind}; use --method occlusion")
        grads.append(grad.numpy()[0])
    return np.stack(grads)


def gradient_map(predictor: Predictor, path: str) -> np.ndarray:
    """Gradient × (input − mean colour), per pixel of the photo as the run decodes it."""
    views, (h, w) = prepare_image(path, predictor.job)
    try:
        grads = view_gradients(predictor, views)
    except LookupError as exc:  # an op without a registered gradient (e.g. area resizing of wide kinds)
        raise UsageError(f"{predictor.kind} features are not differentiable here ({exc}); use --method "
                         f"occlusion") from None
    image = views.astype(np.float32)
    attribution = (grads * (image - image.mean(axis=(1, 2), keepdims=True))).sum(axis=-1)
    heat, count = np.zeros((h, w)), np.zeros((h, w))
    for view, a in zip(predictor.job.views, attribution):
        top, left, ch, cw = view.box(h, w)
        heat[top:top + ch, left:left + cw] += a[:, ::-1] if view.flip else a
        count[top:top + ch, left:left + cw] += 1
    return _regions(heat / np.maximum(count, 1))


def _regions(heat: np.ndarray) -> np.ndarray:
    """Pixel attributions blurred into regions (Gaussian, σ = 2 % of the longer side): single pixels'
    gradients alternate in sign, what a person asks is which parts of the photo help."""
    import cv2

    sigma = max(1.0, 0.02 * max(heat.shape))
    return cv2.GaussianBlur(heat.astype(np.float32), (0, 0), sigma)


def occlusion_map(predictor: Predictor, image: np.ndarray, grid: int) -> tuple:
    """(score of the photo, (H, W) score lost when each of grid × grid cells is painted its mean colour)."""
    h, w = image.shape[:2]
    ys, xs = np.linspace(0, h, grid + 1).astype(int), np.linspace(0, w, grid + 1).astype(int)
    fill = image.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    images = [image]
    for r in range(grid):
        for c in range(grid):
            hidden = image.copy()
            hidden[ys[r]:ys[r + 1], xs[c]:xs[c + 1]] = fill
            images.append(hidden)
    result = predictor.score_arrays(images, [f"cell {i}" for i in range(len(images))])
    if not result.ok.all():
        raise UsageError(f"occlusion could not score the photo: {next(r for r in result.reasons if r)}")
    drops = (result.score[0] - result.score[1:]).reshape(grid, grid)
    heat = np.zeros((h, w))
    for r in range(grid):
        for c in range(grid):
            heat[ys[r]:ys[r + 1], xs[c]:xs[c + 1]] = drops[r, c]
    return float(result.score[0]), heat


def explain(predictor: Predictor, path, method: str = "auto", grid: int = 6) -> Explanation:
    """Scores a photo (a path, or a decoded RGB array such as an upload) and explains its score with
    `method` (see the module docstring)."""
    if method not in METHODS:
        raise UsageError(f"--method must be one of {', '.join(METHODS)}; received {method!r}")
    if method == "gradient" and predictor.head.trainer != "keras":
        raise UsageError(f"{predictor.head.name} is a scikit-learn head: no gradient; use --method occlusion")
    use_gradient = method == "gradient" or (method == "auto" and predictor.head.trainer == "keras")
    if use_gradient:
        try:
            heat = gradient_map(predictor, path)
            score = (predictor.score_arrays([path], ["photo"]) if isinstance(path, np.ndarray)
                     else predictor.score_paths([path]))
            if not score.ok[0]:
                raise UsageError(score.reasons[0])
            return Explanation(_name(path), float(score.score[0]), heat, "gradient")
        except UsageError:
            if method == "gradient":
                raise
    image = path if isinstance(path, np.ndarray) else decode_image(path, predictor.job.max_side)
    score, heat = occlusion_map(predictor, image, grid)
    return Explanation(_name(path), score, heat, "occlusion")


def _name(source) -> str:
    return "photo" if isinstance(source, np.ndarray) else str(source)


def overlay_png(exp: Explanation, image: np.ndarray, alpha: float = 0.55) -> bytes:
    """The photo with its heat map blended in (red raises, blue lowers; symmetric scale), as PNG bytes."""
    import cv2
    from matplotlib import colormaps

    limit = float(np.abs(exp.heat).max()) or 1.0
    colours = colormaps["RdBu_r"]((exp.heat / limit + 1) / 2)[..., :3] * 255
    strength = alpha * np.clip(np.abs(exp.heat) / limit * 2, 0, 1)[..., None]  # faint where nothing matters
    blended = image * (1 - strength) + colours * strength
    ok, data = cv2.imencode(".png", np.ascontiguousarray(blended.astype(np.uint8)[..., ::-1]))
    return data.tobytes()


def save_overlay(exp: Explanation, image: np.ndarray, out: Path, title: Optional[str] = None) -> Path:
    """The photo with its heat map overlaid (red raises the score, blue lowers it), beside the photo."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    limit = float(np.abs(exp.heat).max()) or 1.0
    h, w = image.shape[:2]
    fig, axes = plt.subplots(1, 2, figsize=(10, 5 * h / w + 0.8))
    axes[0].imshow(image)
    axes[0].set_title(f"score {exp.score:.3f}", fontsize=11)
    axes[1].imshow(image)
    shown = axes[1].imshow(exp.heat, cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.6)
    axes[1].set_title(f"{exp.method}: red raises the score, blue lowers it", fontsize=10)
    for ax in axes:
        ax.axis("off")
    unit = "score per pixel" if exp.method == "gradient" else "score lost when hidden"
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.02, label=unit)
    fig.suptitle(title or Path(exp.path).name, fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
