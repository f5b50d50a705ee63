"""Collation (PyTorch's ``torch.utils.data.default_collate`` and ``default_convert``): how
a loader turns a list of samples into a batch, and how it converts a sample it passes
through unbatched. Containers keep their structure and the leaves become Vars::

    default_collate([(np.zeros(3), 0, "a.jpg"), (np.ones(3), 1, "b.jpg")])
    # [Var of shape (2, 3), Var([0, 1]) (int64), ("a.jpg", "b.jpg")]

A collate_fn of one's own can fall back to `default_collate` for what it does not handle.
"""
import collections.abc
import copy

import numpy as np

from .errors import MetajitShapeError, MetajitTypeError, MetajitValueError
from .var import Var


def _unsupported(found):
    return MetajitTypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; "
                            f"found {found}; give the DataLoader a collate_fn that batches it")


def _is_text_array(array):
    """Whether a numpy array holds strings, bytes or Python objects, which make no Var."""
    return array.dtype.kind in "SaUO"


def _rebuild(template, parts):
    """``parts`` (a dict for a mapping, a list for a sequence) in ``template``'s container
    type, as PyTorch rebuilds them: a tuple becomes a list, a namedtuple stays one, and a
    type that cannot be rebuilt becomes a dict or a list."""
    if isinstance(template, tuple):
        return type(template)(*parts) if hasattr(template, "_fields") else parts
    try:
        if isinstance(template, (collections.abc.MutableMapping, collections.abc.MutableSequence)):
            clone = copy.copy(template)
            for key, part in (parts.items() if isinstance(parts, dict) else enumerate(parts)):
                clone[key] = part
            return clone
        return type(template)(parts)
    except TypeError:
        return parts


def _stack(arrays):
    shapes = {array.shape for array in arrays}
    if len(shapes) > 1:
        raise MetajitShapeError(f"default_collate: the samples' arrays differ in shape ({sorted(shapes)}); stacking "
                                f"needs one shape: resize them, or give the DataLoader a collate_fn that pads them")
    return Var(np.stack(arrays))


def default_collate(batch):
    """Stack a list of samples into a batch, as PyTorch's ``default_collate``: Vars, numpy
    arrays and numpy scalars stack into a Var with a new first axis (keeping their dtype),
    Python ints into an int64 Var, floats into float64 and bools into bool; strings and
    bytes stay as they are (the batch itself: a list at the top, a tuple inside a sample's
    fields); mappings, namedtuples and other
    sequences are collated field by field (a tuple becomes a list). Objects with
    ``__array__`` (torch tensors) stack as their arrays::

        default_collate([{"x": np.zeros(2), "name": "a"}, {"x": np.ones(2), "name": "b"}])
        # {"x": Var of shape (2, 2), "name": ["a", "b"]}
        default_collate(["a", "b"])   # ["a", "b"]
    """
    first = batch[0]
    if isinstance(first, Var):
        return _stack([item.numpy() for item in batch])
    if isinstance(first, np.ndarray):
        if _is_text_array(first):
            raise _unsupported(first.dtype)
        return _stack([np.asarray(item) for item in batch])
    if isinstance(first, (np.bool_, np.number)):
        return Var(np.array(batch))
    if isinstance(first, (bool, int, float)):  # bool, int64, or float64 if a float is among them
        values = np.array(batch)
        return Var(values.astype(np.int64) if values.dtype.kind in "iu" else values)
    if isinstance(first, (str, bytes)):
        return batch
    if isinstance(first, collections.abc.Mapping):
        return _rebuild(first, {key: default_collate([item[key] for item in batch]) for key in first})
    if isinstance(first, collections.abc.Sequence):
        if len({len(item) for item in batch}) > 1:
            raise MetajitValueError(f"default_collate: each element in list of batch should be of equal size; got "
                                    f"sizes {[len(item) for item in batch]}: pad them, or give the DataLoader a "
                                    f"collate_fn")
        return _rebuild(first, [default_collate(samples) for samples in zip(*batch)])
    if hasattr(first, "__array__"):
        return _stack([np.asarray(item) for item in batch])
    raise _unsupported(type(first))


def default_convert(data):
    """Convert one sample's numpy arrays and numpy scalars into Vars, keeping its structure,
    as PyTorch's ``default_convert`` (the loader's conversion of samples it passes through
    unbatched, with ``batch_size=None``): arrays of strings or objects and everything else
    stay as they are; mappings, namedtuples and sequences are converted item by item (a
    tuple becomes a list)::

        default_convert((np.zeros(2), 3))   # [Var([0., 0.]), 3]
    """
    if isinstance(data, np.ndarray):
        return data if _is_text_array(data) else Var(data)
    if isinstance(data, (np.bool_, np.number)):
        return Var(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return _rebuild(data, {key: default_convert(data[key]) for key in data})
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild(data, [default_convert(item) for item in data])
    return data
