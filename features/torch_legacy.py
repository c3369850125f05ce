"""Reads a state dict saved by torch's legacy (non-zip) `torch.save`, without torch and without running code.

The legacy file is: a magic number, a protocol version and a system-info pickle; the state-dict pickle,
whose tensors point at storages by persistent id; a pickle listing the storage keys; then each storage's
raw bytes after its element count (int64, little-endian). The unpickler here resolves only the names a
state dict needs (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, the `torch.*Storage`
dtypes): any other global in the file is refused, so a crafted file cannot run code.

Reference: torch/serialization.py (`_legacy_save`, `_legacy_load`), read for the layout only.
"""
from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from typing import BinaryIO, Dict

import numpy as np

from features.core.errors import UsageError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class TorchFileError(UsageError):
    """A weights file that is not a legacy torch state dict, or holds something a state dict does not."""


@dataclass
class _Storage:
    key: str
    dtype: type
    numel: int
    data: np.ndarray = None


@dataclass
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple
    stride: tuple

    def materialise(self) -> np.ndarray:
        flat = self.storage.data
        if not self.size:
            return flat[self.offset].copy()
        itemsize = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.size,
                                               strides=tuple(s * itemsize for s in self.stride))
        return np.ascontiguousarray(view)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


class _StorageType:
    def __init__(self, name: str):
        self.dtype = STORAGE_DTYPES[name]


class _StateDictUnpickler(pickle.Unpickler):
    """Resolves only the globals a state dict needs; records every storage the pickle points at."""

    def __init__(self, file: BinaryIO, path: str):
        super().__init__(file)
        self.path = path
        self.storages: Dict[str, _Storage] = {}

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise TorchFileError(f"{self.path}: refused: the file asks for {module}.{name}, which a state dict of "
                             f"tensors does not need (only plain state dicts are read, so no code runs)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise TorchFileError(f"{self.path}: unexpected persistent id {pid!r:.80} (not a legacy torch storage)")
        if len(pid) > 5 and pid[5] is not None:
            raise TorchFileError(f"{self.path}: storage views are not supported")
        key = str(pid[2])
        storage = self.storages.setdefault(key, _Storage(key, pid[1].dtype, int(pid[4])))
        return storage


def _restricted_load(f: BinaryIO, path: str):
    """One pickle from `f` that may hold only plain data (numbers, strings, tuples, lists, dicts)."""
    class _Plain(pickle.Unpickler):
        def find_class(self, module, name):
            raise TorchFileError(f"{path}: refused: the file header asks for {module}.{name}")

    return _Plain(f).load()


def read_state_dict(path: str) -> "collections.OrderedDict[str, np.ndarray]":
    """The tensors of a legacy-format torch state dict as numpy arrays, in the file's order.

    Raises:
        TorchFileError: not a legacy torch file, a global a state dict does not need, or truncated data.
    """
    with open(path, "rb") as f:
        try:
            magic = _restricted_load(f, path)
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise TorchFileError(f"{path}: not a torch legacy weights file ({exc})") from exc
        if magic != LEGACY_MAGIC:
            raise TorchFileError(f"{path}: not a torch legacy weights file (magic number {magic!r:.40}); "
                                 f"a zip-format file (torch >= 1.6) is not read here")
        _restricted_load(f, path)  # protocol version
        sys_info = _restricted_load(f, path)
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise TorchFileError(f"{path}: only little-endian torch files are read; received {sys_info!r:.80}")
        unpickler = _StateDictUnpickler(f, path)
        state = unpickler.load()
        keys = _restricted_load(f, path)
        for key in keys:
            _read_storage(f, path, unpickler.storages.get(str(key)))
    if not isinstance(state, dict):
        raise TorchFileError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return collections.OrderedDict((name, _to_array(path, name, ref)) for name, ref in state.items())


def _read_storage(f: BinaryIO, path: str, storage: _Storage) -> None:
    header = f.read(8)
    if storage is None or len(header) != 8:
        raise TorchFileError(f"{path}: truncated or inconsistent storage section")
    numel = struct.unpack("<q", header)[0]
    raw = f.read(numel * np.dtype(storage.dtype).itemsize)
    if numel != storage.numel or len(raw) != numel * np.dtype(storage.dtype).itemsize:
        raise TorchFileError(f"{path}: storage {storage.key} is truncated (expected {storage.numel} elements)")
    storage.data = np.frombuffer(raw, dtype=storage.dtype)


def _to_array(path: str, name: str, ref) -> np.ndarray:
    if not isinstance(ref, _TensorRef) or ref.storage.data is None:
        raise TorchFileError(f"{path}: entry {name!r} is not a tensor with data")
    needed = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) + 1 if ref.size else ref.offset + 1
    if needed > ref.storage.numel and all(ref.size):
        raise TorchFileError(f"{path}: tensor {name!r} reaches past its storage")
    return ref.materialise()
