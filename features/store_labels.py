"""The labels part of a store reader: the score heads learn (`mos`, or an attribute through `with_label`),
its scale, histograms, attributes, individual ratings and photo groups (`features.store_schema` layout)."""
from __future__ import annotations

import copy
from typing import List, Optional, Tuple

import numpy as np

from features.store_schema import StoreError, stored_scale


class StoreLabels:
    """Mixed into `features.store.FeatureStore`: needs its `attrs`, `path`, `_root`, `_numbers`, `_strings`.
    The label is fixed when the object is made (`label = "mos"`); `with_label` returns another view."""

    label = "mos"

    @property
    def mos(self) -> np.ndarray:
        """The training score: `labels/mos`, or the attribute chosen with `with_label`."""
        if self.label == "mos":
            return self._numbers("labels/mos")
        return self.attributes[:, self.attribute_names.index(self.label)].astype(np.float32)

    def with_label(self, name: str):
        """A view of this store whose `mos` and `scale` are the label `name` (`iaa train --label NAME`); this
        object is left as it is (every holder of it keeps seeing its own label).

        Raises:
            StoreError: the store has no such attribute (the message lists the labels it has).
        """
        if name != "mos" and name not in self.attribute_names:
            from features.core.registry import did_you_mean

            raise StoreError(f"store {self.path} has no label {name!r}.{did_you_mean(name, self.attribute_names)} "
                             f"Its labels: {', '.join(['mos'] + self.attribute_names)}")
        view = copy.copy(self)
        view.__dict__["label"] = name
        return view

    @property
    def hist(self) -> Optional[np.ndarray]:
        return self._numbers("labels/hist") if "hist" in self._root["labels"] else None

    @property
    def attributes(self) -> Optional[np.ndarray]:
        """(N, A) attribute scores (NaN where an image has none), or None."""
        return self._numbers("labels/attributes") if "attributes" in self._root["labels"] else None

    @property
    def attribute_names(self) -> List[str]:
        return list(self.attrs.get("dataset", {}).get("labels", {}).get("attributes", {}).get("names", []))

    @property
    def binary_attributes(self) -> Tuple[int, ...]:
        """Positions of the attributes whose annotated values are all 0 or 1 (AVA's style labels)."""
        values = self.attributes
        if values is None:
            return ()
        known = [values[~np.isnan(values[:, i]), i] for i in range(values.shape[1])]
        return tuple(i for i, v in enumerate(known) if v.size and np.isin(v, (0.0, 1.0)).all())

    @property
    def ratings(self) -> Optional[dict]:
        """Individual ratings {"image": (R,) row, "rater": (R,) id, "score": (R,)}, or None."""
        if "rating_image" not in self._root["labels"]:
            return None
        return {"image": self._numbers("labels/rating_image"), "rater": self._strings("labels/rating_rater"),
                "score": self._numbers("labels/rating_score")}

    @property
    def photo_groups(self) -> Optional[np.ndarray]:
        """(N,) group of each photo (`labels/group`: a source, photographer or shoot; strings), or None when
        the dataset names none (not to be confused with `groups`, the backbones' feature groups)."""
        return self._strings("labels/group") if "group" in self._root["labels"] else None

    @property
    def photo_tags(self) -> Optional[np.ndarray]:
        """(N,) semantic tags of each photo joined by ";" (`labels/tags`, AVA's; "" without), or None."""
        return self._strings("labels/tags") if "tags" in self._root["labels"] else None

    @property
    def n_bins(self) -> int:
        """Histogram bins K of `labels/hist` (0 when the dataset has only mean scores)."""
        return int(self._root["labels/hist"].shape[1]) if "hist" in self._root["labels"] else 0

    @property
    def scale(self) -> Tuple[float, float]:
        """(low, high) of the score scale (AVA's 1-10 when a store does not say); of the attribute chosen with
        `with_label` (its recorded scale, else the range of its values)."""
        if self.label != "mos":
            described = self.attrs.get("dataset", {}).get("labels", {}).get("attributes", {})
            scales = described.get("scales")
            if scales:
                lo, hi = scales[self.attribute_names.index(self.label)]
            else:
                v = self.mos[np.isfinite(self.mos)]
                lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
            return float(lo), float(hi) if hi > lo else float(lo) + 1.0
        return stored_scale(self.attrs)
