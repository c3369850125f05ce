"""`iaa resolution-baseline STORE`: how much a photo's size alone says about its rating (Hosu et al. 2019, 4.3).

The paper reports the SRCC between the number of pixels (width × height) and the MOS on AVA (0.188), and a small
fully connected network (11-9-7-2 neurons, cross-entropy) that classifies high (MOS above 5) and low photos
from their width and height, each divided by its maximum: 72.40 % accuracy against 71.08 % for calling every
test photo high. Both use only the store's recorded `width` / `height` (the decoded photo's, before views), so
no features are read. The network is scikit-learn's `MLPClassifier` with hidden layers (11, 9, 7); its single
logistic output is the two-way softmax of the paper's 2 output neurons.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from evaluation.metrics import MetricError, srcc, threshold_for_scale
from features import store as st
from pipeline.training.recipe import TrainError

HIDDEN = (11, 9, 7)


def resolution_baseline(store: str, out: Optional[str] = None, seed: int = 0,
                        log: Callable[[str], None] = print) -> dict:
    """SRCC(pixels, MOS) per split and the size-only classifier's test accuracy; writes resolution.{json,md}."""
    from sklearn.neural_network import MLPClassifier

    with st.FeatureStore(store) as fs:
        done = (np.asarray(fs.status) == st.DONE) & np.isfinite(fs.mos)
        split, mos, scale = np.asarray(fs.split), np.asarray(fs.mos, np.float64), fs.scale
        size = np.stack([np.asarray(fs.width, np.float64), np.asarray(fs.height, np.float64)], axis=1)
    threshold = threshold_for_scale(scale)
    train, test = done & (split == "train"), done & (split == "test")
    if not train.any() or not test.any():
        raise TrainError(f"store {store}: the resolution baseline needs labelled train and test photos")
    result = {"store": str(store), "threshold": threshold, "pixels_srcc": {}}
    for name, rows in (("test", test), ("all", done)):
        try:
            result["pixels_srcc"][name] = srcc(size[rows, 0] * size[rows, 1], mos[rows])
        except MetricError as exc:
            result["pixels_srcc"][name] = None
            result[f"pixels_srcc_{name}_error"] = str(exc)
    scaled = size / size[done].max(axis=0)
    high = mos > threshold
    if len(set(high[train])) > 1:
        model = MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=2000, random_state=seed)
        predicted = model.fit(scaled[train], high[train]).predict(scaled[test])
    else:  # one class in training: the network can only say that class
        predicted = np.full(int(test.sum()), bool(high[train][0]))
    majority = high[train].mean() >= 0.5
    result.update(test_photos=int(test.sum()), accuracy=float((predicted == high[test]).mean()),
                  majority_accuracy=float((high[test] == majority).mean()), majority_class="high" if majority else "low")
    out_dir = Path(out) if out else Path(store).parent / f"resolution_{Path(store).stem}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "resolution.json").write_text(json.dumps(result, indent=2))
    (out_dir / "resolution.md").write_text(_markdown(result))
    log(f"{out_dir}: SRCC(pixels, MOS) on test {_text(result['pixels_srcc']['test'])}; size-only classifier "
        f"{result['accuracy']:.2%} against {result['majority_accuracy']:.2%} for always '{result['majority_class']}'")
    return result


def _text(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _markdown(r: dict) -> str:
    return "\n".join([
        f"# Resolution alone on `{r['store']}`", "",
        "Hosu et al. 2019, section 4.3: SRCC(width × height, MOS) and an 11-9-7-2 network on width and height.", "",
        "| measure | value |", "|---|---|",
        f"| SRCC(pixels, MOS), test | {_text(r['pixels_srcc']['test'])} |",
        f"| SRCC(pixels, MOS), all labelled photos | {_text(r['pixels_srcc']['all'])} |",
        f"| size-only classifier, test accuracy (high = above {r['threshold']:g}) | {r['accuracy']:.2%} |",
        f"| always '{r['majority_class']}' (the training split's majority), test accuracy | {r['majority_accuracy']:.2%} |",
        ""])
