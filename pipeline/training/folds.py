"""K-fold cross-validation over a store's photos: every photo tested exactly once, folds are row subsets.

400 test photos cannot resolve 0.02 SRCC; the out-of-fold predictions of all photos can come closer. A
fold ignores the store's own split column: the store's rows are dealt into K folds by a permutation drawn
from `FOLD_SEED` (the same for every head and every training seed, so heads are compared on the same
photos), fold k is the test part, and a seeded tenth of the other rows is held out for validation (early
stopping, ridge's penalty), the rest trains. Nothing is copied: a fold is three arrays of row indices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np

FOLD_SEED = 0
VAL_FRACTION = 0.1


@dataclass(frozen=True)
class Fold:
    """Fold `index` of `k` (0-based).

    Raises:
        ValueError: k < 2 or an index outside [0, k).
    """

    k: int
    index: int

    def __post_init__(self):
        if not (isinstance(self.k, int) and self.k >= 2):
            raise ValueError(f"cross-validation needs at least 2 folds; received {self.k!r}")
        if not (isinstance(self.index, int) and 0 <= self.index < self.k):
            raise ValueError(f"fold index must be in [0, {self.k}); received {self.index!r}")

    def rows(self, usable: np.ndarray) -> Dict[str, np.ndarray]:
        """{"train", "val", "test"} row indices (sorted) among the `usable` (bool, one per store row) rows."""
        usable = np.asarray(usable, bool)
        assignment = np.random.default_rng(FOLD_SEED).permutation(usable.size) % self.k
        test = np.flatnonzero(usable & (assignment == self.index))
        rest = np.flatnonzero(usable & (assignment != self.index))
        n_val = int(round(VAL_FRACTION * rest.size)) if rest.size > 1 else 0
        held = np.random.default_rng([FOLD_SEED, self.k, self.index]).permutation(rest.size)[:n_val]
        is_val = np.zeros(rest.size, bool)
        is_val[held] = True
        return {"train": rest[~is_val], "val": rest[is_val], "test": test}
