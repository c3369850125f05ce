"""Losses of the Keras heads, in a registry (`LossSpec.build()` → a serialisable `keras.losses.Loss`;
its `call(y_true, y_pred)` gives one value per sample).

Each head family registers its own loss beside its heads (`distribution`, `rank`, `triplet`); this
module holds the registry, the context a loss is built for, and the MSE of Hosu et al. 2019.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Tuple

from features.core.registry import Registry
from heads.options import HeadOption



@dataclass(frozen=True)
class LossContext:
    """What a loss may depend on beyond its name: the run's dataset and the user's loss options.

    Attributes:
        scale: (low, high) of the dataset's score scale.
        dataset: dataset name (published settings differ per dataset, e.g. Kong et al.'s rank margin).
        options: the values of the options the loss declares (`LossSpec.options`; defaults filled in, an option
            without a value left out: the loss's own default applies).
        rater_columns: R trailing target columns of per-rater scores (0: pairs by mean score).
        binary_attributes: positions of the store's 0/1 attributes (AVA's styles), which Kong et al. learn
            with a softmax loss instead of the Euclidean one.
    """

    scale: Tuple[float, float] = (0.0, 1.0)
    dataset: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    rater_columns: int = 0
    binary_attributes: Tuple[int, ...] = ()


@dataclass(frozen=True)
class LossSpec:
    """A loss heads name in their spec (`HeadSpec.loss`).

    Attributes:
        name: registry name.
        build: `build(context: LossContext)` → a `keras.losses.Loss` (serialisable, so saved models load
            compiled).
        description: one line for the run config.
        uses_raters: the loss can order pairs by individual raters' scores (trailing target columns).
        options: the options the loss takes (`heads.options.declare_options`), read from `LossContext.options`.
    """

    name: str
    build: Callable = field(repr=False, compare=False)
    description: str = ""
    uses_raters: bool = False
    options: Tuple[HeadOption, ...] = ()


LOSSES: Registry[LossSpec] = Registry("loss")


def register_loss(spec: LossSpec) -> LossSpec:
    """Adds a loss to the registry."""
    return LOSSES.register(spec)


def get_loss(name: str, context: Optional[LossContext] = None):
    """A fresh `keras.losses.Loss` of the loss registered as `name`, for a run's `context`."""
    return LOSSES.get(name).build(context or LossContext())


def loss_settings(loss) -> dict:
    """What a built loss was configured with (recorded in the run config)."""
    config = dict(loss.get_config()) if hasattr(loss, "get_config") else {}
    return {k: v for k, v in config.items() if k not in ("reduction", "dtype")}


def _mse(context: LossContext):
    import keras

    return keras.losses.MeanSquaredError(name="mse")


register_loss(LossSpec("mse", _mse, "mean squared error on the score (Hosu et al. 2019)"))
