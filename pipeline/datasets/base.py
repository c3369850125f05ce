"""What a dataset loader returns: the manifest (ids, paths, labels, split) of every image."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from features.core.errors import IAAError
from features.core.registry import Registry

SPLITS = ("train", "val", "test")
UNLABELLED = "unlabelled"


@dataclass
class Ratings:
    """Individual ratings in long format (one row per rating), for datasets that know their raters.

    Attributes:
        image: index of the rated image in the manifest.
        rater: the rater's id (as the dataset spells it).
        score: that rater's score, on the dataset's rating scale.
        scale: (low, high) of the individual ratings (AADB: 1-5, while its mean `score` is 0-1).
    """

    image: np.ndarray
    rater: List[str]
    score: np.ndarray
    scale: Tuple[float, float]

    def __post_init__(self):
        self.image = np.asarray(self.image, np.int32)
        self.score = np.asarray(self.score, np.float32)
        if not len(self.image) == len(self.rater) == len(self.score):
            raise ValueError(f"ratings: {len(self.image)} images, {len(self.rater)} raters, {len(self.score)} scores")

    def __len__(self) -> int:
        return len(self.image)


class DatasetError(IAAError):
    """Missing or malformed dataset files; the message names the file/line and what to do."""


@dataclass
class Manifest:
    """Every image of a dataset, in store order.

    Attributes:
        name: dataset registry name.
        root: directory the dataset was read from.
        ids: unique image ids.
        paths: absolute image paths (may not exist: such images are recorded as failed).
        mos: mean opinion score per image (NaN when unlabelled).
        split: "train" / "val" / "test" (or "unlabelled").
        hist: (N, K) vote counts (or fractions) when the dataset has them.
        scale: (low, high) of the score scale, e.g. (1, 10) for AVA.
        label_source: files the labels came from, and their sha256 is recorded by the store.
        notes: facts to record (split seed, dropped rows, ...).
        attributes: (N, A) attribute scores (NaN where an image has none), e.g. AADB's 11 in [-1, 1].
        attribute_names: the A attribute names.
        ratings: individual ratings with rater ids, when the dataset has them.
        attribute_scales: (low, high) of each attribute, when they can serve as a training label
            (`iaa train --label NAME`); recorded in the store.
        groups: per image the group it belongs to (a source, a photographer, a shoot), when the dataset names
            them; benchmarks then report SRCC within each group beside the pooled figure.
        tags: per image its semantic tags joined by ";" ("" without), when the dataset has them (AVA).
    """

    name: str
    root: Path
    ids: List[str]
    paths: List[Path]
    mos: np.ndarray
    split: List[str]
    hist: Optional[np.ndarray] = None
    scale: Tuple[float, float] = (0.0, 1.0)
    label_source: List[Path] = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    attributes: Optional[np.ndarray] = None
    attribute_names: List[str] = field(default_factory=list)
    ratings: Optional[Ratings] = None
    attribute_scales: Optional[List[Tuple[float, float]]] = None
    groups: Optional[List[str]] = None
    tags: Optional[List[str]] = None

    def __post_init__(self):
        n = len(self.ids)
        for name, seq in (("paths", self.paths), ("mos", self.mos), ("split", self.split),
                          ("groups", self.groups if self.groups is not None else self.ids),
                          ("tags", self.tags if self.tags is not None else self.ids)):
            if len(seq) != n:
                raise ValueError(f"manifest {self.name}: {len(seq)} {name} for {n} ids")
        if self.attributes is not None:
            self.attributes = np.asarray(self.attributes, np.float32)
            if self.attributes.shape != (n, len(self.attribute_names)):
                raise ValueError(f"manifest {self.name}: attributes {self.attributes.shape} for {n} ids and "
                                 f"{len(self.attribute_names)} names")
        if len(set(self.ids)) != n:
            raise DatasetError(f"dataset {self.name}: image ids are not unique")

    def __len__(self) -> int:
        return len(self.ids)

    def extra_labels(self) -> dict:
        """Label arrays beside `labels/mos` and `labels/hist` in a store: `attributes` (N, A), and the
        individual ratings in long format `rating_image`, `rating_rater`, `rating_score`, and `group` (N,)."""
        out = {}
        if self.attributes is not None:
            out["attributes"] = self.attributes
        if self.groups is not None:
            out["group"] = np.asarray(self.groups, dtype=str)
        if self.tags is not None:
            out["tags"] = np.asarray(self.tags, dtype=str)
        if self.ratings is not None:
            out.update(rating_image=self.ratings.image, rating_rater=np.asarray(self.ratings.rater, dtype=str),
                       rating_score=self.ratings.score)
        return out

    def label_description(self) -> dict:
        """What a store records about its extra labels (names and scales)."""
        out = {}
        if self.attributes is not None:
            out["attributes"] = {"names": list(self.attribute_names),
                                 "annotated": int(np.isfinite(self.attributes).all(axis=1).sum())}
            if self.attribute_scales is not None:
                out["attributes"]["scales"] = [[float(lo), float(hi)] for lo, hi in self.attribute_scales]
        if self.ratings is not None:
            out["ratings"] = {"n": len(self.ratings), "raters": len(set(self.ratings.rater)),
                              "scale": list(self.ratings.scale)}
        if self.groups is not None:
            out["groups"] = {"n": len(set(self.groups))}
        if self.tags is not None:
            out["tags"] = {"names": sorted({t for row in self.tags for t in row.split(";") if t})}
        return out

    def take(self, order: Sequence[int]) -> "Manifest":
        """The images at `order` (in that order), with their labels and ratings (ratings of other images are
        dropped, the rest keep their relative order)."""
        order = np.asarray(order, dtype=np.int64)
        ratings = None
        if self.ratings is not None:
            new_index = np.full(len(self), -1, np.int64)
            new_index[order] = np.arange(len(order))
            keep = new_index[self.ratings.image] >= 0
            ratings = Ratings(new_index[self.ratings.image][keep], [r for r, k in zip(self.ratings.rater, keep) if k],
                              self.ratings.score[keep], self.ratings.scale)
        return replace(self, ids=[self.ids[i] for i in order], paths=[self.paths[i] for i in order],
                       mos=np.asarray(self.mos)[order], split=[self.split[i] for i in order],
                       hist=None if self.hist is None else np.asarray(self.hist)[order],
                       attributes=None if self.attributes is None else self.attributes[order], ratings=ratings,
                       groups=None if self.groups is None else [self.groups[i] for i in order],
                       tags=None if self.tags is None else [self.tags[i] for i in order])

    def split_counts(self) -> dict:
        """{split name: images} of the manifest."""
        values, counts = np.unique(np.asarray(self.split, dtype=str), return_counts=True)
        return {str(v): int(c) for v, c in zip(values, counts)}


def seeded_split(n: int, fractions: Tuple[float, ...], names: Tuple[str, ...], seed: int) -> List[str]:
    """Assigns `names` to n items in the given fractions, by a seeded permutation."""
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.round(np.cumsum(fractions) / sum(fractions) * n).astype(int)
    out = [""] * n
    start = 0
    for name, stop in zip(names, bounds):
        for i in order[start:stop]:
            out[i] = name
        start = stop
    return out


def infer_scale(values) -> Tuple[float, float]:
    """The rating scale labels most likely use: 0-1, 1-5, 1-10 or 0-100 (from their maximum)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    top = float(v.max()) if v.size else 1.0
    for hi, scale in ((1.0, (0.0, 1.0)), (5.0, (1.0, 5.0)), (10.0, (1.0, 10.0)), (100.0, (0.0, 100.0))):
        if top <= hi:
            return scale
    return (float(v.min()), top)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset users name with `--dataset`.

    Attributes:
        name: registry name.
        load: `load(root: Path) -> Manifest`; raises `DatasetError` naming the file and what to do.
        description: one line for the command-line help.
    """

    name: str
    load: Callable[[Path], Manifest]
    description: str = ""


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Adds a dataset to the registry (one call per dataset file, after its loader)."""
    return DATASETS.register(spec)


def default_data_dir(name: str) -> Path:
    """Where a dataset is read from when `--data-dir` is not given: `data/<name>`."""
    return Path("data") / name


def load_dataset(name: str, data_dir: Optional[str | Path] = None) -> Manifest:
    """Reads the manifest of dataset `name` from `data_dir` (default `data/<name>`).

    Returns:
        The `Manifest`, with absolute image paths.
    Raises:
        UnknownNameError: no such dataset. DatasetError: missing or malformed files.
    """
    manifest = DATASETS.get(name).load(Path(data_dir) if data_dir else default_data_dir(name))
    # absolute, so that workers with another working directory (remote clusters) find the files
    manifest.paths = [Path(os.path.abspath(p)) for p in manifest.paths]
    return manifest
