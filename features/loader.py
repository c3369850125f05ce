"""Streaming stored features into training: samples are (image row, view) pairs of one kind.

Readers: an in-RAM copy (`ram`), tensorstore on local Zarr v3 (parallel chunk reads without the GIL,
design.md section 12), zarr-python on a store at a URL (one request per sample, REMOTE_READERS in
flight; credentials as `features.location` says), or h5py on HDF5 (serialised by a lock; h5py is not
thread-parallel).
`make_dataset` builds a tf.data pipeline: per batch one read call in a pool of parallel
calls, then prefetch, so memory stays near batch x (readers + prefetch) whatever the store's size.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Optional, Sequence

import numpy as np

from features.core.errors import UsageError
from features.location import is_url
from features.memory import available_ram
from features.store import FeatureStore

RAM_FRACTION = 0.5
TS_CACHE_BYTES = 32 << 20  # `auto` caches a split only when it takes at most this share of available RAM
REMOTE_READERS = 16  # samples requested at once from object storage (latency-bound, not CPU-bound)


class FeatureReader:
    """Reads samples of one feature kind for a fixed list of store rows.

    Args:
        store: an open `FeatureStore`.
        kind: feature kind.
        rows: store row numbers this reader serves; `read` takes positions into this list.
        cache: "ram" (copy all views of these rows into memory), "none" (stream), or "auto"
            (ram when it fits with room to spare).
        channels: read only these channels (the last axis) of each sample, e.g. a subset of MLSP blocks
            (`iaa train --blocks`); None: all.
    """

    def __init__(self, store: FeatureStore, kind: str, rows: Sequence[int], cache: str = "auto",
                 channels: Optional[np.ndarray] = None):
        if cache not in ("auto", "ram", "none"):
            raise UsageError(f"cache must be auto, ram or none; received {cache!r}")
        self.kind = kind
        self.rows = np.asarray(rows, dtype=np.int64)
        arr = store.features(kind)
        self.channels = None if channels is None else np.asarray(channels, np.int64)
        self._stored_shape = tuple(arr.shape[2:])
        self.sample_shape = tuple(arr.shape[2:-1]) + (
            (int(arr.shape[-1]),) if self.channels is None else (len(self.channels),))
        self.n_views = int(arr.shape[1])
        self.sample_bytes = int(np.prod(self.sample_shape)) * 2
        self.samples_read = 0
        self._count_lock = threading.Lock()
        need = len(self.rows) * self.n_views * self.sample_bytes
        self.mode = cache if cache != "auto" else ("ram" if need <= RAM_FRACTION * available_ram() else "none")
        self._ram = None
        self._h5 = None
        self._ts = None
        self._remote = None
        if self.mode == "ram":
            self._ram = self._load_rows(arr)
        elif store.engine == "zarr" and is_url(store.path):
            self._remote, self._pool = arr, ThreadPoolExecutor(REMOTE_READERS, thread_name_prefix="remote-read")
        elif store.engine == "zarr":
            # a small cache keeps shard indexes, so a one-view read costs about that view's bytes
            self._ts = store.open_tensorstore(kind, TS_CACHE_BYTES)
        else:
            self._h5 = arr
            self._h5_lock = threading.Lock()

    def _load_rows(self, arr) -> np.ndarray:
        """All views of `rows`, read in contiguous blocks (one pass over the needed range)."""
        out = np.empty((len(self.rows), self.n_views) + self.sample_shape, dtype=np.float16)
        if not len(self.rows):
            return out
        order = np.argsort(self.rows)
        sorted_rows = self.rows[order]
        block = max(1, (64 << 20) // max(self.n_views * self.sample_bytes, 1))
        i = 0
        while i < len(sorted_rows):
            lo = sorted_rows[i]
            j = np.searchsorted(sorted_rows, lo + block, side="left")
            chunk = self._selected(np.asarray(arr[lo: sorted_rows[j - 1] + 1]))
            out[order[i:j]] = chunk[sorted_rows[i:j] - lo]
            i = j
        return out

    def read(self, positions: np.ndarray, views: np.ndarray) -> np.ndarray:
        """Samples (positions[i] into `rows`, views[i]) → (B, *sample_shape) float16."""
        positions = np.asarray(positions, dtype=np.int64)
        views = np.asarray(views, dtype=np.int64)
        with self._count_lock:
            self.samples_read += len(positions)
        if self._ram is not None:
            return self._ram[positions, views]
        return self._selected(self._read_stored(self.rows[positions], views))

    def _read_stored(self, rows: np.ndarray, views: np.ndarray) -> np.ndarray:
        if self._ts is not None:
            return np.asarray(self._ts.vindex[rows, views].read().result())
        if self._remote is not None:
            samples = self._pool.map(lambda rv: np.asarray(self._remote[rv[0], rv[1]]), zip(rows, views))
            return np.stack(list(samples)) if len(rows) else np.empty((0,) + self._stored_shape, np.float16)
        with self._h5_lock:
            return np.stack([self._h5[r, v] for r, v in zip(rows, views)])

    def _selected(self, samples: np.ndarray) -> np.ndarray:
        return samples if self.channels is None else samples[..., self.channels]


def train_plan(n: int, n_views: int, seed: int, epoch: int):
    """Shuffled positions and one view drawn uniformly per sample, new for every epoch."""
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(n), rng.integers(0, n_views, size=n)


def fixed_views(n: int, n_views: int, seed: int) -> np.ndarray:
    """A deterministic (seeded) view per sample, for validation."""
    return np.random.default_rng([seed, 1 << 20]).integers(0, n_views, size=n)


def make_dataset(reader: FeatureReader, positions: np.ndarray, views: np.ndarray,
                 targets: Optional[np.ndarray], batch_size: int, parallel_reads: int = 4,
                 prefetch: int = 2):
    """tf.data pipeline of (features float32, targets float32) batches in the given order."""
    import tensorflow as tf

    positions = np.asarray(positions)
    views = np.asarray(views)
    n = len(positions)
    n_batches = (n + batch_size - 1) // batch_size
    y = np.zeros((n, 1), np.float32) if targets is None else np.asarray(targets, np.float32).reshape(n, -1)
    y_dim = y.shape[1]

    def read(b):
        sl = slice(int(b) * batch_size, min((int(b) + 1) * batch_size, n))
        return reader.read(positions[sl], views[sl]), y[sl]

    def to_tensors(b):
        x, t = tf.numpy_function(read, [b], [tf.float16, tf.float32], stateful=False)
        x.set_shape((None,) + reader.sample_shape)
        t.set_shape((None, y_dim))
        return tf.cast(x, tf.float32), t

    ds = tf.data.Dataset.range(n_batches)
    ds = ds.map(to_tensors, num_parallel_calls=max(1, parallel_reads), deterministic=True)
    return ds.prefetch(prefetch)


def signed_log1p(x):
    """sign(x) · log(1 + |x|): log1p for ReLU features, odd and monotonic for signed ones (linear bottlenecks)."""
    return np.sign(x) * np.log1p(np.abs(x))


def feature_moments(reader: FeatureReader, positions: np.ndarray, views: np.ndarray, log1p: bool = False,
                    block: int = 1024) -> dict:
    """Per-channel mean, variance and overall minimum of samples, streamed in blocks (float64 sums).

    Args:
        reader: a reader of one kind; channels are the last axis (a wide kind's 5x5 cells are samples).
        positions, views: the samples (one pass over them).
        log1p: the moments of `signed_log1p(x)` (log(1 + x) for non-negative x) instead of x.
        block: samples per read.
    Returns:
        {"mean": (C,) float32, "variance": (C,) float32, "min": float} (before log1p).
    """
    n, total, squares, low = 0, 0.0, 0.0, np.inf
    for start in range(0, len(positions), block):
        x = reader.read(positions[start:start + block], views[start:start + block]).astype(np.float64)
        low = min(low, float(x.min())) if x.size else low
        if log1p:
            x = signed_log1p(x)
        flat = x.reshape(-1, x.shape[-1])
        n += flat.shape[0]
        total = total + flat.sum(axis=0)
        squares = squares + np.square(flat).sum(axis=0)
    mean = total / max(n, 1)
    variance = np.maximum(squares / max(n, 1) - np.square(mean), 0.0)
    return {"mean": np.asarray(mean, np.float32), "variance": np.asarray(variance, np.float32), "min": low}
