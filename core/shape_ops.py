"""Shape operations, every one a `reindex` or `broadcast_to` meta-op (no data movement
until realised, and fused into consumers).

Also the public ``reindex`` / ``reindex_reduce`` with Jittor's string index form.
"""
import numbers

import numpy as np

from .ir import dtypes, graph, indexexpr
from .errors import MetajitShapeError, MetajitValueError
from .flags import thread_flags
from .math_ops import as_node, wrap
from .var import Var

I = indexexpr


def _loops(ndim):
    return [I.loop(a) for a in range(ndim)]


def _index_names(x_shape, y_shape, *expression_lists):
    """The named constants (``xshape0``, ``XDIM`` ...) the expressions may use; None when
    none of them names one (the usual case: building the table cost more than parsing)."""
    if not any(isinstance(e, str) and ("shape" in e or "SHAPE" in e or "DIM" in e)
               for exprs in expression_lists for e in ([exprs] if isinstance(exprs, str) else exprs)):
        return None
    names = {"XDIM": len(x_shape), "YDIM": len(y_shape)}
    for prefix, shape in (("x", x_shape), ("y", y_shape)):
        for axis, size in enumerate(shape):
            names[f"{prefix}shape{axis}"] = size
            names[f"{prefix.upper()}SHAPE{axis}"] = size
    return names


def _parse_all(exprs, loop_ndim, extras, names):
    if isinstance(exprs, str):
        exprs = [exprs]
    return [I.parse(e, loop_ndim, len(extras), names) for e in exprs]


def _extra_nodes(extras):
    return [cast_index(as_node(e)) for e in extras]


def cast_index(node):
    """``node`` as an integer node (for extra index inputs)."""
    from .math_ops import cast_node
    if dtypes.is_integer(node.dtype):
        return node
    if dtypes.is_float(node.dtype):
        raise MetajitValueError(f"index Vars must be integers, got {node.dtype}")
    return cast_node(node, dtypes.int32)


def reindex(x, shape, indexes, overflow_value=0, overflow_conditions=(), extras=()):
    """Gather: ``y[i0, i1, ...] = x[indexes...]`` (Jittor's ``reindex``).

    ``indexes`` has one C-style expression (or `IndexExpr`) per dim of ``x`` over the
    output indices ``i0, i1...``; ``xshape<k>``/``yshape<k>``/``XDIM`` are usable, and
    ``@e<k>(...)`` reads integer Var ``extras[k]``. Reads out of range, or where an
    ``overflow_conditions`` expression holds, give ``overflow_value``.

    Example: ``x.reindex([3, 4], ["i0", "i1 - 1"])`` shifts right with 0 padding.
    """
    shape = tuple(int(s) for s in shape)
    node = as_node(x)
    extra_nodes = _extra_nodes(extras)
    names = _index_names(node.shape, shape, indexes, overflow_conditions)
    exprs = _parse_all(indexes, len(shape), extra_nodes, names)
    conditions = _parse_all(list(overflow_conditions), len(shape), extra_nodes, names)
    return wrap(graph.reindex(node, shape, exprs, overflow_value, conditions, extra_nodes))


def reindex_reduce(x, op, shape, indexes, overflow_conditions=(), extras=()):
    """Scatter-reduce: ``y[indexes...] op= x[i0, i1, ...]`` (Jittor's ``reindex_reduce``).

    ``op`` is ``"add"``/``"sum"``, ``"multiply"``, ``"maximum"``, ``"minimum"``,
    ``"logical_or"``, ``"logical_and"``; ``indexes`` has one expression per output dim
    over the input indices. Targets out of range or under an overflow condition are
    skipped; untouched outputs hold the reduction's identity.
    """
    shape = tuple(int(s) for s in shape)
    node = as_node(x)
    extra_nodes = _extra_nodes(extras)
    names = _index_names(node.shape, shape, indexes, overflow_conditions)
    exprs = _parse_all(indexes, len(node.shape), extra_nodes, names)
    conditions = _parse_all(list(overflow_conditions), len(node.shape), extra_nodes, names)
    return wrap(graph.reindex_reduce(op, node, shape, exprs, conditions, extra_nodes))


def _shape_args(args):
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        return tuple(args[0])
    return tuple(args)


def reshape(x, *shape):
    """View ``x`` with a new shape (one entry may be -1), as a reindex on flat positions."""
    node = as_node(x)
    shape = _shape_args(shape)
    total = graph.numel(node.shape)
    if all(type(s) is int and s >= 0 for s in shape) and graph.numel(shape) == total:
        return wrap(graph.reshape(node, shape))
    unknown = [a for a, s in enumerate(shape) if s == -1]
    if len(unknown) > 1 or any(not isinstance(s, (numbers.Integral, np.integer)) or s < -1
                               for s in shape):
        raise MetajitShapeError(f"reshape: invalid shape {shape}")
    if unknown:
        known = graph.numel([s for s in shape if s != -1])
        if known == 0 or total % known:
            raise MetajitShapeError(f"reshape: cannot reshape {node.shape} into {shape}")
        shape = tuple(total // known if s == -1 else int(s) for s in shape)
    shape = tuple(int(s) for s in shape)
    if graph.numel(shape) != total:
        raise MetajitShapeError(f"reshape: cannot reshape {node.shape} ({total} elements) "
                                f"into {shape} ({graph.numel(shape)} elements)")
    return wrap(graph.reshape(node, shape))


view = reshape


def _axis(axis, ndim, op):
    return graph.normalise_axes(axis, ndim, op)[0]


def permute(x, *dims):
    """Reorder dimensions: output dim k is input dim ``dims[k]``."""
    node = as_node(x)
    dims = _shape_args(dims)
    ndim = len(node.shape)
    if len(dims) != ndim:
        raise MetajitShapeError(f"permute: {len(dims)} dims given for a {ndim}-d Var")
    dims = [_axis(d, ndim, "permute") for d in dims]
    if sorted(dims) != list(range(ndim)):
        raise MetajitShapeError(f"permute: {tuple(dims)} is not a permutation of {ndim} dims")
    return wrap(graph.permute(node, dims))


def transpose(x, *dims):
    """Reverse the dims (no args), swap two (``transpose(0, 1)``), or permute (all dims given)."""
    dims = _shape_args(dims)
    ndim = len(as_node(x).shape)
    if not dims:
        return permute(x, list(range(ndim))[::-1])
    if len(dims) == 2:
        first, second = (_axis(d, ndim, "transpose") for d in dims)
        order = list(range(ndim))
        order[first], order[second] = order[second], order[first]
        return permute(x, order)
    return permute(x, dims)


def t(x):
    """Transpose a Var of at most 2 dims."""
    if len(as_node(x).shape) > 2:
        raise MetajitShapeError("t() needs at most 2 dims; use transpose(dim0, dim1)")
    return transpose(x)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` into one."""
    shape = as_node(x).shape
    if not shape:
        return reshape(x, (1,))
    start, end = _axis(start_dim, len(shape), "flatten"), _axis(end_dim, len(shape), "flatten")
    merged = graph.numel(shape[start:end + 1])
    return reshape(x, shape[:start] + (merged,) + shape[end + 1:])


def squeeze(x, dim=None):
    """Remove size-1 dims (all, or the given ones)."""
    shape = as_node(x).shape
    if dim is None:
        axes = [a for a, s in enumerate(shape) if s == 1]
    else:
        axes = [a for a in graph.normalise_axes(dim, len(shape), "squeeze") if shape[a] == 1]
    return reshape(x, [s for a, s in enumerate(shape) if a not in axes])


def unsqueeze(x, dim):
    """Insert a size-1 dim at ``dim`` (negative counts from the end of the result)."""
    shape = list(as_node(x).shape)
    axis = _axis(dim, len(shape) + 1, "unsqueeze")
    shape.insert(axis, 1)
    return reshape(x, shape)


def broadcast(x, shape, dims=()):
    """Jittor's ``broadcast``: to ``shape`` (or another Var's shape); ``dims`` names the
    output dims ``x`` lacks (default: leading dims, numpy's rule)."""
    if isinstance(shape, Var):
        shape = shape.shape
    shape = tuple(int(s) for s in shape)
    node = as_node(x)
    if dims:
        axes = graph.normalise_axes(dims, len(shape), "broadcast")
        expanded = [1] * len(shape)
        remaining = iter(node.shape)
        for axis in range(len(shape)):
            if axis not in axes:
                expanded[axis] = next(remaining)
        node = as_node(reshape(wrap(node), expanded))
    return wrap(graph.broadcast_to(node, shape))


def broadcast_to(x, *shape):
    """Broadcast ``x`` to ``shape`` with numpy's rule."""
    return broadcast(x, _shape_args(shape))


def expand(x, *shape):
    """PyTorch ``expand``: like `broadcast_to`, where -1 keeps the existing size."""
    shape = _shape_args(shape)
    current = as_node(x).shape
    offset = len(shape) - len(current)
    resolved = tuple(current[a - offset] if s == -1 and a >= offset else s
                     for a, s in enumerate(shape))
    return broadcast(x, resolved)


def expand_as(x, other):
    """`expand` to ``other``'s shape."""
    return broadcast(x, other.shape)


_inference_concats = []  # rewrites of concatenations without gradients tracked (`register_inference_concat`)


def register_inference_concat(rewrite):
    """Have `concat` try ``rewrite(values, axis)`` (same dtypes, shapes checked) while no
    gradients are tracked: a Var it returns (a library op, e.g.
    `metajit.nn.conv.concat_folded`) is the concatenation."""
    _inference_concats.append(rewrite)


def concat(values, dim=0):
    """Join Vars along ``dim`` (``jt.concat`` / ``torch.cat``); a select over reindexed inputs."""
    values = [v if isinstance(v, Var) else wrap(as_node(v)) for v in values]
    if not values:
        raise MetajitValueError("concat needs at least one Var")
    return _concat(values, dim, True)


def concat_composed(values, dim):
    """`concat` as the select over reindexed inputs, never a library op (its meaning)."""
    return _concat(values, dim, False)


def _concat(values, dim, rewrites):
    from .math_ops import _operand_dtype, cast
    dtype = _operand_dtype(values)
    nodes = [as_node(v if v.dtype == dtype else cast(v, dtype)) for v in values]
    first = nodes[0].shape
    ndim = len(first)
    axis = _axis(dim, ndim, "concat")
    before, after = first[:axis], first[axis + 1:]
    for node in nodes[1:]:
        if len(node.shape) != ndim or node.shape[:axis] != before or node.shape[axis + 1:] != after:
            raise MetajitShapeError(f"concat: shapes {[v.shape for v in values]} differ "
                                    f"outside dimension {axis}")
    if rewrites and thread_flags.no_grad and len(nodes) > 1:
        for rewrite in _inference_concats:
            joined = rewrite([wrap(node) for node in nodes], axis)
            if joined is not None:
                return joined
    sizes = tuple([node.shape[axis] for node in nodes])
    shape = before + (sum(sizes),) + after
    layout = _concat_layout(shape, axis, sizes)
    if not layout:
        return wrap(graph.reindex(nodes[0], shape, _loops(ndim)))
    pieces = [(offset, graph.reindex_simplified(nodes[index], shape, simplified))
              for index, offset, simplified in layout]
    return wrap(_joined(pieces, graph.index_leaf(shape, axis), 0, len(pieces) - 1))


_concat_layouts = {}  # (shape, axis, sizes) -> `_concat_layout`'s answer


def _concat_layout(shape, axis, sizes):
    """``(input index, offset, simplified gather)`` of each non-empty piece of a concat onto
    ``shape`` (`graph.simplified_reindex`): every concat of a model's forward asks again
    (DenseNet-121: 600 pieces)."""
    key = (shape, axis, sizes)
    layout = _concat_layouts.get(key)
    if layout is None:
        layout, offset = [], 0
        for index, size in enumerate(sizes):
            if size:
                exprs = _loops(len(shape))
                exprs[axis] = exprs[axis] - offset
                layout.append((index, offset, graph.simplified_reindex(shape, tuple(exprs))))
            offset += size
        if len(_concat_layouts) > 4096:
            _concat_layouts.clear()
        _concat_layouts[key] = layout
    return layout


def _joined(pieces, position, first, last):
    """``pieces[first..last]`` (``(offset, node)`` pairs, each a concat input reindexed onto
    the whole output) as a balanced tree of selects on ``position`` (the output index
    along the concat axis): log2(count) comparisons per element."""
    if first == last:
        return pieces[first][1]
    middle = (first + last + 1) // 2
    return graph.select_below(position, pieces[middle][0], _joined(pieces, position, first, middle - 1),
                              _joined(pieces, position, middle, last))


cat = concat


def stack(values, dim=0):
    """Join Vars of equal shape along a new dimension ``dim``."""
    values = [v if isinstance(v, Var) else wrap(as_node(v)) for v in values]
    if not values:
        raise MetajitValueError("stack needs at least one Var")
    shapes = {v.shape for v in values}
    if len(shapes) > 1:
        raise MetajitShapeError(f"stack: all shapes must be equal, got {[v.shape for v in values]}")
    axis = _axis(dim, values[0].ndim + 1, "stack")
    return concat([unsqueeze(v, axis) for v in values], axis)


def _slice_along(x, axis, start, stop):
    node = as_node(x)
    exprs = _loops(len(node.shape))
    exprs[axis] = exprs[axis] + start
    shape = list(node.shape)
    shape[axis] = stop - start
    return wrap(graph.reindex(node, shape, exprs))


def split(x, split_size_or_sections, dim=0):
    """PyTorch ``split``: pieces of ``split_size`` (last may be smaller) or of the listed sizes."""
    shape = as_node(x).shape
    axis = _axis(dim, len(shape), "split")
    size = shape[axis]
    if isinstance(split_size_or_sections, (list, tuple)):
        sections = list(split_size_or_sections)
        if sum(sections) != size:
            raise MetajitShapeError(f"split: sections {sections} do not add up to {size}")
    else:
        step = int(split_size_or_sections)
        if step <= 0:
            raise MetajitValueError("split: split_size must be positive")
        sections = [min(step, size - s) for s in range(0, size, step)] or [0]
    pieces, start = [], 0
    for section in sections:
        pieces.append(_slice_along(x, axis, start, start + section))
        start += section
    return pieces


def chunk(x, chunks, dim=0):
    """Split into ``chunks`` pieces of equal size (the last may be smaller), as PyTorch."""
    size = as_node(x).shape[_axis(dim, x.ndim, "chunk")]
    return split(x, max(1, -(-size // chunks)), dim)


def flip(x, dims):
    """Reverse the order of elements along ``dims``."""
    node = as_node(x)
    axes = graph.normalise_axes(dims, len(node.shape), "flip")
    exprs = [node.shape[a] - 1 - I.loop(a) if a in axes else I.loop(a)
             for a in range(len(node.shape))]
    return wrap(graph.reindex(node, node.shape, exprs))


def pad(x, pad, mode="constant", value=0):
    """PyTorch ``F.pad``: ``pad`` = (left, right) pairs from the last dim backwards.

    Modes: ``constant`` (``value``), ``reflect``, ``replicate``, ``circular``; negative
    pads crop.
    """
    node = as_node(x)
    ndim = len(node.shape)
    if len(pad) % 2 or len(pad) // 2 > ndim:
        raise MetajitShapeError(f"pad: {len(pad)} pad values do not fit a {ndim}-d Var")
    before, after = [0] * ndim, [0] * ndim
    for k in range(len(pad) // 2):
        before[ndim - 1 - k], after[ndim - 1 - k] = int(pad[2 * k]), int(pad[2 * k + 1])
    shape = [s + b + a for s, b, a in zip(node.shape, before, after)]
    if any(s < 0 for s in shape):
        raise MetajitShapeError(f"pad: padding {tuple(pad)} leaves a negative size for {node.shape}")
    exprs = []
    for axis, size in enumerate(node.shape):
        position = I.loop(axis) - before[axis]
        if mode == "constant" or before[axis] == after[axis] == 0:
            exprs.append(position)
        elif mode == "replicate":
            exprs.append(I.binary("min", I.binary("max", position, 0), size - 1))
        elif mode == "circular":
            exprs.append(position % size)
        elif mode == "reflect":
            if max(before[axis], after[axis]) >= size:
                raise MetajitShapeError(f"pad: reflect padding must be smaller than the size "
                                        f"{size} of dimension {axis}")
            period = 2 * (size - 1)
            folded = position % period
            exprs.append(I.binary("min", folded, period - folded))
        else:
            raise MetajitValueError(f"pad: unknown mode {mode!r}; use constant, reflect, "
                                    "replicate or circular")
    return wrap(graph.reindex(node, shape, exprs, value if mode == "constant" else 0))


def repeat(x, *repeats):
    """PyTorch ``repeat`` / numpy ``tile``: tile ``x`` ``repeats[k]`` times along dim k."""
    node = as_node(x)
    repeats = [int(r) for r in _shape_args(repeats)]
    if len(repeats) < len(node.shape):
        raise MetajitShapeError(f"repeat: {len(repeats)} repeats for a {len(node.shape)}-d Var")
    source_shape = (1,) * (len(repeats) - len(node.shape)) + node.shape
    source = as_node(reshape(wrap(node), source_shape))
    shape = [s * r for s, r in zip(source_shape, repeats)]
    exprs = [I.loop(a) % size for a, size in enumerate(source_shape)]
    return wrap(graph.reindex(source, shape, exprs))


tile = repeat


def narrow(x, dim, start, length):
    """The ``length`` elements of ``x`` from ``start`` along ``dim`` (``torch.narrow``;
    a negative ``start`` counts from the end). Example: ``x.narrow(1, 2, 3)`` is ``x[:, 2:5]``."""
    shape = as_node(x).shape
    axis = _axis(dim, len(shape), "narrow")
    size, start, length = shape[axis], int(start), int(length)
    start = start + size if start < 0 else start
    if not 0 <= start <= size or not 0 <= length <= size - start:
        raise MetajitShapeError(f"narrow: start {start} and length {length} do not fit dimension {axis} "
                                f"of size {size}; keep start + length <= {size}")
    return _slice_along(x, axis, start, start + length)


def _axes_list(dims, ndim, op):
    dims = [dims] if isinstance(dims, (int, np.integer)) else list(dims)
    return [_axis(d, ndim, op) for d in dims]


def movedim(x, source, destination):
    """``x`` with dims ``source`` moved to positions ``destination`` (ints or sequences), the
    others keeping their order (``torch.movedim`` / ``moveaxis``). Example: ``x.movedim(0, -1)``."""
    ndim = len(as_node(x).shape)
    source, destination = _axes_list(source, ndim, "movedim"), _axes_list(destination, ndim, "movedim")
    if len(source) != len(destination) or len(set(source)) != len(source) or len(set(destination)) != len(source):
        raise MetajitShapeError(f"movedim: source {source} and destination {destination} must be lists of "
                                "distinct dims of the same length")
    order = [None] * ndim
    for s, d in zip(source, destination):
        order[d] = s
    rest = iter(a for a in range(ndim) if a not in source)
    return permute(x, [a if a is not None else next(rest) for a in order])


moveaxis = movedim


def swapaxes(x, axis0, axis1):
    """``x`` with two dims exchanged (``torch.swapaxes`` / ``swapdims``, ``transpose(a, b)``).
    Example: ``x.swapaxes(0, 1)``."""
    return transpose(x, axis0, axis1)


def unflatten(x, dim, sizes):
    """Dim ``dim`` of ``x`` split into ``sizes`` (one may be -1), as ``torch.unflatten``.
    Example: ``jt.zeros(2, 12).unflatten(1, (3, -1))`` has shape (2, 3, 4)."""
    shape = as_node(x).shape
    axis = _axis(dim, len(shape), "unflatten")
    sizes = [int(s) for s in sizes]
    if sizes.count(-1) == 1:
        known = graph.numel([s for s in sizes if s != -1])
        sizes[sizes.index(-1)] = shape[axis] // known if known else 0
    if graph.numel(sizes) != shape[axis]:
        raise MetajitShapeError(f"unflatten: sizes {tuple(sizes)} do not multiply to the size {shape[axis]} "
                                f"of dimension {axis}")
    return reshape(x, shape[:axis] + tuple(sizes) + shape[axis + 1:])


def ravel(x):
    """``x`` as a 1-d Var (``torch.ravel``). Example: ``jt.ravel(jt.zeros(2, 3))`` has shape (6,)."""
    return reshape(x, (-1,))


def _pieces(x, axis, bounds):
    """The slices of ``x`` along ``axis`` between consecutive ``bounds``."""
    return [_slice_along(x, axis, start, max(start, stop)) for start, stop in zip(bounds, bounds[1:])]


def tensor_split(x, indices_or_sections, dim=0):
    """``x`` split along ``dim`` into ``n`` pieces as equal as possible (the first ``size % n``
    one longer) or at the given indices (slices ``[:i0], [i0:i1], ..., [ik:]``), as
    ``torch.tensor_split``. Example: ``jt.arange(7).tensor_split(3)`` gives sizes 3, 2, 2."""
    shape = as_node(x).shape
    axis = _axis(dim, len(shape), "tensor_split")
    size = shape[axis]
    if isinstance(indices_or_sections, Var):
        indices_or_sections = indices_or_sections.numpy().tolist()
    if isinstance(indices_or_sections, (numbers.Integral, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise MetajitValueError(f"tensor_split: the number of sections must be positive, got {sections}")
        quotient, remainder = divmod(size, sections)
        bounds = [k * quotient + min(k, remainder) for k in range(sections + 1)]
    else:
        bounds = [0] + [slice(int(i)).indices(size)[1] for i in indices_or_sections] + [size]
    return _pieces(x, axis, bounds)


def _split_sideways(x, sections, dim, name, min_ndim):
    """`hsplit` / `vsplit` / `dsplit`: `tensor_split` along ``dim``, a number of sections
    dividing the size evenly."""
    shape = as_node(x).shape
    if len(shape) < min_ndim:
        raise MetajitShapeError(f"{name} needs a Var of at least {min_ndim} dims, got shape {tuple(shape)}")
    if isinstance(sections, (numbers.Integral, np.integer)) and (sections <= 0 or shape[dim] % sections):
        raise MetajitShapeError(f"{name}: dimension {dim} of size {shape[dim]} does not split into {sections} "
                                "equal pieces; give split indices instead")
    return tensor_split(x, sections, dim)


def hsplit(x, sections):
    """`tensor_split` along dim 1 (dim 0 of a 1-d Var) into equal pieces or at indices
    (``torch.hsplit``). Example: ``left, right = x.hsplit(2)``."""
    ndim = len(as_node(x).shape)
    return _split_sideways(x, sections, 1 if ndim > 1 else 0, "hsplit", 1)


def vsplit(x, sections):
    """`tensor_split` along dim 0 of a Var of 2 or more dims (``torch.vsplit``).
    Example: ``top, bottom = x.vsplit(2)``."""
    return _split_sideways(x, sections, 0, "vsplit", 2)


def dsplit(x, sections):
    """`tensor_split` along dim 2 of a Var of 3 or more dims (``torch.dsplit``). Example: ``x.dsplit([1, 3])``."""
    return _split_sideways(x, sections, 2, "dsplit", 3)


def fliplr(x):
    """``x`` reversed along dim 1 (``torch.fliplr``; at least 2 dims). Example: ``jt.fliplr(image)``."""
    if len(as_node(x).shape) < 2:
        raise MetajitShapeError("fliplr needs a Var of at least 2 dims; use flip(x, 0) for a vector")
    return flip(x, 1)


def flipud(x):
    """``x`` reversed along dim 0 (``torch.flipud``). Example: ``jt.flipud(image)``."""
    return flip(x, 0)


def rot90(x, k=1, dims=(0, 1)):
    """``x`` rotated by ``k`` quarter turns in the plane of ``dims``, from the first dim
    towards the second (``torch.rot90``). Example: ``jt.rot90(image, 1, (0, 1))``."""
    ndim = len(as_node(x).shape)
    first, second = _axes_list(dims, ndim, "rot90") if len(dims) == 2 else (None, None)
    if first is None or first == second:
        raise MetajitShapeError(f"rot90: dims must be two different dims, got {tuple(dims)}")
    k = int(k) % 4
    if k == 1:
        return transpose(flip(x, second), first, second)
    if k == 2:
        return flip(x, (first, second))
    if k == 3:
        return transpose(flip(x, first), first, second)
    return wrap(as_node(x))


def unfold(x, dimension, size, step):
    """The windows of ``size`` elements along ``dimension`` every ``step``, as a new last dim
    (``Tensor.unfold``, not `metajit.nn.unfold`). Example: ``jt.arange(5).unfold(0, 2, 2)``
    is ``[[0, 1], [2, 3]]``."""
    shape = as_node(x).shape
    axis = _axis(dimension, max(len(shape), 1), "unfold")
    length = shape[axis] if shape else 1
    if size < 0 or size > length or step <= 0:
        raise MetajitShapeError(f"unfold: windows of size {size} every {step} do not fit dimension {axis} "
                                f"of size {length}; keep 0 <= size <= {length} and step > 0")
    if not shape:
        return reshape(x, (size,))
    exprs = _loops(len(shape))
    exprs[axis] = I.loop(axis) * int(step) + I.loop(len(shape))
    windows = shape[:axis] + ((length - size) // step + 1,) + shape[axis + 1:] + (int(size),)
    return wrap(graph.reindex(as_node(x), windows, exprs))
