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
import os
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


def _map_leaves(obj, leaf):
    """``obj`` with ``leaf`` applied to everything inside its dicts, lists and tuples."""
    if isinstance(obj, dict):
        return type(obj)((k, _map_leaves(v, leaf)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_leaves(v, leaf) for v in obj)
    return leaf(obj)


def _var_to_numpy(obj):
    return _map_leaves(obj, lambda value: value.numpy() if isinstance(value, Var) else value)


def save(obj, path):
    """Write ``obj`` to ``path``; Vars (also inside dicts, lists, tuples) are stored as arrays.

    A path ending in ``.pth`` or ``.pt`` gets PyTorch's zip format (`_save_torch_zip`), so
    ``torch.load`` reads it (weights-only too) and ``torchvision_model.load_state_dict``
    takes the result; any other gets a pickle with numpy arrays (Jittor's ``.pkl``).
    `load` reads both. Example: ``jt.save(model.state_dict(), "model.pth")``.
    """
    obj = _var_to_numpy(obj)
    if str(os.fspath(path)).endswith((".pth", ".pt")):
        _save_torch_zip(obj, path)
        return
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=4)


class _TorchName:
    """A global the torch file names (``torch.FloatStorage``), written as such although
    torch need not be installed."""

    def __init__(self, module, name):
        self.module, self.name = module, name


class _TorchStorage:
    """A tensor's storage, pickled as a persistent id naming the file ``data/<key>``."""

    def __init__(self, kind, key, count):
        self.kind, self.key, self.count = kind, key, count


_REBUILD_TENSOR = _TorchName("torch._utils", "_rebuild_tensor_v2")
_STORAGE_KINDS = {np.dtype(dtype): _TorchName("torch", name) for name, dtype in _TORCH_STORAGE_DTYPES.items()}


class _TorchPickler(pickle._Pickler):
    """Pickles an object as ``torch.save`` does (protocol 2): each array becomes
    ``torch._utils._rebuild_tensor_v2`` of a storage whose bytes go to ``arrays``."""

    dispatch = dict(pickle._Pickler.dispatch)

    def __init__(self, handle, arrays):
        super().__init__(handle, protocol=2)
        self.arrays = arrays

    def save_torch_name(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)
    dispatch[_TorchName] = save_torch_name

    def save_array(self, array):
        kind = _STORAGE_KINDS.get(array.dtype)
        if kind is None:
            raise MetajitValueError(f"a .pth file cannot hold a {array.dtype} array; save to a .pkl path instead")
        self.arrays.append(np.ascontiguousarray(array))
        storage = _TorchStorage(kind, str(len(self.arrays) - 1), array.size)
        strides = tuple(int(np.prod(array.shape[k + 1:])) for k in range(array.ndim))
        self.save(_REBUILD_TENSOR)
        self.save((storage, 0, tuple(array.shape), strides, False, collections.OrderedDict()))
        self.write(pickle.REDUCE)
        self.memoize(array)
    dispatch[np.ndarray] = save_array

    def persistent_id(self, obj):
        if isinstance(obj, _TorchStorage):
            return ("storage", obj.kind, obj.key, "cpu", obj.count)
        return None


def _save_torch_zip(obj, path):
    """Write ``obj`` (arrays inside containers) in ``torch.save``'s zip format:
    ``archive/data.pkl``, one ``archive/data/<key>`` per array (little-endian bytes), and
    the format version."""
    buffer, arrays = io.BytesIO(), []
    _TorchPickler(buffer, arrays).dump(_map_leaves(obj, lambda v: np.asarray(v) if isinstance(v, np.generic) else v))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for key, array in enumerate(arrays):
            archive.writestr(f"archive/data/{key}", array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
        archive.writestr("archive/version", "3\n")


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
