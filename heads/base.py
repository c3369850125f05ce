"""Head registry: what each head accepts (feature kinds, labels) and how it is built and trained."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

from features.registry import Registry

NARROW_STAGES = (1e-3, 1e-4, 1e-5)
WIDE_STAGES = (1e-4, 1e-5, 1e-6)
POOLED_KINDS = ("mlsp_narrow", "fc7", "gmp", "spp")


class HeadMismatchError(ValueError):
    """A head that does not fit a store (feature kind, shape or labels)."""


@dataclass(frozen=True)
class HeadSpec:
    """A trainable head.

    Attributes:
        name: registry name users type (`pool3fc`).
        family: "keras" or "sklearn".
        kinds: feature kinds the head accepts, preferred first.
        target: "mos" (one score) or "dist" (a K-bin score distribution; needs `labels/hist`).
        build: keras: `build(input_shape, n_bins, blocks) -> keras.Model`;
            sklearn: `build(seed) -> estimator`.
        lr_stages: default learning-rate stages (keras heads).
        loss: loss name (keras heads): "mse", "huber_dist", "emd".
        description: one line for `describe-head` and the run config.
        reference: paper the head follows.
    """

    name: str
    family: str
    kinds: Tuple[str, ...]
    target: str
    build: Callable = field(repr=False, compare=False)
    lr_stages: Tuple[float, ...] = NARROW_STAGES
    loss: str = "mse"
    description: str = ""
    reference: str = ""

    def check_store(self, store_kinds, has_hist: bool, kind: Optional[str] = None) -> str:
        """Picks the feature kind to train on, or refuses with what the store has and the head needs."""
        if kind is not None and kind not in self.kinds:
            raise HeadMismatchError(
                f"head {self.name!r} does not accept feature kind {kind!r}; it accepts "
                f"{', '.join(self.kinds)}")
        candidates = [kind] if kind else [k for k in self.kinds if k in store_kinds]
        usable = [k for k in candidates if k in store_kinds]
        if not usable:
            raise HeadMismatchError(
                f"head {self.name!r} needs one of the feature kinds {', '.join(self.kinds)}; the store has "
                f"{', '.join(sorted(store_kinds)) or 'none'}. Extract a matching kind (iaa extract "
                f"--features ...) or pick a head for the store's kinds.")
        if self.target == "dist" and not has_hist:
            raise HeadMismatchError(
                f"head {self.name!r} predicts score distributions and needs vote histograms "
                f"(labels/hist); this store's dataset has only mean scores. Use a MOS head.")
        return usable[0]


HEADS: Registry[HeadSpec] = Registry("head")


def register_head(spec: HeadSpec) -> HeadSpec:
    return HEADS.add(spec.name, spec)


def get_head(name: str) -> HeadSpec:
    return HEADS.get(name)


def list_heads():
    return HEADS.names()
