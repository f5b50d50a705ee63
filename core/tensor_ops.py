"""Tensor ops Jittor and PyTorch users reach for, as meta-op compositions (so gradients
of any order come from the meta-ops): ``masked_fill``, ``index_select``, ``gather``,
``tril``/``triu``, ``diag``, ``trace``, ``outer``, ``roll``, ``cumsum``/``cumprod``
(log-step scans), ``sort``/``argsort``/``topk``/``kthvalue`` (ranks by comparison counts),
``einsum``, ``meshgrid``, ``searchsorted``, ``histc``, ``bincount``, ``cross``, ``erfinv``,
``bmm``/``baddbmm``/``addmm``,
``scatter``/``scatter_add``, ``masked_select``, ``unique``.

Each follows PyTorch's documented behaviour (Jittor's where it has the op). Example::

    y = x.masked_fill(x < 0, 0.0)
    picked = x.gather(1, index)          # out[i][j] = x[i][index[i][j]]
"""
import builtins

import numpy as np

from .creation import arange, array
from .errors import MetajitShapeError
from .indexing import _check_device_indices, check_index_values, getitem
from .math_ops import binary, matmul, where
from .reductions import sum as reduce_sum
from .shape_ops import reindex, reindex_reduce
from .var import Var


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


def _scan(x, dim, op, identity):
    """Inclusive scan of ``x`` along ``dim`` with ``op`` in ceil(log2(n)) steps, each
    combining with a copy shifted by 1, 2, 4... (``identity`` where the shift runs off)."""
    dim = _dim(dim, x.ndim, "cumsum")
    step, result = 1, x
    while step < (x.shape[dim] if x.ndim else 1):
        exprs = [f"i{d}" if d != dim else f"i{d}-{step}" for d in range(x.ndim)]
        result = binary(op, result, reindex(result, x.shape, exprs, overflow_value=identity))
        step *= 2
    return result


def cumsum(x, dim):
    """Running sums along ``dim`` (bool counts as int32)."""
    return _scan(x.int32() if x.dtype == "bool" else x, dim, "add", 0)


def cumprod(x, dim):
    """Running products along ``dim`` (bool counts as int32)."""
    return _scan(x.int32() if x.dtype == "bool" else x, dim, "mul", 1)


def _ordered_before(a, b, descending):
    """Whether value ``a`` sorts strictly before ``b`` (nan last ascending, first descending)."""
    nan_a, nan_b = a.isnan(), b.isnan()
    if descending:
        return binary("gt", a, b) | (nan_a & ~nan_b)
    return binary("lt", a, b) | (nan_b & ~nan_a)


def argsort(x, dim=-1, descending=False):
    """Indices (int64) that sort ``x`` along ``dim``; stable (ties keep their order), nan last
    (first when ``descending``), as ``torch.sort(stable=True)``. Each element's rank counts
    the elements before it, a reduction the fusion never materialises; the indices are then
    placed at their ranks. O(n^2) work per row, all on the device."""
    dim = _dim(dim, x.ndim, "argsort")
    if x.ndim == 0:
        return array(0).int64()
    moved = x.transpose(dim, -1) if dim != x.ndim - 1 else x
    n = moved.shape[-1]
    mine, other = moved.unsqueeze(-1), moved.unsqueeze(-2)  # [..., i, 1] and [..., 1, j]
    positions = arange(n)
    earlier = binary("lt", positions.reshape(1, n), positions.reshape(n, 1))  # j < i
    equal = binary("eq", other, mine) | (other.isnan() & mine.isnan())
    before = _ordered_before(other, mine, descending) | (equal & earlier)
    rank = reduce_sum(before.int32(), -1)
    loops = ", ".join(f"i{d}" for d in range(moved.ndim))
    exprs = [f"i{d}" for d in range(moved.ndim - 1)] + [f"@e0({loops})"]
    index = positions.int64().broadcast_to(*moved.shape)
    order = reindex_reduce(index, "add", moved.shape, exprs, extras=[rank])
    return order.transpose(dim, -1) if dim != x.ndim - 1 else order


def sort(x, dim=-1, descending=False):
    """``(values, indices)`` of ``x`` sorted along ``dim`` (see `argsort`); the values are a
    gather of ``x``, so gradients flow to the elements they came from."""
    dim = _dim(dim, x.ndim, "sort")
    indices = argsort(x, dim, descending)
    return (gather(x, dim, indices) if x.ndim else x), indices


def topk(x, k, dim=-1, largest=True, sorted=True):
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) along ``dim``."""
    dim = _dim(dim, x.ndim, "topk")
    if not 0 <= k <= (x.shape[dim] if x.ndim else 1):
        raise MetajitShapeError(f"topk: k={k} is out of range for dim {dim} of size {x.shape[dim]}")
    values, indices = sort(x, dim, descending=largest)
    picked = (slice(None),) * dim + (slice(0, k),)
    return getitem(values, picked), getitem(indices, picked)


def kthvalue(x, k, dim=-1, keepdim=False):
    """``(values, indices)`` of the ``k``-th smallest (1-based) along ``dim``."""
    dim = _dim(dim, x.ndim, "kthvalue")
    if not 1 <= k <= x.shape[dim]:
        raise MetajitShapeError(f"kthvalue: k={k} is out of range for dim {dim} of size {x.shape[dim]}")
    values, indices = sort(x, dim)
    picked = (slice(None),) * dim + (slice(k - 1, k) if keepdim else k - 1,)
    return getitem(values, picked), getitem(indices, picked)


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
