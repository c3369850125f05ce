"""Fills a Keras model from a torch state dict, layer by layer, every tensor used exactly once."""
from __future__ import annotations

from typing import Iterable, Sequence, Tuple

import numpy as np

from features.torch_legacy import TorchFileError, read_state_dict

# torch → Keras axis order of each kind of weight.
_KERNEL_AXES = {"conv": (2, 3, 1, 0), "dw": (2, 3, 0, 1), "dense": (1, 0)}
_BN_KEYS = ("weight", "bias", "running_mean", "running_var")  # Keras: gamma, beta, moving mean, variance
BN_COUNTER = "num_batches_tracked"


def _layer_arrays(state: dict, prefix: str, kind: str, used: set) -> list:
    def take(key):
        if key not in state:
            raise TorchFileError(f"the weights file has no tensor {key!r}")
        used.add(key)
        return state[key]

    if kind == "bn":
        return [take(f"{prefix}.{k}") for k in _BN_KEYS]
    kernel = np.transpose(take(f"{prefix}.weight"), _KERNEL_AXES[kind])
    bias = [take(f"{prefix}.bias")] if kind == "dense" or f"{prefix}.bias" in state else []
    return [kernel] + bias


def load_torch_weights(model, path: str, layout: Sequence[Tuple[str, str, str]],
                       unused_ok: Iterable[str] = ()) -> None:
    """Sets the weights of `model` from the legacy torch file at `path`.

    Args:
        model: the Keras model.
        layout: (Keras layer name, state-dict prefix, kind) rows, kind in conv/dw/bn/dense.
        unused_ok: state-dict prefixes the model may leave unused (a classifier the model does not have).

    Raises:
        TorchFileError: a tensor missing, of another shape than the Keras layer's, or left unused.
    """
    state = read_state_dict(path)
    used: set = set()
    for layer_name, prefix, kind in layout:
        layer = model.get_layer(layer_name)
        arrays = _layer_arrays(state, prefix, kind, used)
        expected = [tuple(w.shape) for w in layer.weights]
        received = [tuple(a.shape) for a in arrays]
        if expected != received:
            raise TorchFileError(f"{path}: {prefix} has shapes {received}; layer {layer_name} of {model.name} "
                                 f"expects {expected}. The file is not a {model.name} state dict")
        layer.set_weights([a.astype(np.float32) for a in arrays])
    left = [k for k in state if k not in used and not k.endswith(BN_COUNTER)
            and not any(k.startswith(p) for p in unused_ok)]
    if left:
        raise TorchFileError(f"{path}: {len(left)} tensors have no layer in {model.name} (first: {left[:3]}); "
                             f"the file is not a {model.name} state dict")
