"""The optimizers a Keras head can train with (`Recipe.optimizer`, `iaa train --optimizer NAME`).

`adam` is the MLSP protocol's (Hosu et al. 2019, section 3.3) and every head's default. `sgd` is APM's:
"stochastic gradient descent with momentum 0.9 ... weight decay of 5·10⁻⁴" (Murray & Gordo 2017, section
3.4); `--optimizer sgd --weight-decay 5e-4` trains with it. Keras applies weight decay to the variables
after each step (w ← w − lr·wd·w), which for plain SGD equals Caffe's L2 term in the gradient; with momentum
the decay is not carried in the velocity, a small difference from the paper's framework.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from features.core.registry import Registry


@dataclass(frozen=True)
class OptimizerSpec:
    """A registered optimizer: `build(learning_rate, weight_decay)` gives a fresh Keras optimizer."""

    name: str
    build: Callable
    description: str
    reference: str


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer")


def _adam(lr: float, weight_decay: float):
    import keras

    return keras.optimizers.Adam(learning_rate=lr, weight_decay=weight_decay or None)


def _sgd_momentum(lr: float, weight_decay: float):
    import keras

    return keras.optimizers.SGD(learning_rate=lr, momentum=0.9, weight_decay=weight_decay or None)


OPTIMIZERS.register(OptimizerSpec("adam", _adam, "Adam (decoupled weight decay when asked)",
                                  "Hosu et al. 2019, section 3.3"))
OPTIMIZERS.register(OptimizerSpec("sgd", _sgd_momentum, "SGD with momentum 0.9 (weight decay when asked)",
                                  "Murray & Gordo 2017, section 3.4"))


def build_optimizer(name: str, lr: float, weight_decay: float = 0.0):
    """A new optimizer `name` at learning rate `lr`."""
    return OPTIMIZERS.get(name).build(lr, weight_decay)
