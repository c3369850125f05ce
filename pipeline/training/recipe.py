"""How a head is trained beyond its architecture: the `Recipe` (input normalisation, penalty, early stopping,
epochs, batch, weight decay, learning-rate stages, optimizer), the reference protocol's, and a head's in a run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Tuple

from features.core.errors import UsageError

if TYPE_CHECKING:
    from pipeline.training.fitting import TrainConfig

EARLY_STOP = ("loss", "srcc")


class TrainError(UsageError):
    """A run that cannot start: store, splits or settings; the message says what to do."""


@dataclass(frozen=True)
class Recipe:
    """How a head is trained beyond the reference protocol, resolved for one head of one run.

    Attributes:
        input_norm: input normalisation (`heads.inputs.INPUT_NORMS`), fitted on the training split and
            saved in the model.
        l2: L2 penalty on Keras kernels in standard units (`heads.regularisation`).
        early_stop: what picks a Keras head's best epoch and ends a stage: "loss" (the reference) or
            "srcc" (validation SRCC, the metric heads are judged by).
        max_epochs: most epochs per learning-rate stage (reference 20).
        patience: epochs without improvement before a stage ends (reference 5).
        batch_size: training batch (reference 128).
        weight_decay: weight decay of the Keras head's optimizer (reference 0).
        lr_stages: learning-rate stages (None: the head's reference stages, `HeadSpec.lr_stages`).
        optimizer: `pipeline.training.optimizers` name: "adam" (the reference) or "sgd" (APM's, momentum 0.9).
    """

    input_norm: str = "none"
    l2: float = 0.0
    early_stop: str = "loss"
    max_epochs: int = 20
    patience: int = 5
    batch_size: int = 128
    weight_decay: float = 0.0
    lr_stages: Optional[Tuple[float, ...]] = None
    optimizer: str = "adam"

    def __post_init__(self):
        from heads.inputs import get_input_norm
        from pipeline.training.optimizers import OPTIMIZERS

        get_input_norm(self.input_norm)
        OPTIMIZERS.get(self.optimizer)
        if self.lr_stages is not None:
            object.__setattr__(self, "lr_stages", tuple(float(v) for v in self.lr_stages))
            if not self.lr_stages or not all(v > 0 for v in self.lr_stages):
                raise TrainError(f"lr_stages are learning rates > 0, at least one; received {list(self.lr_stages)}")
        if self.early_stop not in EARLY_STOP:
            raise TrainError(f"early stopping is on one of {', '.join(EARLY_STOP)}; received {self.early_stop!r}")
        if not self.l2 >= 0:
            raise TrainError(f"l2 must be >= 0; received {self.l2}")
        if not self.weight_decay >= 0:
            raise TrainError(f"weight_decay must be >= 0; received {self.weight_decay}")
        for name in ("max_epochs", "patience", "batch_size"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
                raise TrainError(f"{name} must be a whole number >= 1; received {getattr(self, name)!r}")


REFERENCE_RECIPE = Recipe()
RECIPE_FIELDS = ("input_norm", "l2", "early_stop", "max_epochs", "patience", "batch_size", "weight_decay", "lr_stages",
                 "optimizer")


def recipe_for(spec, cfg: TrainConfig) -> Recipe:
    """The head's recipe in this run: the run's choices, else the head's defaults (unless the run asks for the
    reference protocol), else the reference's; a head with a fixed published input (`HeadSpec.input_norm`)
    keeps it."""
    fields = {**({} if cfg.reference_protocol else dict(spec.recipe)), **cfg.recipe_overrides()}
    if spec.input_norm:
        fields["input_norm"] = spec.input_norm
    return Recipe(**fields)


def lr_stages_of(spec, recipe: Recipe) -> Optional[List[float]]:
    """The learning-rate stages a Keras head trains with: its recipe's, else its reference stages."""
    stages = recipe.lr_stages or spec.lr_stages
    return list(stages) if stages else None
