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
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
