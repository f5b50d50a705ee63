"""Tensor ops Jittor and PyTorch users reach for, as meta-op compositions (so gradients
of any order come from the meta-ops): ``masked_fill``, ``index_select``, ``gather``,
``tril``/``triu``, ``diag``, ``trace``, ``outer``, ``roll``, ``cumsum``/``cumprod``
(log-step scans), ``sort``/``argsort``/``topk``/``kthvalue`` (ranks by comparison counts; a bitonic network
for long rows),
``einsum``, ``meshgrid``, ``searchsorted``, ``histc``, ``bincount``, ``cross``, ``erfinv``,
``bmm``/``baddbmm``/``addmm``,
``scatter``/``scatter_add``, ``masked_select``, ``unique``; and PyTorch's
``cummax``/``cummin``/``logcumsumexp`` (scans), ``diff``, ``take``/``take_along_dim``,
``index_add``/``index_copy``/``index_fill``, ``masked_scatter``, ``scatter_reduce``,
``repeat_interleave``, ``diag_embed``/``diagflat``, ``argwhere``, ``unique_consecutive``,
``mm``/``mv``/``dot``/``inner``/``kron``/``addmv``/``addr``.

Each follows PyTorch's documented behaviour (Jittor's where it has the op). Example::

    y = x.masked_fill(x < 0, 0.0)
    picked = x.gather(1, index)          # out[i][j] = x[i][index[i][j]]
"""
import builtins
import collections

import numpy as np

from .bitonic import ordered_before, same_key, sorting_order
from .creation import arange, array
from .errors import MetajitShapeError
from .indexing import _check_device_indices, check_index_values, getitem
from .ir import dtypes, graph
from .math_ops import binary, cast, logaddexp, matmul, nonzero, where, with_gradient
from .reductions import argmax, sum as reduce_sum
from .shape_ops import concat, narrow, reindex, reindex_reduce
from .var import Var


ValuesIndices = collections.namedtuple("ValuesIndices", ["values", "indices"])  # torch.return_types' fields


def _dim(dim, ndim, op):
    if not -ndim <= dim < max(ndim, 1):
        raise MetajitShapeError(f"{op}: dim {dim} is out of range for a {ndim}-d Var")
    return dim % max(ndim, 1)


def masked_fill(x, mask, value):
    """``x`` with ``value`` where ``mask`` (broadcast to ``x``) is true."""
    return where(mask, value, x).cast(x.dtype)


def index_select(x, dim, index):
    """The slices of ``x`` along ``dim`` at the 1-d integer ``index`` (out-of-range raises)."""
    dim = _dim(dim, x.ndim, "index_select")
    if getattr(index, "ndim", 1) != 1:
        raise MetajitShapeError(f"index_select: index must be 1-d, got shape {tuple(index.shape)}")
    return getitem(x, (slice(None),) * dim + (index,))


def _along(x, dim, index, op):
    """``(dim, index, exprs)`` for an op reading or writing ``x`` at ``index`` along ``dim``
    (``gather``, ``scatter``): ``index`` as a Var of ``x``'s rank, checked now when its
    values are on the host, and the index expressions of ``x``'s dims over ``index``'s
    positions (negative indices count from the end)."""
    dim = _dim(dim, x.ndim, op)
    index = index if isinstance(index, Var) else array(index)
    if index.ndim != x.ndim or any(i > s for d, (i, s) in enumerate(zip(index.shape, x.shape)) if d != dim):
        raise MetajitShapeError(f"{op}: index shape {tuple(index.shape)} does not fit x shape "
                                f"{tuple(x.shape)} along dims other than {dim}")
    if index._node.host_data is not None:
        check_index_values(index._node.host_data, x.shape[dim], dim)
    loops = ", ".join(f"i{d}" for d in range(index.ndim))
    exprs = [f"i{d}" for d in range(x.ndim)]
    exprs[dim] = f"@e0({loops})+(@e0({loops})<0)*{x.shape[dim]}"
    return dim, index, exprs


def _checked(result, index, size, dim):
    """``result``, with ``index`` checked against ``size`` when it realises (an index
    computed on the device; host values were checked by `_along`)."""
    if index._node.host_data is None:
        _check_device_indices(result._node, [(index._node, size, dim)])
    return result


def gather(x, dim, index):
    """``out[i][j][k] = x[i][index[i][j][k]][k]`` for ``dim=1`` (PyTorch's ``gather``):
    ``index`` has ``x``'s rank, its size along every other dim at most ``x``'s."""
    dim, index, exprs = _along(x, dim, index, "gather")
    return _checked(reindex(x, index.shape, exprs, extras=[index]), index, x.shape[dim], dim)


def _triangle(x, diagonal, keep, op):
    if x.ndim < 2:
        raise MetajitShapeError(f"{op} expects a Var of at least 2 dims, got shape {tuple(x.shape)}")
    rows, columns = x.ndim - 2, x.ndim - 1
    dropped = f"i{columns}-i{rows}{'>' if keep == 'lower' else '<'}{int(diagonal)}"
    return reindex(x, x.shape, [f"i{d}" for d in range(x.ndim)], overflow_conditions=[dropped])


def tril(x, diagonal=0):
    """The lower triangle of the last two dims (``j - i <= diagonal`` kept, the rest 0)."""
    return _triangle(x, diagonal, "lower", "tril")


def triu(x, diagonal=0):
    """The upper triangle of the last two dims (``j - i >= diagonal`` kept, the rest 0)."""
    return _triangle(x, diagonal, "upper", "triu")


def diag(x, diagonal=0):
    """1-d ``x``: a square matrix with ``x`` on diagonal ``diagonal``; 2-d ``x``: that diagonal."""
    k = int(diagonal)
    if x.ndim == 1:  # out[i, i + k] = x[i] (k >= 0), out[j - k, j] = x[j] (k < 0)
        n = x.shape[0] + abs(k)
        return reindex(x, (n, n), ["i0" if k >= 0 else "i1"], overflow_conditions=[f"i1-i0!={k}"])
    if x.ndim == 2:
        rows, columns = x.shape
        length = max(0, min(rows, columns - k) if k >= 0 else min(rows + k, columns))
        return reindex(x, (length,), [f"i0+{max(-k, 0)}", f"i0+{max(k, 0)}"])
    raise MetajitShapeError(f"diag expects a 1-d or 2-d Var, got shape {tuple(x.shape)}")


def trace(x):
    """The sum of the main diagonal of a 2-d Var."""
    if x.ndim != 2:
        raise MetajitShapeError(f"trace expects a 2-d Var, got shape {tuple(x.shape)}")
    return reduce_sum(diag(x))


def outer(x, y):
    """``out[i, j] = x[i] * y[j]`` for 1-d ``x`` and ``y``."""
    if x.ndim != 1 or y.ndim != 1:
        raise MetajitShapeError(f"outer expects 1-d Vars, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    return binary("mul", x.reshape(x.shape[0], 1), y.reshape(1, y.shape[0]))


def roll(x, shifts, dims=None):
    """Rotate ``x`` by ``shifts`` along ``dims`` (flattened first when ``dims`` is None)."""
    if dims is None:
        return roll(x.reshape(-1), shifts, 0).reshape(x.shape)
    shifts = [shifts] if isinstance(shifts, int) else list(shifts)
    dims = [dims] if isinstance(dims, int) else list(dims)
    if len(shifts) != len(dims):
        raise MetajitShapeError(f"roll: {len(shifts)} shifts for {len(dims)} dims")
    exprs = [f"i{d}" for d in range(x.ndim)]
    for shift, dim in zip(shifts, dims):
        dim = _dim(dim, x.ndim, "roll")
        size = x.shape[dim]
        if size:
            exprs[dim] = f"(i{dim}+{size - int(shift) % size})%{size}"
    return reindex(x, x.shape, exprs)


def _scan(values, dim, combine, identities, op):
    """Inclusive scan of the Vars ``values`` (one shape) along ``dim`` in ceil(log2(n)) steps
    (Hillis-Steele): each step combines them, ``combine(later, earlier)`` (lists of Vars, an
    associative operation), with a copy shifted by 1, 2, 4... (``identities`` where the
    shift runs off). Returns the list of scanned Vars."""
    first = values[0]
    dim = _dim(dim, first.ndim, op)
    step = 1
    while step < (first.shape[dim] if first.ndim else 1):
        exprs = [f"i{d}" if d != dim else f"i{d}-{step}" for d in range(first.ndim)]
        values = combine(values, [reindex(v, v.shape, exprs, overflow_value=identity)
                                  for v, identity in zip(values, identities)])
        step *= 2
    return values


def _running(x, dim, op, identity, name):
    """The running ``op`` (a binary meta-op) of ``x`` along ``dim``; bools count as int32."""
    x = x.int32() if x.dtype == "bool" else x
    return _scan([x], dim, lambda later, earlier: [binary(op, later[0], earlier[0])], [identity], name)[0]


def cumsum(x, dim, dtype=None):
    """Running sums along ``dim`` (bool counts as int32; ``dtype``: ``x`` converted to it first)."""
    return _running(x if dtype is None else cast(x, dtype), dim, "add", 0, "cumsum")


def cumprod(x, dim, dtype=None):
    """Running products along ``dim`` (bool counts as int32; ``dtype``: ``x`` converted to it first)."""
    return _running(x if dtype is None else cast(x, dtype), dim, "mul", 1, "cumprod")


RANKED_SORT_MAX = 2048  # longer rows sort with the bitonic network (measured: the n^2 count wins below)


def argsort(x, dim=-1, descending=False, stable=True):
    """Indices (int64) that sort ``x`` along ``dim``; stable (ties keep their order), nan last
    (first when ``descending``), as ``torch.sort(stable=True)``, whatever ``stable`` says.
    Rows of at most `RANKED_SORT_MAX` count each element's rank (the elements before it, a
    reduction the fusion never materialises) and place the indices at their ranks: one
    kernel, n^2 comparisons per row. Longer rows run `metajit.bitonic.sorting_order`."""
    dim = _dim(dim, x.ndim, "argsort")
    if x.ndim == 0:
        return array(0).int64()
    moved = x.transpose(dim, -1) if dim != x.ndim - 1 else x
    n = moved.shape[-1]
    if n > RANKED_SORT_MAX:
        order = sorting_order(moved, descending)
    else:
        mine, other = moved.unsqueeze(-1), moved.unsqueeze(-2)  # [..., i, 1] and [..., 1, j]
        positions = arange(n)
        earlier = binary("lt", positions.reshape(1, n), positions.reshape(n, 1))  # j < i
        before = ordered_before(other, mine, descending) | (same_key(other, mine) & earlier)
        rank = reduce_sum(before.int32(), -1)
        loops = ", ".join(f"i{d}" for d in range(moved.ndim))
        exprs = [f"i{d}" for d in range(moved.ndim - 1)] + [f"@e0({loops})"]
        index = positions.int64().broadcast_to(*moved.shape)
        order = reindex_reduce(index, "add", moved.shape, exprs, extras=[rank])
    return order.transpose(dim, -1) if dim != x.ndim - 1 else order


def sort(x, dim=-1, descending=False, stable=True):
    """The named tuple ``(values, indices)`` of ``x`` sorted along ``dim`` (see `argsort`, always
    stable: ``stable`` is PyTorch's); the values are a gather of ``x``, so gradients flow to the
    elements they came from."""
    dim = _dim(dim, x.ndim, "sort")
    indices = argsort(x, dim, descending)
    return ValuesIndices(gather(x, dim, indices) if x.ndim else x, indices)


def topk(x, k, dim=-1, largest=True, sorted=True):
    """The named tuple ``(values, indices)`` of the ``k`` largest (``largest=False``: smallest)
    along ``dim``."""
    dim = _dim(dim, x.ndim, "topk")
    if not 0 <= k <= (x.shape[dim] if x.ndim else 1):
        raise MetajitShapeError(f"topk: k={k} is out of range for dim {dim} of size {x.shape[dim]}")
    if k == 1 and largest and x.ndim:  # one pass: the first maximum (a nan first), as sorting would give
        indices, values = argmax(x, dim, keepdims=True)
        return ValuesIndices(values, indices.int64())
    values, indices = sort(x, dim, descending=largest)
    picked = (slice(None),) * dim + (slice(0, k),)
    return ValuesIndices(getitem(values, picked), getitem(indices, picked))


def kthvalue(x, k, dim=-1, keepdim=False):
    """The named tuple ``(values, indices)`` of the ``k``-th smallest (1-based) along ``dim``."""
    dim = _dim(dim, x.ndim, "kthvalue")
    if not 1 <= k <= x.shape[dim]:
        raise MetajitShapeError(f"kthvalue: k={k} is out of range for dim {dim} of size {x.shape[dim]}")
    values, indices = sort(x, dim)
    picked = (slice(None),) * dim + (slice(k - 1, k) if keepdim else k - 1,)
    return ValuesIndices(getitem(values, picked), getitem(indices, picked))


def einsum(equation, *operands):
    """Einstein summation (``"ij,jk->ik"``, ``"bii->bi"``, ``"i,i"``, implicit output in
    alphabetical order, ``...`` not supported): each operand's letters are mapped onto one
    shared index space (a repeated letter reads the diagonal), the operands are multiplied
    there and the letters not in the output are summed (a product the fusion recognises
    as a matrix product runs as one)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    equation = equation.replace(" ", "")
    if "..." in equation:
        raise MetajitShapeError("einsum: '...' (broadcast dims) is not supported; name every dim")
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(operands):
        raise MetajitShapeError(f"einsum: {len(terms)} operand terms in {equation!r}, {len(operands)} operands given")
    sizes = {}
    for term, operand in zip(terms, operands):
        if len(term) != operand.ndim:
            raise MetajitShapeError(f"einsum: term {term!r} has {len(term)} letters, operand has shape "
                                    f"{tuple(operand.shape)}")
        for letter, size in zip(term, operand.shape):
            if sizes.setdefault(letter, size) != size and size != 1 and sizes[letter] != 1:
                raise MetajitShapeError(f"einsum: letter {letter!r} has sizes {sizes[letter]} and {size}")
            sizes[letter] = max(sizes[letter], size)
    if not arrow:
        counts = {letter: inputs.count(letter) for letter in sizes}
        output = "".join(sorted(letter for letter, count in counts.items() if count == 1))
    letters = list(output) + sorted(set(sizes) - set(output))
    shape = tuple(sizes[letter] for letter in letters)
    product = None
    for term, operand in zip(terms, operands):
        exprs = [f"i{letters.index(letter)}" if operand.shape[k] != 1 else "0" for k, letter in enumerate(term)]
        spread = reindex(operand, shape, exprs)
        product = spread if product is None else binary("mul", product, spread)
    reduced = tuple(range(len(output), len(letters)))
    return reduce_sum(product, reduced) if reduced else product


def meshgrid(*vectors, indexing="ij"):
    """Coordinate grids of 1-d Vars (``indexing="ij"`` matrix, ``"xy"`` Cartesian)."""
    if len(vectors) == 1 and isinstance(vectors[0], (list, tuple)):
        vectors = tuple(vectors[0])
    if indexing not in ("ij", "xy"):
        raise MetajitShapeError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    sizes = [v.shape[0] for v in vectors]
    order = list(range(len(vectors)))
    if indexing == "xy" and len(vectors) >= 2:
        order[0], order[1] = 1, 0
    shape = tuple(sizes[k] for k in order)
    return [reindex(v, shape, [f"i{order.index(k)}"]) for k, v in enumerate(vectors)]


def searchsorted(sorted_sequence, values, right=False):
    """For each value, the insertion index into the ascending last dim of
    ``sorted_sequence`` keeping it sorted (``right``: after equal elements); int64."""
    sequence = sorted_sequence.unsqueeze(-2) if sorted_sequence.ndim == values.ndim else sorted_sequence
    before = binary("le" if right else "lt", sequence, values.unsqueeze(-1))
    return reduce_sum(before.int64(), -1)


def histc(x, bins=100, min=0, max=0):
    """Counts of ``x`` in ``bins`` equal bins over ``[min, max]`` (both 0: the data's range;
    the top edge belongs to the last bin; values outside are ignored), as ``torch.histc``."""
    low, high = float(min), float(max)
    if low == high == 0:
        low, high = float(x.min().item()), float(x.max().item())
    if low == high:
        low, high = low - 1, high + 1
    flat = x.reshape(-1).float32()
    position = ((flat - low) * (bins / (high - low))).floor().int32()
    position = where(binary("eq", flat, high), bins - 1, position)
    inside = (flat >= low) & (flat <= high)
    edges = arange(bins).reshape(bins, 1)
    return reduce_sum((binary("eq", position.reshape(1, -1), edges) & inside.reshape(1, -1)).float32(), 1)


def bincount(x, weights=None, minlength=0):
    """Counts (or summed ``weights``) of each value of the 1-d non-negative int ``x``; the
    length is ``max(x) + 1`` (at least ``minlength``), so this reads ``x``'s maximum."""
    if x.ndim != 1:
        raise MetajitShapeError(f"bincount expects a 1-d Var, got shape {tuple(x.shape)}")
    length = builtins.max(int(minlength), int(x.max().item()) + 1 if x.shape[0] else 0)
    if x.shape[0] and int(x.min().item()) < 0:
        raise MetajitShapeError("bincount: x must be non-negative")
    values = weights if weights is not None else array(1).int64().broadcast_to(*x.shape)
    return reindex_reduce(values, "add", (length,), ["@e0(i0)"], extras=[x])


def cross(x, y, dim=-1):
    """The cross product of 3-vectors along ``dim``."""
    dim = _dim(dim, x.ndim, "cross")
    if x.shape[dim] != 3 or y.shape[dim] != 3:
        raise MetajitShapeError(f"cross: dim {dim} must have size 3, got {tuple(x.shape)} and {tuple(y.shape)}")

    def shifted(v, by):
        return roll(v, -by, dim)
    return binary("sub", binary("mul", shifted(x, 1), shifted(y, 2)), binary("mul", shifted(x, 2), shifted(y, 1)))


def erfinv(y):
    """The inverse error function on ``(-1, 1)`` (±inf at ±1, nan outside): Giles' single
    precision approximation refined by two Newton steps on ``erf`` (full float32 accuracy)."""
    w = -((1 - y) * (1 + y)).log()
    central, tail = w - 2.5, binary("maximum", w, 5.0).sqrt() - 3.0  # the tail is used for w >= 5 only
    p_central, p_tail = 2.81022636e-08, -0.000200214257
    for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
              -0.00417768164, 0.246640727, 1.50140941):
        p_central = p_central * central + c
    for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
              0.00943887047, 1.00167406, 2.83297682):
        p_tail = p_tail * tail + c
    guess = where(binary("lt", w, 5.0), p_central, p_tail) * y
    for _ in range(2):  # Newton on erf(g) - y: erf'(g) = 2/sqrt(pi) exp(-g^2)
        guess = guess - (guess.erf() - y) / (1.1283791670955126 * (-guess * guess).exp())
    infinite = where(binary("gt", y, 0), float("inf"), float("-inf"))
    return where(binary("eq", y.abs(), 1), infinite, where(binary("gt", y.abs(), 1), float("nan"), guess))


def _source(src, index, x):
    if isinstance(src, Var):
        return getitem(src, tuple(slice(0, size) for size in index.shape)).cast(x.dtype)
    return array(src).cast(x.dtype).broadcast_to(*index.shape)


def scatter(x, dim, index, src, reduce=None):
    """``x`` with ``src`` (a Var, read over ``index``'s shape, or a scalar) written at
    ``index`` along ``dim``: ``out[i][index[i][j]] = src[i][j]`` for ``dim=1``
    (PyTorch's ``scatter``). ``reduce="add"`` / ``"multiply"`` combine instead; where
    plain writes collide, the largest value wins (PyTorch leaves the winner unspecified)."""
    dim, index, exprs = _along(x, dim, index, "scatter")
    values = _source(src, index, x)
    if reduce in ("add", "sum"):
        result = binary("add", x, reindex_reduce(values, "add", x.shape, exprs, extras=[index]))
    elif reduce in ("multiply", "prod"):
        result = binary("mul", x, reindex_reduce(values, "multiply", x.shape, exprs, extras=[index]))
    elif reduce is not None:
        raise MetajitShapeError(f"scatter: reduce must be None, 'add' or 'multiply', got {reduce!r}")
    else:
        hit = reindex_reduce(array(True).broadcast_to(*index.shape), "logical_or", x.shape, exprs, extras=[index])
        written = reindex_reduce(values, "maximum", x.shape, exprs, extras=[index])
        result = where(hit, written, x)
    return _checked(result, index, x.shape[dim], dim)


def scatter_add(x, dim, index, src):
    """``x`` plus ``src`` summed at ``index`` along ``dim`` (PyTorch's ``scatter_add``)."""
    return scatter(x, dim, index, src, reduce="add")


def masked_select(x, mask):
    """The elements of ``x`` where ``mask`` (broadcast) is true, as a 1-d Var (the count
    decides the shape: a sync point, as ``nonzero``)."""
    shape = tuple(max(a, b) for a, b in zip((1,) * (mask.ndim - x.ndim) + tuple(x.shape),
                                             (1,) * (x.ndim - mask.ndim) + tuple(mask.shape)))
    return getitem(x.broadcast_to(*shape), mask.bool().broadcast_to(*shape))


def unique(x, sorted=True, return_inverse=False, return_counts=False, dim=None):
    """The distinct values of ``x`` (flattened; ``dim``: distinct slices along it), sorted,
    with the inverse indices and counts on request, as ``torch.unique``. The number of
    distinct values decides the shape, so this realises ``x`` (a sync point)."""
    values, inverse, counts = np.unique(x.numpy(), return_inverse=True, return_counts=True, axis=dim)
    results = [array(values)]
    if return_inverse:
        results.append(array(inverse.reshape(x.shape if dim is None else (x.shape[dim],)).astype(np.int64)))
    if return_counts:
        results.append(array(counts.astype(np.int64)))
    return results[0] if len(results) == 1 else tuple(results)


def bmm(x, y):
    """Batched matrix product of (B, n, m) and (B, m, p) Vars (no broadcasting, as
    ``torch.bmm`` / ``jt.bmm``). Example: ``jt.bmm(a, b)``."""
    if x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0]:
        raise MetajitShapeError(f"bmm expects (B, n, m) and (B, m, p) Vars with the same B, got shapes "
                                f"{tuple(x.shape)} and {tuple(y.shape)}")
    return matmul(x, y)


def _scaled_sum(input, product, beta, alpha):
    """``beta * input + alpha * product``; ``beta = 0`` ignores ``input`` (nan included), as PyTorch."""
    scaled = product if alpha == 1 else binary("mul", product, alpha)
    if beta == 0:
        return scaled
    return binary("add", input if beta == 1 else binary("mul", input, beta), scaled)


def baddbmm(input, batch1, batch2, beta=1, alpha=1):
    """``beta * input + alpha * bmm(batch1, batch2)`` (``input`` broadcast), as ``torch.baddbmm``.
    Example: ``jt.baddbmm(bias, a, b, alpha=0.5)``."""
    return _scaled_sum(input, bmm(batch1, batch2), beta, alpha)


def addmm(input, mat1, mat2, beta=1, alpha=1):
    """``beta * input + alpha * (mat1 @ mat2)`` for 2-d ``mat1``, ``mat2`` (``input``
    broadcast), as ``torch.addmm``. Example: ``jt.addmm(bias, x, w)``."""
    if mat1.ndim != 2 or mat2.ndim != 2:
        raise MetajitShapeError(f"addmm expects 2-d matrices, got shapes {tuple(mat1.shape)} and {tuple(mat2.shape)}")
    return _scaled_sum(input, matmul(mat1, mat2), beta, alpha)


# ---- PyTorch's further tensor ops ----------------------------------------------------------

def _positions(shape, dim):
    """An int64 Var of ``shape`` whose elements are their own index along ``dim``."""
    return Var.from_node(graph.index_leaf(tuple(shape), dim, dtypes.int64))


def _cumulative_extreme(x, dim, later_wins, op):
    """``(values, indices)`` of the running extreme along ``dim``: a scan of (value, index)
    pairs where the later pair replaces the earlier when ``later_wins(later, earlier)``
    (the values then gathered at the indices, so the gradient reaches the chosen elements)."""
    if x.ndim == 0:
        values, indices = _cumulative_extreme(x.reshape(1), 0, later_wins, op)
        return ValuesIndices(values.reshape(()), indices.reshape(()))
    dim = _dim(dim, x.ndim, op)
    keys = x.int32() if x.dtype == "bool" else x
    if dtypes.is_float(keys.dtype):
        lowest, highest = float("-inf"), float("inf")
    else:
        lowest, highest = int(np.iinfo(keys.dtype.numpy).min), int(np.iinfo(keys.dtype.numpy).max)
    identity = lowest if op == "cummax" else highest

    def combine(later, earlier):
        wins = later_wins(later[0], earlier[0]) | later[0].isnan()
        return [where(wins, later[0], earlier[0]), where(wins, later[1], earlier[1])]
    _, indices = _scan([keys, _positions(x.shape, dim)], dim, combine, [identity, 0], op)
    return ValuesIndices(gather(x, dim, indices), indices)


def cummax(x, dim):
    """``(values, indices)`` of the running maximum along ``dim``, as ``torch.cummax``: a tie
    or a nan takes the later index, nan propagates. Example: ``values, indices = x.cummax(0)``."""
    return _cumulative_extreme(x, dim, lambda later, earlier: binary("ge", later, earlier), "cummax")


def cummin(x, dim):
    """``(values, indices)`` of the running minimum along ``dim`` (see `cummax`), as
    ``torch.cummin``. Example: ``x.cummin(1).values``."""
    return _cumulative_extreme(x, dim, lambda later, earlier: binary("le", later, earlier), "cummin")


def logcumsumexp(x, dim):
    """``log(cumsum(exp(x)))`` along ``dim`` without overflow (a scan of `logaddexp`), as
    ``torch.logcumsumexp``. Example: ``jt.logcumsumexp(scores, 1)``."""
    (result,) = _scan([x if dtypes.is_float(x.dtype) else x.float32()], dim,
                      lambda later, earlier: [logaddexp(later[0], earlier[0])], [float("-inf")], "logcumsumexp")
    return result


def diff(x, n=1, dim=-1, prepend=None, append=None):
    """The ``n``-th forward difference along ``dim`` (``out[i] = x[i + 1] - x[i]``; bools:
    ``!=``), ``prepend`` / ``append`` joined first (scalars broadcast), as ``torch.diff``.
    Example: ``jt.diff(jt.array([1, 4, 9]))`` is ``[3, 5]``."""
    dim = _dim(dim, x.ndim, "diff")
    extras = []
    for extra in (prepend, append):
        if extra is not None and not (isinstance(extra, Var) and extra.ndim):
            shape = list(x.shape)
            shape[dim] = 1
            extra = array(extra).cast(x.dtype).broadcast_to(*shape)
        extras.append(extra)
    x = concat([v for v in (extras[0], x, extras[1]) if v is not None], dim)
    for _ in range(n):
        size = x.shape[dim]
        later, earlier = narrow(x, dim, min(1, size), max(size - 1, 0)), narrow(x, dim, 0, max(size - 1, 0))
        x = binary("logical_xor" if x.dtype == "bool" else "sub", later, earlier)
    return x


def take(x, index):
    """The elements of the flattened ``x`` at the integer ``index`` (negative counts from
    the end), in ``index``'s shape (``torch.take``). Example: ``x.take(jt.array([0, -1]))``."""
    return getitem(x.reshape(-1), index if isinstance(index, Var) else array(index))


def take_along_dim(x, indices, dim=None):
    """``gather`` along ``dim`` with ``x`` and ``indices`` broadcast in the other dims (the
    flattened ``x`` when ``dim`` is None), as ``torch.take_along_dim``: what ``argsort`` /
    ``argmax(keepdim=True)`` indices pick. Example: ``x.take_along_dim(x.argsort(1), 1)``."""
    indices = indices if isinstance(indices, Var) else array(indices)
    if dim is None:
        return gather(x.reshape(-1), 0, indices.reshape(-1))
    dim = _dim(dim, x.ndim, "take_along_dim")
    if indices.ndim != x.ndim:
        raise MetajitShapeError(f"take_along_dim: indices of shape {tuple(indices.shape)} need x's {x.ndim} dims")
    shape = [builtins.max(a, b) for a, b in zip(x.shape, indices.shape)]
    return gather(x.broadcast_to(*shape[:dim], x.shape[dim], *shape[dim + 1:]), dim,
                  indices.broadcast_to(*shape[:dim], indices.shape[dim], *shape[dim + 1:]))


def _index_spread(x, dim, index, op):
    """``(dim, index)``: the 1-d ``index`` of an ``index_*`` op spread over the source's
    shape (``x``'s, with ``len(index)`` along ``dim``), the form `scatter` takes."""
    dim = _dim(dim, x.ndim, op)
    index = index if isinstance(index, Var) else array(index)
    if index.ndim > 1:
        raise MetajitShapeError(f"{op}: index must be 1-d, got shape {tuple(index.shape)}")
    index = index.reshape(-1)
    along = [1] * x.ndim
    along[dim] = index.shape[0]
    spread = list(x.shape)
    spread[dim] = index.shape[0]
    return dim, index.reshape(along).broadcast_to(*spread)


def index_add(x, dim, index, source, alpha=1):
    """``x`` with ``alpha * source[k]`` added to slice ``index[k]`` along ``dim`` (repeats add
    up), as ``torch.index_add``. Example: ``x.index_add(0, jt.array([0, 0]), rows)``."""
    dim, spread = _index_spread(x, dim, index, "index_add")
    return scatter(x, dim, spread, source if alpha == 1 else binary("mul", source, alpha), reduce="add")


def index_copy(x, dim, index, source):
    """``x`` with slice ``index[k]`` along ``dim`` replaced by ``source[k]``, as
    ``torch.index_copy`` (a repeated index keeps the largest value). Example: ``x.index_copy(1, idx, cols)``."""
    dim, spread = _index_spread(x, dim, index, "index_copy")
    return scatter(x, dim, spread, source)


def index_fill(x, dim, index, value):
    """``x`` with the slices ``index`` along ``dim`` set to ``value`` (a number or 0-d Var),
    as ``torch.index_fill``. Example: ``x.index_fill(1, jt.array([0, 2]), -1.0)``."""
    dim, spread = _index_spread(x, dim, index, "index_fill")
    return scatter(x, dim, spread, value.broadcast_to(*spread.shape) if isinstance(value, Var) else value)


def masked_scatter(x, mask, source):
    """``x`` with the positions where ``mask`` (broadcast to ``x``) is true filled, in order,
    from the elements of ``source``, as ``torch.masked_scatter``. Example: ``x.masked_scatter(x < 0, values)``."""
    mask = (mask if isinstance(mask, Var) else array(mask)).bool().broadcast_to(*x.shape)
    if source.numel() == 0:  # nothing to place (a true in the mask would read past the source)
        return x
    flat = mask.reshape(-1)
    order = where(flat, cumsum(flat, 0) - 1, 0)  # the rank of each true position
    return where(mask, getitem(source.reshape(-1), order).reshape(x.shape).cast(x.dtype), x)


_SCATTER_REDUCTIONS = {"sum": "add", "prod": "multiply", "mean": "add", "amax": "maximum", "amin": "minimum"}


def scatter_reduce(x, dim, index, src, reduce, include_self=True):
    """``x`` with ``src`` reduced into the positions ``index`` names along ``dim`` (as
    `scatter`), by ``reduce`` = ``"sum"``, ``"prod"``, ``"mean"``, ``"amax"`` or ``"amin"``;
    ``include_self=False`` leaves ``x``'s own value out where anything lands. As
    ``torch.scatter_reduce``: an integer mean rounds down, and the gradient of amax / amin
    is split evenly between the tied values. Example: ``x.scatter_reduce(0, idx, src, "amax")``."""
    if reduce not in _SCATTER_REDUCTIONS:
        raise MetajitShapeError(f"scatter_reduce: reduce must be one of {', '.join(_SCATTER_REDUCTIONS)}, "
                                f"got {reduce!r}")
    dim, index, exprs = _along(x, dim, index, "scatter_reduce")
    values = _source(src, index, x)

    def scattered(v, op):
        return reindex_reduce(v, op, x.shape, exprs, extras=[index])
    hit = scattered(array(True).broadcast_to(*index.shape), "logical_or")
    op = _SCATTER_REDUCTIONS[reduce]
    if reduce in ("amax", "amin"):
        result = scattered(values, op)
        result = binary(op, x, result) if include_self else result
        if dtypes.is_float(x.dtype):
            result = _tie_split(x, values, result, include_self, scattered, exprs, index)
    else:
        result = scattered(values, op)
        if include_self:
            result = binary("mul" if reduce == "prod" else "add", x, result)
        if reduce == "mean":
            count = scattered(array(1).cast(x.dtype).broadcast_to(*index.shape), "add") + int(include_self)
            count = where(count == 0, 1, count)
            result = binary("div" if dtypes.is_float(x.dtype) else "floor_div", result, count)
    return _checked(where(hit, result, x).cast(x.dtype), index, x.shape[dim], dim)


def _tie_split(x, values, extreme, include_self, scattered, exprs, index):
    """The scattered extreme ``extreme``, its gradient split evenly between every value tied
    at it (the scattered ones and, when included, ``x``'s own), as PyTorch's."""
    extreme = extreme.detach()
    src_ties = binary("eq", values, reindex(extreme, index.shape, exprs, extras=[index]))
    count = scattered(src_ties.cast(x.dtype), "add")
    total = scattered(where(src_ties, values, 0.0), "add")
    if include_self:
        self_ties = binary("eq", x, extreme)
        count, total = count + self_ties.cast(x.dtype), total + where(self_ties, x, 0.0)
    return with_gradient(extreme, total / where(count == 0, 1.0, count))


def repeat_interleave(x, repeats=None, dim=None, output_size=None):
    """Each element (slice along ``dim``; of the flattened ``x`` when None) repeated
    ``repeats`` times, an int or one count per element, as ``torch.repeat_interleave``.
    Counts as a Var are read (their sum sizes the result); ``jt.repeat_interleave(counts)``
    repeats ``arange(len(counts))``. Example: ``jt.array([1, 2]).repeat_interleave(2)`` is ``[1, 1, 2, 2]``."""
    if repeats is None:
        x, repeats = arange(x.shape[0]).int64(), x
    if dim is None:
        x, dim = x.reshape(-1), 0
    dim = _dim(dim, x.ndim, "repeat_interleave")
    counts = np.asarray(repeats.numpy() if isinstance(repeats, Var) else repeats, dtype=np.int64).reshape(-1)
    if counts.size == 1:
        counts = np.repeat(counts, x.shape[dim])
    if counts.size != x.shape[dim] or (counts < 0).any():
        raise MetajitShapeError(f"repeat_interleave: {counts.size} repeats for dimension {dim} of size "
                                f"{x.shape[dim]}; give one non-negative count per element, or one int")
    return index_select(x, dim, array(np.repeat(np.arange(x.shape[dim]), counts)))


def diag_embed(x, offset=0, dim1=-2, dim2=-1):
    """Matrices with the last dim of ``x`` on their diagonal ``offset``, placed in the
    output's dims ``dim1`` and ``dim2`` (``torch.diag_embed``).
    Example: ``jt.diag_embed(jt.ones(2, 3))`` is two 3 x 3 identities."""
    ndim = x.ndim + 1
    first, second = _dim(dim1, ndim, "diag_embed"), _dim(dim2, ndim, "diag_embed")
    if first == second:
        raise MetajitShapeError(f"diag_embed: dim1 and dim2 must differ, got {dim1} and {dim2}")
    size = x.shape[-1] + abs(int(offset))
    batch = iter(range(x.ndim - 1))
    shape, exprs = [], [None] * (x.ndim - 1)
    for axis in range(ndim):
        if axis in (first, second):
            shape.append(size)
        else:
            source = next(batch)
            shape.append(x.shape[source])
            exprs[source] = f"i{axis}"
    exprs.append(f"i{first}" if offset >= 0 else f"i{second}")
    return reindex(x, shape, exprs, overflow_conditions=[f"i{second}-i{first}!={int(offset)}"])


def diagflat(x, offset=0):
    """A square matrix with the flattened ``x`` on diagonal ``offset`` (``torch.diagflat``).
    Example: ``jt.diagflat(jt.ones(2, 2))`` is the 4 x 4 identity."""
    return diag(x.reshape(-1), offset)


def argwhere(x):
    """The indices of the nonzero elements, an int64 Var of shape (count, ndim), as
    ``torch.argwhere`` (a sync point, as `metajit.nonzero`). Example: ``jt.argwhere(x > 0)``."""
    return nonzero(x).int64().reshape(-1, x.ndim)


def unique_consecutive(x, return_inverse=False, return_counts=False, dim=None):
    """``x`` with each run of equal consecutive elements (slices along ``dim``; of the
    flattened ``x`` when None) kept once, with the inverse indices and run lengths on
    request, as ``torch.unique_consecutive`` (a sync point, as `unique`).
    Example: ``jt.array([1, 1, 2, 1]).unique_consecutive()`` is ``[1, 2, 1]``."""
    values = x.numpy()
    axis = 0 if dim is None else _dim(dim, x.ndim, "unique_consecutive")
    runs = values.reshape(-1) if dim is None else np.moveaxis(values, axis, 0)
    different = runs[1:] != runs[:-1]
    changed = different.reshape(len(different), -1).any(axis=1) if different.size else np.zeros(len(different), bool)
    starts_run = np.concatenate([[True], changed]) if len(runs) else np.zeros(0, bool)
    starts = np.flatnonzero(starts_run)
    results = [array(np.moveaxis(runs[starts], 0, axis))]
    if return_inverse:
        inverse = np.cumsum(starts_run) - 1
        results.append(array(inverse.reshape(x.shape if dim is None else (len(runs),)).astype(np.int64)))
    if return_counts:
        results.append(array(np.diff(np.append(starts, len(runs))).astype(np.int64)))
    return results[0] if len(results) == 1 else tuple(results)


# ---- products --------------------------------------------------------------------------------

def _require_ndim(op, *pairs):
    for value, ndim in pairs:
        if value.ndim != ndim:
            raise MetajitShapeError(f"{op} expects {' and '.join(f'{n}-d' for _, n in pairs)} Vars, got shapes "
                                    f"{' and '.join(str(tuple(v.shape)) for v, _ in pairs)}")


def mm(x, y):
    """The product of two matrices (``torch.mm``, no broadcasting). Example: ``a.mm(b)``."""
    _require_ndim("mm", (x, 2), (y, 2))
    return matmul(x, y)


def mv(matrix, vector):
    """The product of a matrix and a vector (``torch.mv``). Example: ``a.mv(v)``."""
    _require_ndim("mv", (matrix, 2), (vector, 1))
    return matmul(matrix, vector)


def dot(x, y):
    """The inner product of two 1-d Vars of equal length (``torch.dot`` / ``vdot``: no complex
    numbers to conjugate). Example: ``jt.dot(a, b)``."""
    _require_ndim("dot", (x, 1), (y, 1))
    if x.shape != y.shape:
        raise MetajitShapeError(f"dot: lengths {x.shape[0]} and {y.shape[0]} differ")
    return reduce_sum(binary("mul", x, y))


def inner(x, y):
    """The sums of products over the last dims, shape ``x.shape[:-1] + y.shape[:-1]``
    (``torch.inner``; a 0-d operand multiplies). Example: ``jt.inner(a, b)``."""
    if x.ndim == 0 or y.ndim == 0:
        return binary("mul", x, y)
    if x.shape[-1] != y.shape[-1]:
        raise MetajitShapeError(f"inner: last dims {x.shape[-1]} and {y.shape[-1]} differ")
    product = matmul(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]).transpose())
    return product.reshape(*x.shape[:-1], *y.shape[:-1])


def kron(x, y):
    """The Kronecker product: block ``(i, j, ...)`` of the result is ``x[i, j, ...] * y``
    (``torch.kron``). Example: ``jt.kron(jt.eye(2), block)``."""
    ndim = builtins.max(x.ndim, y.ndim)
    x_shape = (1,) * (ndim - x.ndim) + tuple(x.shape)
    y_shape = (1,) * (ndim - y.ndim) + tuple(y.shape)
    spread_x = x.reshape([s for size in x_shape for s in (size, 1)])
    spread_y = y.reshape([s for size in y_shape for s in (1, size)])
    return binary("mul", spread_x, spread_y).reshape([a * b for a, b in zip(x_shape, y_shape)])


def addmv(input, matrix, vector, beta=1, alpha=1):
    """``beta * input + alpha * (matrix @ vector)``, as ``torch.addmv``. Example: ``jt.addmv(b, a, v)``."""
    return _scaled_sum(input, mv(matrix, vector), beta, alpha)


def addr(input, vec1, vec2, beta=1, alpha=1):
    """``beta * input + alpha * outer(vec1, vec2)``, as ``torch.addr``. Example: ``jt.addr(m, u, v)``."""
    return _scaled_sum(input, outer(vec1, vec2), beta, alpha)
