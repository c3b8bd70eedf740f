"""Read a torch checkpoint of plain tensors, strings and dicts into numpy arrays, without importing torch.

The needle statistics model is a logistic regression: the product needs its few arrays, not torch, whose import is
about a second of CPU at every `neurofusion analyze` (docs/needle-model.md, Cost). ``torch.save`` writes a zip
archive: ``<name>/data.pkl`` (a pickle whose tensors refer to storages by key) and ``<name>/data/<key>`` (each
storage's raw little-endian bytes). This reader unpickles ``data.pkl`` with an allow-list as strict as
``torch.load(weights_only=True)``'s for these files: dicts, strings, numbers, ``collections.OrderedDict``, typed
storages and ``torch._utils._rebuild_tensor_v2``; any other global is refused, so nothing is executed.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

# storage classes torch writes for dense tensors, and the numpy type of their bytes (little-endian)
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class TensorArchiveError(ValueError):
    """The file is not a torch archive this reader can take without torch (the caller may fall back to torch)."""


class _StorageType:
    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *_: Any) -> np.ndarray:  # fmt: skip
    """``torch._utils._rebuild_tensor_v2``: a (copied) view of ``size``/``stride`` elements from ``offset``."""
    if offset < 0 or any(n < 0 for n in size) or any(s < 0 for s in stride):
        # torch never writes these; as_strided would read memory outside the storage
        raise TensorArchiveError("a tensor with a negative offset, size or stride")
    if not size:
        return storage[offset].copy()
    needed = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) if all(size) else offset
    if needed > storage.size:
        raise TensorArchiveError("a tensor reaches past its storage")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * storage.itemsize for s in stride))  # fmt: skip
    return np.array(view, copy=True)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        import io

        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise TensorArchiveError(f"the checkpoint holds {module}.{name}, which this reader does not take")

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):  # fmt: skip
            raise TensorArchiveError(f"unexpected storage reference {pid!r:.80}")
        _, kind, key, _location, numel = pid
        raw = self.archive.read(f"{self.prefix}/data/{key}")
        values = np.frombuffer(raw, dtype=kind.dtype)
        if values.size < int(numel):
            raise TensorArchiveError(f"storage {key} holds {values.size} values, not {numel}")
        return values[: int(numel)]


def read_tensor_archive(path: str | Path) -> Any:
    """The object a torch archive at ``path`` holds, tensors as numpy arrays. TensorArchiveError for a file that is
    not such an archive (legacy torch format, other globals, big-endian, truncated)."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
            if len(pickles) != 1:
                raise TensorArchiveError("no single data.pkl in the archive")
            prefix = pickles[0].split("/")[0]
            names = set(archive.namelist())
            if f"{prefix}/byteorder" in names and archive.read(f"{prefix}/byteorder").strip() != b"little":
                raise TensorArchiveError("a big-endian checkpoint")
            return _Unpickler(archive.read(pickles[0]), archive, prefix).load()
    except TensorArchiveError:
        raise
    except (zipfile.BadZipFile, KeyError, EOFError, pickle.UnpicklingError, ValueError, TypeError,
            AttributeError, IndexError) as error:  # fmt: skip
        raise TensorArchiveError(f"not a readable torch archive: {type(error).__name__}: {error}"[:200]) from None
