"""PNG figures next to the numbers (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List


def training_curves(history: Dict[str, List[float]], path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for key in ("loss", "val_loss"):
        if history.get(key):
            ax.plot(epochs, history[key], label=key.replace("_", " "))
    lrs = history.get("lr", [])
    for e in range(1, len(lrs)):
        if lrs[e] != lrs[e - 1]:
            ax.axvline(e + 0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title(title)
    handles = ax.get_legend_handles_labels()
    if history.get("val_srcc"):
        right = ax.twinx()
        right.plot(epochs, history["val_srcc"], color="tab:green", label="val SRCC")
        right.set_ylabel("validation SRCC")
        handles = [a + b for a, b in zip(handles, right.get_legend_handles_labels())]
    ax.legend(*handles, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _figure(size=(5.5, 5)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=size)


def _finish(plt, fig, ax, path: Path, xlabel: str, ylabel: str, title: str, legend: bool = False) -> Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scatter(true, pred, path: Path, title: str = "", scale=None) -> Path:
    import numpy as np

    plt, fig, ax = _figure()
    ax.scatter(true, pred, s=10, alpha=0.6)
    lo = min(np.min(true), np.min(pred)) if scale is None else min(scale[0], np.min(pred))
    hi = max(np.max(true), np.max(pred)) if scale is None else max(scale[1], np.max(pred))
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="identity")
    return _finish(plt, fig, ax, path, "true score", "predicted score (mean over views)", title, legend=True)


def residuals(true, pred, path: Path, title: str = "") -> Path:
    import numpy as np

    plt, fig, ax = _figure((6, 4))
    ax.scatter(true, np.asarray(pred) - np.asarray(true), s=10, alpha=0.6)
    ax.axhline(0, color="grey", linestyle="--", linewidth=1)
    return _finish(plt, fig, ax, path, "true score", "prediction - truth", title)


def histograms(true, pred, path: Path, title: str = "") -> Path:
    import numpy as np

    plt, fig, ax = _figure((6, 4))
    bins = np.linspace(min(np.min(true), np.min(pred)), max(np.max(true), np.max(pred)), 30)
    ax.hist(true, bins=bins, alpha=0.55, label="truth")
    ax.hist(pred, bins=bins, alpha=0.55, label="prediction")
    return _finish(plt, fig, ax, path, "score", "images", title, legend=True)


def best_worst_grid(pred: dict, path: Path, n: int = 6) -> Path:
    """The n best- and n worst-predicted test images with predicted and true scores."""
    import numpy as np

    order = np.argsort(np.abs(pred["pred"] - pred["true"]), kind="stable")
    picks = [("best", i) for i in order[:n]] + [("worst", i) for i in order[::-1][:n]]
    return _photo_grid(pred, picks, path, n, "predicted / true score: best (top) and worst (bottom) test predictions")


def failure_cases(pred: dict, path: Path, n: int = 40, among_top: int = 0) -> Path:
    """Hosu et al. 2019's failure cases (section 5.2, figures 8-9): among the `among_top` test photos with the
    highest true score (0: the top quarter, the paper's 5,000 of AVA's 20,000), the n with the smallest and the
    n with the largest absolute error."""
    low, high, considered = failure_picks(pred["true"], pred["pred"], n, among_top)
    picks = [("low error", i) for i in low] + [("high error", i) for i in high]
    return _photo_grid(pred, picks, path, min(len(low), 10), f"predicted / true score of the {considered} highest-rated "
                       f"test photos: the {len(low)} lowest errors, then the {len(high)} highest")


def failure_picks(true, pred, n: int, among_top: int = 0):
    """(lowest-error indices, highest-error indices (largest first), photos considered) of `failure_cases`."""
    import numpy as np

    true, pred = np.asarray(true, np.float64), np.asarray(pred, np.float64)
    top = among_top or max(1, len(true) // 4)
    high = np.argsort(-true, kind="stable")[:top]
    order = high[np.argsort(np.abs(pred - true)[high], kind="stable")]
    n = min(n, len(order))
    return order[:n].tolist(), order[::-1][:n].tolist(), len(order)


TILE, CAPTION, HEADER = 200, 18, 24  # px: a photo's cell, its caption line, the title line


def _photo_grid(pred: dict, picks, path: Path, cols: int, title: str) -> Path:
    """A mosaic of the picked photos (fitted into square cells), each captioned "label: predicted / true"."""
    from PIL import Image, ImageDraw, ImageOps

    from features.images import ImageError, decode_image

    rows = -(-len(picks) // cols)
    sheet = Image.new("RGB", (cols * TILE, HEADER + rows * (TILE + CAPTION)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((6, 6), title, fill="black")
    for k, (label, i) in enumerate(picks):
        x, y = (k % cols) * TILE, HEADER + (k // cols) * (TILE + CAPTION)
        try:
            photo = Image.fromarray(decode_image(pred["path"][i], max_side=2 * TILE))
            photo = ImageOps.contain(photo, (TILE - 8, TILE - 8))
            sheet.paste(photo, (x + (TILE - photo.width) // 2, y + (TILE - photo.height) // 2))
        except ImageError:
            draw.text((x + TILE // 3, y + TILE // 2), "missing", fill="grey")
        draw.text((x + 4, y + TILE + 2), f"{label}: {pred['pred'][i]:.2f} / {pred['true'][i]:.2f}", fill="black")
    sheet.save(path)
    return path
