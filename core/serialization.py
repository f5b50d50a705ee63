"""``jt.save`` / ``jt.load``: pickle with numpy payloads, a weights-only loader, and a reader
for PyTorch ``.pth`` files that needs no torch: zip archives written by ``torch.save``
and the older format it wrote before PyTorch 1.6 (still used by many published checkpoints).

Both take a path or a binary file object (``io.BytesIO``, ``open(name, "rb")``), and
`load` takes ``torch.load``'s ``map_location`` (values load into host memory and are
placed when they become Vars, so a device changes nothing; a function is called on each
storage as torch calls it).

Loading is weights-only by default for every format (as PyTorch since 2.6): containers,
numbers, strings, arrays and tensors, nothing that runs code. ``weights_only=False``
unpickles anything, which can run arbitrary code from the file: use it only on files you
trust.
"""
import collections
import contextlib
import copy
import io
import os
import pickle
import zipfile

import numpy as np

from .errors import MetajitTypeError, MetajitValueError
from .placement import is_device
from .var import Var

_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "Counter"): collections.Counter,  # torch's MultiStepLR milestones
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


def _with_values(mapping, function):
    """A copy of ``mapping`` of its own type and attributes (an OrderedDict, a Counter, a
    defaultdict) with ``function`` applied to each value."""
    copied = copy.copy(mapping)
    for key, value in mapping.items():
        dict.__setitem__(copied, key, function(value))
    return copied


def _map_leaves(obj, leaf):
    """``obj`` with ``leaf`` applied to everything inside its dicts, lists and tuples."""
    if isinstance(obj, dict):
        return _with_values(obj, lambda value: _map_leaves(value, leaf))
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_leaves(v, leaf) for v in obj)
    return leaf(obj)


def _var_to_numpy(obj):
    return _map_leaves(obj, lambda value: value.numpy() if isinstance(value, Var) else value)


def _is_path(f):
    return isinstance(f, (str, bytes)) or hasattr(f, "__fspath__")


def _describe(f):
    """How an error names ``f``: the path, else the file object's name or type."""
    if _is_path(f):
        return os.fsdecode(os.fspath(f))
    return getattr(f, "name", None) or f"the {type(f).__name__} object"


@contextlib.contextmanager
def _binary_file(f, mode, caller):
    """``f`` opened in binary ``mode`` ("rb" or "wb") when it is a path, else ``f`` itself,
    checked to be a binary file object."""
    if _is_path(f):
        with open(f, mode) as handle:
            yield handle
        return
    method = "read" if mode == "rb" else "write"
    if not callable(getattr(f, method, None)):
        raise MetajitTypeError(f"{caller} takes a path or a binary file object with {method}(), "
                               f"not {type(f).__name__}")
    if isinstance(f, io.TextIOBase) or "b" not in getattr(f, "mode", "b"):
        raise MetajitTypeError(f"{caller}: {_describe(f)} is open in text mode; open it with {mode!r}")
    yield f


TORCH_ENDINGS = (".pth", ".pt", ".tar", ".ckpt", ".bin")  # what PyTorch scripts name checkpoints


def _writes_torch_format(f):
    """Whether `save` writes torch's zip format to ``f``: a name (the path, or an open file's
    ``name``) with one of PyTorch checkpoints' endings (`TORCH_ENDINGS`: ``.pth``, ``.pt``,
    ``.pth.tar``...), or a file object without one (``io.BytesIO``), as ``torch.save`` writes."""
    name = os.fspath(f) if _is_path(f) else getattr(f, "name", None)
    if not isinstance(name, (str, bytes)):
        return True
    return os.fsdecode(name).endswith(TORCH_ENDINGS)


def save(obj, f):
    """Write ``obj`` to ``f``, a path or a binary file object (``io.BytesIO``, ``open(name,
    "wb")``); Vars (also inside dicts, lists, tuples) are stored as arrays.

    A name ending in ``.pth``, ``.pt``, ``.tar``, ``.ckpt`` or ``.bin``, or a file object
    without a name, gets PyTorch's zip format (`_save_torch_zip`), so ``torch.load`` reads it (weights-only too) and
    ``torchvision_model.load_state_dict`` takes the result; any other name gets a pickle
    with numpy arrays (Jittor's ``.pkl``). `load` reads both.
    Example: ``jt.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, "ckpt.pth")``.
    """
    obj = _var_to_numpy(obj)
    with _binary_file(f, "wb", "jt.save") as handle:
        if _writes_torch_format(f):
            _save_torch_zip(obj, handle)
        else:
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


def _save_torch_zip(obj, handle):
    """Write ``obj`` (arrays inside containers) to ``handle`` in ``torch.save``'s zip format:
    ``archive/data.pkl``, one ``archive/data/<key>`` per array (little-endian bytes), and
    the format version."""
    buffer, arrays = io.BytesIO(), []
    _TorchPickler(buffer, arrays).dump(_map_leaves(obj, lambda v: np.asarray(v) if isinstance(v, np.generic) else v))
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
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


class _HostStorage(np.ndarray):
    """What a ``map_location`` function receives for each storage: the storage's numpy array
    (loaded values stay in host memory until they become Vars), whose torch storage methods
    ``cpu()``, ``cuda(device)`` and ``to(device)`` return it unchanged."""

    def cpu(self):
        return self

    def cuda(self, device=None, non_blocking=False, **kwargs):
        return self

    def to(self, *args, **kwargs):
        return self


def _storage_placement(map_location):
    """``torch.load``'s ``map_location`` as a function ``(array, location) -> array`` for each
    storage, or None when it changes nothing: a device (``"cpu"``, ``"cuda:0"``, a
    ``torch.device``) or a dict from saved locations to devices only says where values go,
    and loaded values are placed on the device in use when they become Vars."""
    if map_location is None or is_device(map_location):
        return None
    if isinstance(map_location, dict):
        wrong = [value for pair in map_location.items() for value in pair if not is_device(value)]
        if wrong:
            raise MetajitTypeError(f"map_location: {wrong[0]!r} in the dict is not a device; map saved "
                                   "locations to devices, e.g. {'cuda:1': 'cuda:0'}")
        return None
    if isinstance(map_location, bool) or not callable(map_location):
        hint = " (weights_only is keyword-only, as in torch.load)" if isinstance(map_location, bool) else ""
        raise MetajitTypeError(f"map_location={map_location!r}{hint}: give a device ('cpu', 'cuda:0', a "
                               "torch.device), a dict from saved locations to devices, or a function "
                               "(storage, location) -> storage")

    def place(array, location):
        try:
            placed = map_location(array.view(_HostStorage), location)
        except Exception as error:
            raise MetajitValueError(f"map_location's function failed on a storage saved on {location!r}: "
                                    f"{type(error).__name__}: {error} (it receives each storage as a numpy "
                                    "array with cpu(), cuda() and to())") from error
        if placed is None:
            return array
        placed = np.asarray(placed)
        if placed.dtype != array.dtype or placed.size != array.size:
            raise MetajitValueError(f"map_location's function returned {placed.size} {placed.dtype} values for a "
                                    f"storage of {array.size} {array.dtype}; return the storage it was given")
        return placed.reshape(array.shape)
    return place


class _TorchUnpickler(pickle.Unpickler):
    """Reads the pickled object of a torch checkpoint; each storage comes from
    ``storage(key, dtype, count, location)`` (tensors are views of it)."""

    def __init__(self, handle, storage, weights_only, **pickle_load_args):
        super().__init__(handle, **pickle_load_args)
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
        _, storage_type, key, location, count = saved_id[:5]
        if isinstance(storage_type, str):
            raise MetajitValueError(f"unsupported torch storage type {storage_type!r}")
        return self.storage(key, storage_type, count, location)


def _copies(obj):
    """``obj`` with every array replaced by a contiguous copy (tensors read from a checkpoint
    are views of its storages)."""
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, dict):
        return _with_values(obj, _copies)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_copies(v) for v in obj)
    return obj


def _load_torch_zip(handle, name, place, weights_only, pickle_load_args):
    with zipfile.ZipFile(handle) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if not pickles:
            raise MetajitValueError(f"{name}: a zip file without data.pkl is not a torch checkpoint")
        prefix = pickles[0][:-len("/data.pkl")]

        storages = {}  # (tensors sharing a storage name it once each)

        def storage(key, dtype, count, location):
            if key not in storages:
                array = np.frombuffer(archive.read(f"{prefix}/data/{key}"), dtype=dtype, count=count)
                storages[key] = place(array, location) if place else array
            return storages[key]
        with archive.open(pickles[0]) as data:
            return _copies(_TorchUnpickler(io.BytesIO(data.read()), storage, weights_only, **pickle_load_args).load())


def _load_torch_legacy(handle, place, weights_only, pickle_load_args):
    """The format ``torch.save`` wrote before PyTorch 1.6 (and with
    ``_use_new_zipfile_serialization=False``): after the magic number, protocol and system
    information, the pickled object, then the storage keys, then each storage as an int64
    element count followed by its bytes. Many torchvision checkpoints are in it."""
    _RestrictedUnpickler(handle).load()  # protocol version
    _RestrictedUnpickler(handle).load()  # byte order and type sizes
    storages = {}

    def storage(key, dtype, count, location):
        return storages.setdefault(key, (np.empty(count, dtype=dtype), location))[0]
    result = _TorchUnpickler(handle, storage, weights_only, **pickle_load_args).load()
    for key in _RestrictedUnpickler(handle).load():
        target, location = storages[key]
        count = int.from_bytes(handle.read(8), "little")
        target[:count] = np.frombuffer(handle.read(count * target.itemsize), dtype=target.dtype, count=count)
        if place:  # the tensors are views of ``target``: a storage the function replaced is copied in
            placed = place(target, location)
            if not np.may_share_memory(placed, target):
                target[...] = placed
    return _copies(result)


def _seekable(handle):
    seekable = getattr(handle, "seekable", None)
    return seekable() if callable(seekable) else hasattr(handle, "seek") and hasattr(handle, "tell")


def _load_from(handle, name, place, weights_only, pickle_load_args):
    """What the file ``handle`` holds from its current position, whichever format."""
    if not _seekable(handle):  # (a pipe): the formats are told apart by their first bytes
        handle = io.BytesIO(handle.read())
    start = handle.tell()
    first_bytes = handle.read(len(_LEGACY_TORCH_START))
    handle.seek(start)
    if first_bytes.startswith(b"PK\x03\x04"):
        return _load_torch_zip(handle, name, place, weights_only, pickle_load_args)
    if first_bytes == _LEGACY_TORCH_START:
        _RestrictedUnpickler(handle).load()  # the magic number
        return _load_torch_legacy(handle, place, weights_only, pickle_load_args)
    if weights_only:
        return _RestrictedUnpickler(handle, **pickle_load_args).load()
    return pickle.Unpickler(handle, **pickle_load_args).load()


def load(f, map_location=None, *, weights_only=True, mmap=None, **pickle_load_args):
    """Load what `save` wrote, or a PyTorch ``.pth``/``.pt`` file of either format (tensors
    become numpy arrays), from ``f``: a path or a binary file object (``io.BytesIO``,
    ``open(name, "rb")``), read from its current position.

    ``map_location`` is ``torch.load``'s: a device (``"cpu"``, ``"cuda:0"``, a
    ``torch.device``) or a dict from saved locations to devices changes nothing, since
    loaded values are placed on the device in use when they become Vars; a function
    ``(storage, location)`` is called on each storage of a torch file, as torch calls it (the
    storage is a numpy array whose ``cpu()``, ``cuda()`` and ``to()`` return it), and may
    return a replacement or None. ``mmap`` is accepted (values are read into memory either
    way); ``pickle_load_args`` (``encoding="latin1"`` for Python 2 files) go to the unpickler.

    By default only containers, numbers, strings, arrays and tensors are accepted, and
    anything else raises `MetajitValueError` naming it. ``weights_only=False`` runs code
    from the file (plain ``pickle``): use it only for files you trust. A file that is
    empty, truncated or not a checkpoint raises `MetajitValueError` naming it.

    Example: ``model.load_state_dict(jt.load("model.pth", map_location="cpu")["model"])``.
    """
    place = _storage_placement(map_location)
    weights_only = True if weights_only is None else weights_only
    with _binary_file(f, "rb", "jt.load") as handle:
        try:
            return _load_from(handle, _describe(f), place, weights_only, pickle_load_args)
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, KeyError, IndexError, TypeError,
                AttributeError, ImportError, UnicodeDecodeError) as error:
            raise MetajitValueError(f"{_describe(f)} is not a complete metajit (jt.save) or PyTorch "
                                    f"(torch.save) checkpoint: {type(error).__name__}: {error}") from None
