"""``jt.save`` / ``jt.load``: pickle with numpy payloads, a weights-only loader, and a reader
for PyTorch ``.pth`` files that needs no torch: zip archives written by ``torch.save``
and the older format it wrote before PyTorch 1.6 (still used by many published checkpoints).

Loading is weights-only by default for every format (as PyTorch since 2.6): containers,
numbers, strings, arrays and tensors, nothing that runs code. ``weights_only=False``
unpickles anything, which can run arbitrary code from the file: use it only on files you
trust.
"""
import collections
import io
import pickle
import zipfile

import numpy as np

from .errors import MetajitValueError
from .var import Var

_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): np._core.multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): np._core.multiarray.scalar,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
}
_TORCH_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


# how a pre-1.6 torch.save file starts: the pickled magic number 0x1950a86a20f9469cfc6c
_LEGACY_TORCH_START = b"\x80\x02\x8a\x0a" + (0x1950a86a20f9469cfc6c).to_bytes(10, "little")


def _var_to_numpy(obj):
    if isinstance(obj, Var):
        return obj.numpy()
    if isinstance(obj, dict):
        return type(obj)((k, _var_to_numpy(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_var_to_numpy(v) for v in obj)
    return obj


def save(obj, path):
    """Pickle ``obj`` to ``path``; Vars (also inside dicts, lists, tuples) are stored as numpy arrays.

    Example: ``jt.save(model.state_dict(), "model.pkl")``.
    """
    with open(path, "wb") as handle:
        pickle.dump(_var_to_numpy(obj), handle, protocol=4)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        found = _SAFE_GLOBALS.get((module, name))
        if found is None:
            raise MetajitValueError(f"weights-only load refuses {module}.{name}; load a trusted "
                                    "file with weights_only=False")
        return found


def _rebuild_tensor(storage, offset, size, stride, *rest):
    itemsize = storage.dtype.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))


class _TorchUnpickler(pickle.Unpickler):
    """Reads the pickled object of a torch checkpoint; each storage comes from
    ``storage(key, dtype, count)`` (tensors are views of it)."""

    def __init__(self, handle, storage, weights_only):
        super().__init__(handle)
        self.storage, self.weights_only = storage, weights_only

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _TORCH_STORAGE_DTYPES[name]
        if module == "torch" and name.endswith("Storage"):
            return name
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad, hooks, *rest: data
        found = _SAFE_GLOBALS.get((module, name))
        if found is not None:
            return found
        if self.weights_only:
            raise MetajitValueError(f"weights-only load refuses {module}.{name}; load a trusted "
                                    "file with weights_only=False")
        return super().find_class(module, name)

    def persistent_load(self, saved_id):
        _, storage_type, key, _, count = saved_id[:5]
        if isinstance(storage_type, str):
            raise MetajitValueError(f"unsupported torch storage type {storage_type!r}")
        return self.storage(key, storage_type, count)


def _copies(obj):
    """``obj`` with every array replaced by a contiguous copy (tensors read from a checkpoint
    are views of its storages)."""
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, dict):
        copied = type(obj)((k, _copies(v)) for k, v in obj.items())
        if hasattr(obj, "__dict__"):
            copied.__dict__.update(obj.__dict__)
        return copied
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copies(v) for v in obj)
    return obj


def _load_torch_zip(path, weights_only):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if not pickles:
            raise MetajitValueError(f"{path}: a zip file without data.pkl is not a torch checkpoint")
        prefix = pickles[0][:-len("/data.pkl")]

        def storage(key, dtype, count):
            return np.frombuffer(archive.read(f"{prefix}/data/{key}"), dtype=dtype, count=count)
        with archive.open(pickles[0]) as handle:
            return _copies(_TorchUnpickler(io.BytesIO(handle.read()), storage, weights_only).load())


def _load_torch_legacy(handle, weights_only):
    """The format ``torch.save`` wrote before PyTorch 1.6 (and with
    ``_use_new_zipfile_serialization=False``): after the magic number, protocol and system
    information, the pickled object, then the storage keys, then each storage as an int64
    element count followed by its bytes. Many torchvision checkpoints are in it."""
    _RestrictedUnpickler(handle).load()  # protocol version
    _RestrictedUnpickler(handle).load()  # byte order and type sizes
    storages = {}

    def storage(key, dtype, count):
        return storages.setdefault(key, np.empty(count, dtype=dtype))
    result = _TorchUnpickler(handle, storage, weights_only).load()
    for key in _RestrictedUnpickler(handle).load():
        target = storages[key]
        count = int.from_bytes(handle.read(8), "little")
        target[:count] = np.frombuffer(handle.read(count * target.itemsize), dtype=target.dtype, count=count)
    return _copies(result)


def load(path, weights_only=True):
    """Load what `save` wrote, or a PyTorch ``.pth``/``.pt`` file of either format (tensors
    become numpy arrays).

    By default only containers, numbers, strings, arrays and tensors are accepted, and
    anything else raises `MetajitValueError` naming it. ``weights_only=False`` runs code
    from the file (plain ``pickle``): use it only for files you trust. A file that is
    empty, truncated or not a checkpoint raises `MetajitValueError` naming it.

    Example: ``model.load_state_dict(jt.load("model.pkl"))``.
    """
    try:
        if zipfile.is_zipfile(path):
            return _load_torch_zip(path, weights_only)
        with open(path, "rb") as handle:
            if handle.read(len(_LEGACY_TORCH_START)) == _LEGACY_TORCH_START:
                handle.seek(0)
                _RestrictedUnpickler(handle).load()  # the magic number
                return _load_torch_legacy(handle, weights_only)
            handle.seek(0)
            if weights_only:
                return _RestrictedUnpickler(handle).load()
            return pickle.load(handle)
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, IndexError, TypeError,
            AttributeError, ImportError, UnicodeDecodeError) as error:
        raise MetajitValueError(f"{path} is not a complete metajit (jt.save) or PyTorch (torch.save) "
                                f"checkpoint: {type(error).__name__}: {error}") from None
