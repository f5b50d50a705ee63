"""``x[index]`` and ``x[index] = value`` with numpy semantics, as reindex / reindex_reduce.

Supported: ints, slices (any step, negative too), ``None``, ``...``, boolean masks
and integer arrays (lists, numpy arrays, int Vars; broadcast together, placed as numpy
places them). A boolean mask's true count decides the result shape, so it is
realised first. Out-of-range integers raise `MetajitIndexError` naming the value and the
dimension: at once when the index values are on the host (Python ints and lists, numpy
arrays, index Vars not yet computed on a device such as ``jt.array([20])``), and at the
realisation that computes the result when the index Var is computed on the device
(`metajit.passes.checks`; ``jt.flags.check_indices = 0`` turns that off).
"""
import numbers

import numpy as np

from .ir import dtypes, graph, indexexpr as I
from .errors import MetajitIndexError, MetajitShapeError, MetajitTypeError, MetajitValueError
from .flags import flags
from .passes import checks
from .math_ops import as_node, binary, broadcast_shapes, cast_node, where, wrap
from .reductions import ARG_EXTREME_HINT, IndicesValues, any as reduce_any, max as reduce_max, min as reduce_min
from .var import Var


def _is_bool_array(item):
    if isinstance(item, Var):
        return item.dtype == dtypes.bool_
    if isinstance(item, np.ndarray):
        return item.dtype == np.bool_
    if isinstance(item, list):
        return np.asarray(item).dtype == np.bool_
    return False


def _is_int_array(item):
    if isinstance(item, Var):
        return dtypes.is_integer(item.dtype)
    if isinstance(item, (np.ndarray, list)):
        return np.asarray(item).dtype.kind in "iu"
    return False


def _expand(shape, index):
    """Replace ``...`` and boolean masks; returns a list of index items."""
    if not isinstance(index, tuple):
        index = (index,)
    items = []
    for item in index:
        if _is_bool_array(item):
            mask = item.numpy() if isinstance(item, Var) else np.asarray(item)
            items.extend(("mask_column", c, mask.shape, k) for k, c in enumerate(np.nonzero(mask)))
            if mask.ndim == 0:
                raise MetajitValueError("indexing with a 0-d boolean is not supported")
        else:
            items.append(item)
    consumed = sum(1 for i in items if i is not None and i is not Ellipsis)
    if sum(1 for i in items if i is Ellipsis) > 1:
        raise MetajitValueError("an index can only have a single ellipsis ('...')")
    if consumed > len(shape):
        raise MetajitIndexError(f"too many indices ({consumed}) for a Var of shape {shape}")
    if Ellipsis in [i for i in items if not isinstance(i, (np.ndarray, list, Var))]:
        position = next(k for k, i in enumerate(items) if i is Ellipsis)
        items[position:position + 1] = [slice(None)] * (len(shape) - consumed)
    else:
        items.extend([slice(None)] * (len(shape) - consumed))
    return items


def _index_mapping(node, index):
    """Output shape, one IndexExpr per input dim (over output loops), extra nodes, and the
    ``(index node, size, dim)`` of index Vars computed on the device (checked later)."""
    if isinstance(index, IndicesValues):
        raise MetajitTypeError(f"an argmax / argmin result used as an index: {ARG_EXTREME_HINT}")
    shape = node.shape
    items = _expand(shape, index)
    arrays, extras, dims, device_indices = {}, [], 0, []
    for position, item in enumerate(items):
        if item is None:
            continue
        if isinstance(item, tuple) and item[0] == "mask_column":
            _, column, mask_shape, k = item
            if shape[dims] != mask_shape[k]:
                raise MetajitIndexError(f"boolean mask of shape {mask_shape} does not match "
                                        f"the indexed dims of shape {shape}")
            arrays[position] = graph.array_leaf(np.ascontiguousarray(column, dtype=np.int32))
        elif _is_int_array(item):
            arrays[position] = _int_array_node(item, shape[dims], dims)
            if isinstance(item, Var) and item._node.host_data is None:
                device_indices.append((arrays[position], shape[dims], dims))
        elif isinstance(item, (Var, np.ndarray, list)):
            raise MetajitValueError(f"index arrays must be integers or booleans, got "
                                    f"{getattr(item, 'dtype', type(item).__name__)}")
        dims += 1
    advanced_shape = broadcast_shapes(*(n.shape for n in arrays.values()), op="index arrays")
    advanced = [p for p, i in enumerate(items)
                if p in arrays or (arrays and isinstance(i, (numbers.Integral, np.integer)))]
    adjacent = advanced == list(range(advanced[0], advanced[-1] + 1)) if advanced else True
    out_shape, exprs = [], []
    advanced_start = None if not arrays else (0 if not adjacent else None)
    if arrays and not adjacent:
        out_shape.extend(advanced_shape)
    dims = 0
    for position, item in enumerate(items):
        if arrays and adjacent and position == advanced[0]:
            advanced_start = len(out_shape)
            out_shape.extend(advanced_shape)
        if item is None:
            out_shape.append(1)
            continue
        size = shape[dims]
        if position in arrays:
            array = arrays[position]
            offset = advanced_start + len(advanced_shape) - len(array.shape)
            loads = [I.const(0) if s == 1 else I.loop(offset + k) for k, s in enumerate(array.shape)]
            value = I.extra(len(extras), loads)
            extras.append(array)
            exprs.append(value + I.binary("lt", value, 0) * size)
        elif isinstance(item, (numbers.Integral, np.integer)) or (
                isinstance(item, Var) and item.ndim == 0):
            value = int(item)
            if not -size <= value < size:
                raise MetajitIndexError(f"index {value} is out of range for dimension {dims} "
                                        f"of size {size}")
            exprs.append(I.const(value % size))
        elif isinstance(item, slice):
            start, _, step = item.indices(size)
            length = len(range(*item.indices(size)))
            exprs.append(I.loop(len(out_shape)) * step + start)
            out_shape.append(length)
        else:
            raise MetajitValueError(f"unsupported index {item!r}")
        dims += 1
    return tuple(out_shape), _renumber(exprs, out_shape), extras, device_indices


def register_range_check(guarded, values, low, high, message):
    """Check at the realisation computing ``guarded`` that the integer node ``values`` lies
    in ``[low, high)``; ``message(value)`` names the offending value in the
    `MetajitIndexError`. Does nothing under ``jt.flags.check_indices = 0`` or for no values."""
    if not flags.check_indices or graph.numel(values.shape) == 0:
        return
    values = wrap(values)
    outside = binary("logical_or", binary("lt", values, low), binary("ge", values, high))
    offenders = where(outside, values, low)
    nodes = [reduce_any(outside)._node, reduce_max(offenders)._node, reduce_min(offenders)._node]

    def describe(flag, highest, lowest):
        if not flag.item():
            return None
        return message(int(highest) if highest >= high else int(lowest))
    checks.register(guarded, nodes, describe)


def _renumber(exprs, out_shape):
    return [I.simplify(e, out_shape) for e in exprs]


def first_out_of_range(host, low, high):
    """The first value of the host array ``host`` outside ``[low, high)``, or None."""
    if host.size and (host.min() < low or host.max() >= high):
        return host[(host < low) | (host >= high)].flat[0]
    return None


def check_index_values(host, size, dim):
    """Raise `MetajitIndexError` naming the first value of ``host`` outside ``[-size, size)``
    and the dimension ``dim`` it indexes."""
    bad = first_out_of_range(host, -size, size)
    if bad is not None:
        raise MetajitIndexError(f"index {bad} is out of range for dimension {dim} of size {size}")


def _int_array_node(item, size, dim):
    if isinstance(item, Var):
        if item._node.host_data is not None:  # values still on the host: checking is free
            check_index_values(item._node.host_data, size, dim)
        return cast_node(item._node, dtypes.int32) if item.dtype == dtypes.uint8 else item._node
    host = np.asarray(item)
    check_index_values(host, size, dim)
    return graph.array_leaf(np.ascontiguousarray(host, dtype=np.int32 if host.dtype.itemsize <= 4 else np.int64))


def getitem(x, index):
    """``x[index]`` with numpy semantics (see the module docstring)."""
    node = x._node
    shape, exprs, extras, device_indices = _index_mapping(node, index)
    result = graph.reindex(node, shape, exprs, 0, (), extras)
    _check_device_indices(result, device_indices)
    return wrap(result)


def _check_device_indices(guarded, device_indices):
    for values, size, dim in device_indices:
        register_range_check(guarded, values, -size, size,
                             lambda value, dim=dim, size=size:
                             f"index {value} is out of range for dimension {dim} of size {size}")


def setitem(x, index, value, accumulate=False):
    """``x[index] = value``: ``x`` now holds the updated value (gradients flow to both);
    with ``accumulate`` (PyTorch's ``index_put_(..., accumulate=True)``) ``x[index] += value``,
    repeated indices adding up.

    With repeated integer indices and no ``accumulate`` one of the written values wins
    (metajit takes the largest), as numpy and PyTorch leave the order unspecified too.
    """
    node = x._node
    shape, exprs, extras, device_indices = _index_mapping(node, index)
    from .math_ops import cast_node as cast
    source = cast(as_node(value, node.dtype), node.dtype)
    try:
        source = graph.broadcast_to(source, shape)
    except MetajitShapeError:
        raise MetajitShapeError(f"cannot assign a value of shape {source.shape} to an index "
                                f"selecting shape {shape}") from None
    if accumulate:
        result = graph.elementwise("add", [node, graph.reindex_reduce("sum", source, node.shape, exprs, (), extras)])
        _check_device_indices(result, device_indices)
        return x._replace(result)
    scattered = graph.reindex_reduce("max", source, node.shape, exprs, (), extras)
    ones = graph.broadcast_to(graph.constant_leaf(1, dtypes.int32), shape)
    hits = graph.reindex_reduce("sum", ones, node.shape, exprs, (), extras)
    written = graph.elementwise("gt", [hits, graph.broadcast_to(
        graph.constant_leaf(0, dtypes.int32), node.shape)])
    result = graph.elementwise("select", [written, scattered, node])
    _check_device_indices(result, device_indices)
    return x._replace(result)
