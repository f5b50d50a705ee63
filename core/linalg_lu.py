"""Elimination with partial pivoting for ``jt.linalg``: LU factorisation (`lu_factor`,
`lu`, `lu_solve`, `det`, `slogdet`), triangular substitution (`solve_triangular`) and
Gauss-Jordan elimination (`solve`, `inv`); also the matrix helpers the rest of
``jt.linalg`` shares.

Every step is a fixed composition of meta-ops: the pivot row is found with an argmax and
swapped in with one-hot arithmetic, so the graph's shape never depends on the data and
gradients of any order come from the meta-ops. A zero pivot (its column is then zero on
and below the diagonal) is divided by 1, as LAPACK leaves such a column unscaled, so a
singular matrix factorises into finite factors with a zero on ``U``'s diagonal; the
solvers then give inf/nan instead of raising (checking would be a sync point).

Example::

    lu, pivots = jt.linalg.lu_factor(a)            # LAPACK's packed form, 1-based int32 pivots
    x = jt.linalg.lu_solve(lu, pivots, b)          # a @ x == b, b of shape (..., n, k)
    p, l, u = jt.linalg.lu(a)                      # a == p @ l @ u
"""
import collections

from .creation import eye, ones, zeros
from .errors import MetajitShapeError
from .ir import dtypes
from .ir.graph import index_leaf
from .math_ops import as_node, binary, broadcast_shapes, cast, matmul, unary, where, wrap
from .math_ops import sign as sign_of
from .reductions import argmax, prod, sum as reduce_sum
from .shape_ops import broadcast_to, concat, permute, stack
from .tensor_ops import tril, triu
from .var import Var

LUFactor = collections.namedtuple("LUFactor", ["LU", "pivots"])
PLU = collections.namedtuple("PLU", ["P", "L", "U"])
Slogdet = collections.namedtuple("Slogdet", ["sign", "logabsdet"])


# ---- helpers shared by jt.linalg ---------------------------------------------------------

def as_var(x):
    """``x`` as a Var (numpy arrays, lists and scalars are wrapped)."""
    return x if isinstance(x, Var) else wrap(as_node(x))


def as_matrix(x, op, square=False):
    """``x`` as a float Var of at least 2 dims (square when asked)."""
    x = as_var(x)
    if x.ndim < 2:
        raise MetajitShapeError(f"linalg.{op} expects a matrix or a batch of matrices (..., m, n), "
                                f"got shape {tuple(x.shape)}")
    if square and x.shape[-1] != x.shape[-2]:
        raise MetajitShapeError(f"linalg.{op} expects square matrices, got shape {tuple(x.shape)}")
    return x if dtypes.is_float(x.dtype) else cast(x, dtypes.DEFAULT_FLOAT)


def positions(n):
    """The int32 Var ``[0, 1, ..., n - 1]``."""
    return wrap(index_leaf((n,), 0))


def swap_last(x):
    """The transpose of the last two dims (``x.mT``)."""
    order = list(range(x.ndim))
    order[-2], order[-1] = order[-1], order[-2]
    return permute(x, order)


def nonzero_divisor(value):
    """``value`` with zeros replaced by 1 (a divisor safe to differentiate)."""
    return where(binary("eq", value, 0.0), 1.0, value)


def batched_pair(a, b, op):
    """``a`` and ``b`` broadcast over their batch dims (the last two dims kept)."""
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2], op=f"linalg.{op}")
    return (broadcast_to(a, batch + tuple(a.shape[-2:])), broadcast_to(b, batch + tuple(b.shape[-2:])))


# ---- pivoting ----------------------------------------------------------------------------

def _swap_rows(values, k, chosen):
    """``values`` (..., m, n) with row ``k`` and the row marked by the one-hot ``chosen``
    (..., m) exchanged (nothing moves when ``chosen`` marks row ``k``)."""
    chosen_row = reduce_sum(binary("mul", chosen.unsqueeze(-1), values), -2)
    at_k = cast(binary("eq", positions(values.shape[-2]), k), values.dtype)
    swap = binary("sub", at_k, chosen)  # +1 at row k, -1 at the chosen row
    return binary("add", values, binary("mul", swap.unsqueeze(-1),
                                        binary("sub", chosen_row, values[..., k, :]).unsqueeze(-2)))


def _outer(column, row):
    """The outer product (..., m, n) of ``column`` (..., m) and ``row`` (..., n), as a matrix
    product: a reduction, so each elimination step is stored instead of every later step
    recomputing the whole chain of updates before it for each element it reads."""
    return matmul(column.unsqueeze(-1), row.unsqueeze(-2))


def _choose_pivot(values, k):
    """The one-hot (..., m) of the row on or below ``k`` with the largest |entry| in
    column ``k`` (the first of ties, as LAPACK), and its index (..., 1)."""
    rows = positions(values.shape[-2])
    candidates = where(binary("ge", rows, k), unary("abs", values[..., :, k]), -1.0)
    chosen_index, _ = argmax(candidates, -1, keepdims=True)
    return cast(binary("eq", rows, chosen_index), values.dtype), chosen_index


def _gauss_jordan(matrix, rhs):
    """``[matrix | rhs]`` reduced to ``[I | matrix^-1 rhs]`` by Gauss-Jordan elimination with
    partial pivoting (``matrix`` square); returns the right-hand part."""
    n = matrix.shape[-1]
    reduced = concat([matrix, rhs], -1)
    rows = positions(n)
    for k in range(n):
        if k < n - 1:
            chosen, _ = _choose_pivot(reduced, k)
            reduced = _swap_rows(reduced, k, chosen)
        pivot_row = binary("div", reduced[..., k, :], reduced[..., k, k].unsqueeze(-1))
        factors = binary("sub", reduced[..., :, k], cast(binary("eq", rows, k), matrix.dtype))
        reduced = binary("sub", reduced, _outer(factors, pivot_row))
    return reduced[..., n:]


def _factorise(matrix, pivot=True):
    """LU factorisation with partial pivoting of ``matrix`` (..., m, n): LAPACK's packed
    ``LU`` (unit lower factor below the diagonal, ``U`` on and above), the 1-based int32
    pivots (..., min(m, n)), the permutation's sign (...) and ``order`` (..., m), the
    original row index of each row of ``L @ U`` (float)."""
    m, n = matrix.shape[-2:]
    dtype = matrix.dtype
    batch = tuple(matrix.shape[:-2])
    rows, columns = positions(m), positions(n)
    row_grid, column_grid = wrap(index_leaf((m, n), 0)), wrap(index_leaf((m, n), 1))
    packed = matrix
    order = broadcast_to(cast(rows, dtype), batch + (m,)).unsqueeze(-1)
    pivots, stayed = [], []
    for k in range(min(m, n)):
        if pivot and k < m - 1:
            chosen, chosen_index = _choose_pivot(packed, k)
            packed, order = _swap_rows(packed, k, chosen), _swap_rows(order, k, chosen)
            pivots.append(binary("add", cast(chosen_index, "int32"), 1))
            stayed.append(chosen[..., k])
        else:
            pivots.append(broadcast_to(wrap(as_node(k + 1, dtypes.int32)), batch + (1,)))
        divisor = nonzero_divisor(packed[..., k, k]).unsqueeze(-1)
        factors = where(binary("gt", rows, k), binary("div", packed[..., :, k], divisor), 0.0)
        pivot_row = where(binary("gt", columns, k), packed[..., k, :], 0.0)
        packed = binary("sub", packed, _outer(factors, pivot_row))
        multipliers_column = binary("logical_and", binary("gt", row_grid, k), binary("eq", column_grid, k))
        packed = where(multipliers_column, factors.unsqueeze(-1), packed)
    if stayed:  # each swap flips the sign
        sign = prod(binary("sub", binary("mul", stack(stayed, -1), 2.0), 1.0), -1)
    else:
        sign = ones(*batch, dtype=dtype)
    pivots = concat(pivots, -1) if pivots else zeros(*batch, 0, dtype="int32")
    return packed, pivots, sign, order[..., 0]


def lu_factor(A, pivot=True):
    """The LU factorisation of ``A`` (..., m, n) with partial pivoting in LAPACK's packed
    form, as ``torch.linalg.lu_factor``: the named tuple ``(LU, pivots)``, ``LU`` holding the
    unit lower factor below the diagonal and ``U`` on and above it, ``pivots`` (int32,
    1-based) the row swapped with row ``i`` at step ``i``. ``pivot=False`` factorises
    without row exchanges (pivots ``1..k``). A singular matrix is not reported (a zero on
    ``U``'s diagonal), as ``lu_factor_ex``.

    Example: ``lu, pivots = jt.linalg.lu_factor(a)``."""
    packed, pivots, _, _ = _factorise(as_matrix(A, "lu_factor"), pivot)
    return LUFactor(packed, pivots)


def lu(A, pivot=True):
    """``(P, L, U)`` with ``A = P @ L @ U``: ``P`` a permutation matrix (..., m, m), ``L``
    unit lower triangular (..., m, k) and ``U`` upper triangular (..., k, n), k = min(m, n),
    as ``torch.linalg.lu``; ``pivot=False`` gives an empty ``P``.

    Example: ``p, l, u = jt.linalg.lu(a)``."""
    A = as_matrix(A, "lu")
    m, n = A.shape[-2:]
    k = min(m, n)
    packed, _, _, order = _factorise(A, pivot)
    lower = binary("add", tril(packed[..., :, :k], -1), eye(m, k, dtype=A.dtype))
    upper = triu(packed[..., :k, :])
    if not pivot:
        return PLU(zeros(0, dtype=A.dtype), lower, upper)
    # row i of L @ U is row order[i] of A, so P[order[i], i] = 1
    permutation = cast(binary("eq", order.unsqueeze(-2), cast(positions(m), A.dtype).unsqueeze(-1)), A.dtype)
    return PLU(permutation, lower, upper)


def _substitute(matrix, rhs, lower, unit_diagonal):
    """``X`` with ``T @ X = rhs`` for the lower or upper triangle ``T`` of ``matrix``
    (..., n, n) (its diagonal taken as ones when ``unit_diagonal``), by substitution one
    row at a time; ``rhs`` (..., n, k)."""
    n = matrix.shape[-1]
    rows = positions(n)
    for j in (range(n) if lower else range(n - 1, -1, -1)):
        solved = rhs[..., j:j + 1, :]
        if not unit_diagonal:
            solved = binary("div", solved, matrix[..., j:j + 1, j:j + 1])
            rhs = where(binary("eq", rows, j).unsqueeze(-1), solved, rhs)
        remaining = binary("gt", rows, j) if lower else binary("lt", rows, j)
        column = where(remaining, matrix[..., :, j], 0.0)
        rhs = binary("sub", rhs, matmul(column.unsqueeze(-1), solved))
    return rhs


def _rhs_matrix(B, A, op):
    """``B`` as a float matrix of ``A``'s dtype, batch dims broadcast with ``A``'s."""
    B = as_var(B)
    if B.ndim < 2:
        raise MetajitShapeError(f"linalg.{op} expects B of shape (..., n, k), got shape {tuple(B.shape)}")
    return batched_pair(A, cast(B, A.dtype), op)


def solve_triangular(A, B, *, upper, left=True, unitriangular=False):
    """``X`` with ``A @ X = B`` (``left=False``: ``X @ A = B``) for triangular ``A``
    (..., n, n) (only its ``upper`` or lower triangle is read; ``unitriangular`` takes the
    diagonal as ones) and ``B`` (..., n, k), as ``torch.linalg.solve_triangular``.

    Example: ``jt.linalg.solve_triangular(jt.array([[2.0, 1], [0, 4]]), b, upper=True)``."""
    A = as_matrix(A, "solve_triangular", square=True)
    if not left:  # X A = B  <=>  A^T X^T = B^T
        return swap_last(solve_triangular(swap_last(A), swap_last(as_var(B)), upper=not upper,
                                          unitriangular=unitriangular))
    A, B = _rhs_matrix(B, A, "solve_triangular")
    if B.shape[-2] != A.shape[-1]:
        raise MetajitShapeError(f"linalg.solve_triangular: A of shape {tuple(A.shape)} and B of shape "
                                f"{tuple(B.shape)} do not match")
    return _substitute(A, B, not upper, unitriangular)


def lu_solve(LU, pivots, B, left=True, adjoint=False):
    """``X`` with ``A @ X = B`` from `lu_factor`'s ``(LU, pivots)`` of a square ``A``, as
    ``torch.linalg.lu_solve``: ``adjoint=True`` solves ``A^T X = B``, ``left=False``
    ``X A = B``; ``B`` is (..., n, k), batch dims broadcast. Differentiable in ``LU`` and ``B``.

    Example: ``x = jt.linalg.lu_solve(*jt.linalg.lu_factor(a), b)``."""
    LU = as_matrix(LU, "lu_solve", square=True)
    pivots = as_var(pivots)
    n = LU.shape[-1]
    if not dtypes.is_integer(pivots.dtype) or tuple(pivots.shape[-1:]) != (n,):
        raise MetajitShapeError(f"linalg.lu_solve expects integer pivots (..., {n}) from lu_factor, got "
                                f"{pivots.dtype} of shape {tuple(pivots.shape)}")
    if not left:  # X A = B  <=>  A^T X^T = B^T
        return swap_last(lu_solve(LU, pivots, swap_last(as_var(B)), adjoint=not adjoint))
    LU, rhs = _rhs_matrix(B, LU, "lu_solve")
    if rhs.shape[-2] != n:
        raise MetajitShapeError(f"linalg.lu_solve: LU of shape {tuple(LU.shape)} and B of shape "
                                f"{tuple(rhs.shape)} do not match ({n} unknowns, {rhs.shape[-2]} rows in B)")
    rows = positions(n)
    swaps = [cast(binary("eq", rows, binary("sub", pivots[..., k:k + 1], 1)), LU.dtype) for k in range(n)]
    if adjoint:  # A^T = U^T L^T P^T: substitute with U^T, then L^T, then undo the swaps backwards
        transposed = swap_last(LU)
        rhs = _substitute(transposed, _substitute(transposed, rhs, True, False), False, True)
        for k in range(n - 1, -1, -1):
            rhs = _swap_rows(rhs, k, swaps[k])
        return rhs
    for k in range(n):  # P^T B: the swaps in order, as LAPACK's laswp
        rhs = _swap_rows(rhs, k, swaps[k])
    return _substitute(LU, _substitute(LU, rhs, True, True), False, False)


def solve(a, b, left=True):
    """The solution ``x`` of ``a @ x = b`` (``left=False``: ``x @ a = b``), by Gauss-Jordan
    elimination with partial pivoting; ``b`` is ``(..., n, k)`` or a vector ``(..., n)``
    (PyTorch's rule), batch dims broadcast.

    Example: ``jt.linalg.solve(jt.array([[2.0, 0], [0, 4]]), jt.array([2.0, 2]))`` is ``[1, 0.5]``.
    """
    a = as_matrix(a, "solve", square=True)
    b = as_var(b)
    if not left:
        return swap_last(solve(swap_last(a), swap_last(b)))
    vector = b.ndim == 1 or (b.ndim == a.ndim - 1 and tuple(b.shape) == tuple(a.shape[:-1]))
    rhs = b.unsqueeze(-1) if vector else b
    if rhs.shape[-2] != a.shape[-1]:
        raise MetajitShapeError(f"linalg.solve: a of shape {tuple(a.shape)} and b of shape {tuple(b.shape)} "
                                f"do not match ({a.shape[-1]} unknowns, {rhs.shape[-2]} equations in b)")
    solution = _gauss_jordan(*batched_pair(a, cast(rhs, a.dtype), "solve"))
    return solution[..., 0] if vector else solution


def inv(x):
    """The inverse of square matrices (Gauss-Jordan on ``[x | I]``); a singular matrix
    gives inf/nan. Example: ``jt.linalg.inv(jt.array([[2.0, 0], [0, 4]]))``."""
    x = as_matrix(x, "inv", square=True)
    return _gauss_jordan(x, broadcast_to(eye(x.shape[-1], dtype=x.dtype), x.shape))


def _main_diagonal(x):
    """The diagonal (..., n) of square matrices (..., n, n)."""
    batch = x.ndim - 2
    return x.reindex(tuple(x.shape[:-1]), [f"i{d}" for d in range(batch)] + [f"i{batch}", f"i{batch}"])


def det(x):
    """The determinant of square matrices: ``U``'s diagonal of the LU factorisation times
    the permutation's sign; 0 for a singular matrix, whose gradient is still the adjugate
    (PyTorch's as soon as gradients are tracked through it, see docs/jittor.md).
    Example: ``jt.linalg.det(jt.eye(3))`` is 1."""
    packed, _, sign, _ = _factorise(as_matrix(x, "det", square=True))
    return binary("mul", sign, prod(_main_diagonal(packed), -1))


def slogdet(x):
    """``(sign, logabsdet)`` of the determinant, without overflow for large matrices
    (sign 0 and logabsdet -inf when singular), as a named tuple.

    Example: ``sign, logabsdet = jt.linalg.slogdet(a)``."""
    packed, _, sign, _ = _factorise(as_matrix(x, "slogdet", square=True))
    diagonal = _main_diagonal(packed)
    signs = binary("mul", sign, prod(sign_of(diagonal), -1))
    return Slogdet(signs, reduce_sum(unary("log", unary("abs", diagonal)), -1))
