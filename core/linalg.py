"""``jt.linalg``: linear algebra on (batches of) small matrices, built from meta-ops.

Every function is a composition of element-wise ops, reductions, broadcasts and
reindexes over a number of steps fixed by the matrix size, so gradients of any order
come from the meta-ops (no host round trip, no opaque kernel):

* `solve`, `inv` (Gauss-Jordan), `lu_factor`, `lu`, `lu_solve`, `det`, `slogdet` (LU) and
  `solve_triangular`: elimination with partial pivoting, one step per column, the pivot
  row found with an argmax and swapped in with one-hot arithmetic (`metajit.linalg_lu`).
* `lstsq`, `matrix_rank`, `pinv`: from the singular value decomposition.
* `cholesky`: column by column (Cholesky-Banachiewicz's recurrences).
* `qr`: Householder reflections (LAPACK's sign convention: ``R``'s diagonal may be
  negative; a column already zero below the diagonal is left alone).
* `eigh` / `eigvalsh`: cyclic Jacobi rotations; `svd` / `svdvals` / `pinv`: one-sided
  (Hestenes) Jacobi rotations of the columns. Jacobi converges quadratically but its
  iteration count depends on the data, which a static graph cannot have: each sweep
  applies every pair's rotation once (``n - 1`` rounds of ``n / 2`` disjoint rotations,
  each round one matrix product), and a fixed `jacobi_sweeps` sweeps run. The tests check
  the result has converged (off-diagonal mass, reconstruction) for the sizes this is meant
  for: small matrices (say n <= 32); for large ones use a library.

Inputs are ``(..., m, n)`` with any leading batch dims; integer inputs are computed in
float32. Singular or indefinite inputs give inf/nan instead of raising (checking would be
a sync point). Example::

    a = jt.array([[4.0, 1.0], [1.0, 3.0]])
    x = jt.linalg.solve(a, jt.array([1.0, 2.0]))
    w, v = jt.linalg.eigh(a)             # ascending eigenvalues, eigenvectors as columns
    u, s, vh = jt.linalg.svd(a)          # a == u @ diag(s) @ vh
"""
import collections
import math

import numpy as np

from .creation import eye, ones, zeros
from .errors import MetajitShapeError, MetajitValueError
from .linalg_lu import as_matrix, as_var, batched_pair, nonzero_divisor, positions, swap_last
from .linalg_lu import (LUFactor, PLU, Slogdet, det, inv, lu, lu_factor, lu_solve, slogdet,  # noqa: F401
                        solve, solve_triangular)  # (jt.linalg's names)
from .math_ops import binary, broadcast_shapes, cast, matmul, replace_at_zero, unary, where
from .reductions import max as reduce_max, min as reduce_min, norm as _vector_p_norm, sum as reduce_sum
from .shape_ops import broadcast_to, concat, permute, reshape
from .tensor_ops import argsort, cross as _cross, gather, tril, triu

SVD = collections.namedtuple("SVD", ["U", "S", "Vh"])
Eigh = collections.namedtuple("Eigh", ["eigenvalues", "eigenvectors"])
QR = collections.namedtuple("QR", ["Q", "R"])


def jacobi_sweeps(n):
    """Sweeps the Jacobi solvers run for ``n`` x ``n`` matrices: one for 2 x 2 (a single
    rotation diagonalises it), else ``3 + ceil(1.5 log2 n)``, at least one sweep more than
    random and clustered float64 matrices of up to 32 x 32 needed to bring the off-diagonal
    mass below 1e-15 of the norm (quadratic convergence takes over after about log2(n)
    sweeps)."""
    return 1 if n <= 2 else 3 + math.ceil(1.5 * math.log2(n))


def _safe_sqrt(total):
    """``sqrt(total)`` whose gradient is 0 instead of inf where ``total`` is 0."""
    return replace_at_zero(lambda value: unary("sqrt", value), total)


def matrix_power(x, n):
    """``x`` multiplied by itself ``n`` times (binary powering; ``n = 0`` gives identities,
    negative ``n`` powers the inverse). Example: ``jt.linalg.matrix_power(a, 3)``."""
    x = as_matrix(x, "matrix_power", square=True)
    if not isinstance(n, (int, np.integer)):
        raise MetajitValueError(f"linalg.matrix_power: the exponent must be an integer, got {n!r}")
    if n == 0:
        return broadcast_to(eye(x.shape[-1], dtype=x.dtype), x.shape)
    base, remaining, result = (inv(x) if n < 0 else x), abs(int(n)), None
    while remaining:
        if remaining & 1:
            result = base if result is None else matmul(result, base)
        remaining >>= 1
        if remaining:
            base = matmul(base, base)
    return result


# ---- Cholesky and QR ---------------------------------------------------------------------

def cholesky(x, upper=False):
    """The lower-triangular ``L`` with ``x = L @ L.T`` for symmetric positive-definite
    ``x`` (only the lower triangle is read, as LAPACK; ``upper=True`` returns ``L.T``); an
    indefinite matrix gives nan. Example: ``jt.linalg.cholesky(jt.array([[4.0, 2], [2, 3]]))``."""
    x = as_matrix(x, "cholesky", square=True)
    n = x.shape[-1]
    rows = positions(n)
    lower = zeros(*x.shape, dtype=x.dtype)
    for j in range(n):
        remainder = x[..., :, j]  # a[i, j] - sum_{k<j} L[i, k] L[j, k] (columns >= j of L are 0)
        if j:
            remainder = binary("sub", remainder, reduce_sum(binary("mul", lower, lower[..., j:j + 1, :]), -1))
        diagonal = unary("sqrt", remainder[..., j:j + 1])
        column = where(binary("gt", rows, j), binary("div", remainder, diagonal),
                       where(binary("eq", rows, j), diagonal, 0.0))
        lower = binary("add", lower, binary("mul", column.unsqueeze(-1), cast(binary("eq", rows, j), x.dtype)))
    return swap_last(lower) if upper else lower


def _householder(matrix, basis):
    """Householder triangularisation of ``matrix`` (..., m, n): returns ``(Q, R)`` with
    ``Q`` = ``basis`` times the reflections (m x m) and ``R`` upper triangular."""
    m, n = matrix.shape[-2:]
    rows = positions(m)
    upper, q = matrix, basis
    for j in range(min(m - 1, n)):  # the last row has nothing below its diagonal
        column = upper[..., :, j]
        at_j = cast(binary("eq", rows, j), matrix.dtype)
        below = where(binary("gt", rows, j), column, 0.0)
        below_squares = reduce_sum(binary("mul", below, below), -1, keepdims=True)
        alpha = column[..., j:j + 1]
        length = unary("sqrt", where(binary("eq", below_squares, 0.0), 1.0,
                                     binary("add", binary("mul", alpha, alpha), below_squares)))
        beta = binary("mul", where(binary("ge", alpha, 0.0), -1.0, 1.0), length)  # R's new diagonal entry
        v = binary("add", below, binary("mul", at_j, binary("sub", alpha, beta)))
        v_squares = reduce_sum(binary("mul", v, v), -1, keepdims=True)
        scale = where(binary("eq", below_squares, 0.0), 0.0, binary("div", 2.0, nonzero_divisor(v_squares)))
        scaled_v = binary("mul", scale, v)  # H = I - scaled_v v^T
        upper = binary("sub", upper, binary("mul", scaled_v.unsqueeze(-1), matmul(v.unsqueeze(-2), upper)))
        q = binary("sub", q, binary("mul", matmul(q, v.unsqueeze(-1)), scaled_v.unsqueeze(-2)))
    return q, triu(upper)


def qr(x, mode="reduced"):
    """``(Q, R)`` with ``x = Q @ R``, ``Q`` orthonormal columns and ``R`` upper triangular,
    by Householder reflections. ``mode``: ``"reduced"`` (Q is m x k, R k x n, k = min(m, n)),
    ``"complete"`` (Q is m x m) or ``"r"`` (Q empty), as ``torch.linalg.qr``.

    Example: ``q, r = jt.linalg.qr(a)``."""
    x = as_matrix(x, "qr")
    if mode not in ("reduced", "complete", "r"):
        raise MetajitValueError(f"linalg.qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    m, n = x.shape[-2:]
    q, upper = _householder(x, broadcast_to(eye(m, dtype=x.dtype), tuple(x.shape[:-2]) + (m, m)))
    if mode == "r":
        return QR(zeros(0, dtype=x.dtype), upper[..., :min(m, n), :])
    if mode == "reduced" and m > n:
        return QR(q[..., :, :n], upper[..., :n, :])
    return QR(q, upper)


# ---- Jacobi rotations: eigh, svd ---------------------------------------------------------

def _rounds(n):
    """The rounds of a cyclic Jacobi sweep over ``n`` indices (round-robin tournament):
    each round a list of disjoint pairs ``(p, q)``, p < q, covering every pair once per
    sweep; with odd ``n`` one index sits out each round."""
    players = list(range(n + n % 2))
    rounds = []
    for _ in range(len(players) - 1):
        pairs = [(players[i], players[-1 - i]) for i in range(len(players) // 2)]
        rounds.append([(min(p, q), max(p, q)) for p, q in pairs if max(p, q) < n])
        players = [players[0], players[-1]] + players[1:-1]
    return rounds


def _rotation_layout(n, pairs):
    """Where each entry of a round's rotation matrix comes from, as indices into
    ``[c..., c..., s..., -s..., 1, 0]`` (cosines and sines per pair, then constants)."""
    count = len(pairs)
    one, zero = 4 * count, 4 * count + 1
    layout = np.full((n, n), zero, np.int64)
    np.fill_diagonal(layout, one)
    for k, (p, q) in enumerate(pairs):
        layout[p, p], layout[q, q], layout[p, q], layout[q, p] = k, count + k, 2 * count + k, 3 * count + k
    return layout.reshape(-1)


def _rotation(pp, qq, pq):
    """Cosines and sines of the Jacobi rotations zeroing ``pq`` of the symmetric 2 x 2
    blocks ``[[pp, pq], [pq, qq]]`` (the smaller angle, |t| <= 1), written without
    dividing by ``pq`` so the gradient is finite where ``pq`` is 0."""
    difference = binary("sub", qq, pp)
    sign = where(binary("ge", difference, 0.0), 1.0, -1.0)
    radius = _safe_sqrt(binary("add", binary("mul", difference, difference), binary("mul", binary("mul", pq, pq), 4.0)))
    denominator = nonzero_divisor(binary("add", unary("abs", difference), radius))
    tangent = binary("div", binary("mul", binary("mul", pq, 2.0), sign), denominator)
    cosine = binary("div", 1.0, unary("sqrt", binary("add", binary("mul", tangent, tangent), 1.0)))
    return cosine, binary("mul", tangent, cosine)


def _rotation_matrix(cosine, sine, layout, n):
    """The round's rotation (..., n, n) from per-pair cosines and sines (..., pairs)."""
    batch = tuple(cosine.shape[:-1])
    constants = concat([ones(*batch, 1, dtype=cosine.dtype), zeros(*batch, 1, dtype=cosine.dtype)], -1)
    values = concat([cosine, cosine, sine, unary("neg", sine), constants], -1)
    return reshape(values[..., layout], batch + (n, n))


def _jacobi_rounds(n):
    """Static data per round: (p indices, q indices, rotation layout)."""
    return [(np.array([p for p, _ in pairs]), np.array([q for _, q in pairs]), _rotation_layout(n, pairs))
            for pairs in _rounds(n)]


def _symmetric_jacobi(a):
    """Two-sided cyclic Jacobi: ``(diagonal, V)`` with ``a ~= V diag(diagonal) V^T``."""
    n = a.shape[-1]
    batch = tuple(a.shape[:-2])
    vectors = broadcast_to(eye(n, dtype=a.dtype), a.shape)
    rounds = _jacobi_rounds(n)
    for _ in range(jacobi_sweeps(n)):
        for p, q, layout in rounds:
            flat = reshape(a, batch + (n * n,))
            cosine, sine = _rotation(flat[..., p * n + p], flat[..., q * n + q], flat[..., p * n + q])
            rotation = _rotation_matrix(cosine, sine, layout, n)
            a = matmul(swap_last(rotation), matmul(a, rotation))
            vectors = matmul(vectors, rotation)
    diagonal = reshape(a, batch + (n * n,))[..., np.arange(n) * (n + 1)]
    return diagonal, vectors


def _one_sided_jacobi(a):
    """Hestenes' one-sided Jacobi on the columns of ``a`` (..., m, n): ``(W, V)`` with
    ``a V = W``, ``V`` orthogonal and the columns of ``W`` mutually orthogonal."""
    n = a.shape[-1]
    vectors = broadcast_to(eye(n, dtype=a.dtype), tuple(a.shape[:-2]) + (n, n))
    rounds = _jacobi_rounds(n)
    for _ in range(jacobi_sweeps(n)):
        for p, q, layout in rounds:
            left, right = a[..., p], a[..., q]
            cosine, sine = _rotation(reduce_sum(binary("mul", left, left), -2),
                                     reduce_sum(binary("mul", right, right), -2),
                                     reduce_sum(binary("mul", left, right), -2))
            rotation = _rotation_matrix(cosine, sine, layout, n)
            a = matmul(a, rotation)
            vectors = matmul(vectors, rotation)
    return a, vectors


def _symmetrised(x, uplo, op):
    """The symmetric matrix one triangle of ``x`` defines (``uplo`` "L" or "U")."""
    if uplo not in ("L", "U"):
        raise MetajitValueError(f"linalg.{op}: UPLO must be 'L' or 'U', got {uplo!r}")
    if uplo == "L":
        return binary("add", tril(x), swap_last(tril(x, -1)))
    return binary("add", triu(x), swap_last(triu(x, 1)))


def _ordered(values, descending, *matrices):
    """``values`` (..., k) sorted along the last dim, and the columns of each of
    ``matrices`` (..., m, k) in the same order."""
    order = argsort(values, -1, descending=descending)
    sorted_matrices = [gather(m, -1, broadcast_to(order.unsqueeze(-2), tuple(m.shape))) for m in matrices]
    return (gather(values, -1, order), *sorted_matrices)


def eigh(x, UPLO="L"):
    """Eigenvalues (ascending) and orthonormal eigenvectors (columns) of symmetric
    matrices, by cyclic Jacobi rotations; reads the ``UPLO`` triangle. Each eigenvector's
    sign is arbitrary (as in LAPACK). Returns the named tuple ``(eigenvalues, eigenvectors)``.

    Example: ``w, v = jt.linalg.eigh(a)``; ``a @ v`` equals ``v * w``."""
    x = _symmetrised(as_matrix(x, "eigh", square=True), UPLO, "eigh")
    values, vectors = _symmetric_jacobi(x)
    return Eigh(*_ordered(values, False, vectors))


def eigvalsh(x, UPLO="L"):
    """The eigenvalues (ascending) of symmetric matrices (see `eigh`).

    Example: ``jt.linalg.eigvalsh(jt.array([[2.0, 1], [1, 2]]))`` is ``[1, 3]``."""
    return eigh(x, UPLO).eigenvalues


def _svd_tall(x):
    """``(U, S, V)`` of ``x`` (..., m, n) with m >= n: U (..., m, n), S descending, V (..., n, n)."""
    columns, vectors = _one_sided_jacobi(x)
    values = _safe_sqrt(reduce_sum(binary("mul", columns, columns), -2))
    values, columns, vectors = _ordered(values, True, columns, vectors)
    return binary("div", columns, nonzero_divisor(values).unsqueeze(-2)), values, vectors


def _orthonormal_completion(u):
    """``u`` (..., m, k) with orthonormal columns extended to an orthogonal (..., m, m)."""
    m = u.shape[-2]
    q, _ = _householder(u, broadcast_to(eye(m, dtype=u.dtype), tuple(u.shape[:-2]) + (m, m)))
    return concat([u, q[..., u.shape[-1]:]], -1)


def svd(x, full_matrices=False, compute_uv=True):
    """Singular value decomposition ``x = U @ diag(S) @ Vh`` by one-sided Jacobi, with
    ``S`` descending; a named tuple ``(U, S, Vh)``. Jittor's default is the reduced form
    (U is m x k, Vh k x n, k = min(m, n)); ``full_matrices=True`` (PyTorch's default)
    completes U and Vh to square orthogonal matrices. Singular vector signs are arbitrary
    (as in LAPACK); a zero singular value has a zero singular vector.

    Example: ``u, s, vh = jt.linalg.svd(a)``; ``(u * s.unsqueeze(-2)) @ vh`` is ``a``."""
    x = as_matrix(x, "svd")
    m, n = x.shape[-2:]
    if m < n:
        v, s, u = _svd_tall(swap_last(x))
    else:
        u, s, v = _svd_tall(x)
    if not compute_uv:
        return s
    if full_matrices and m > n:
        u = _orthonormal_completion(u)
    elif full_matrices and m < n:
        v = _orthonormal_completion(v)
    return SVD(u, s, swap_last(v))


def svdvals(x):
    """The singular values of ``x``, descending (see `svd`).

    Example: ``jt.linalg.svdvals(jt.array([[3.0, 0], [0, -4]]))`` is ``[4, 3]``."""
    return svd(x, compute_uv=False)


def _nonzero_singular_values(magnitudes, shape, rtol, atol):
    """Where singular values (or |eigenvalues|) count as nonzero: above ``max(atol, rtol *
    largest)``, ``rtol`` defaulting to eps * max(m, n) (0 when ``atol`` is given), as
    ``torch.linalg``."""
    if rtol is None:
        rtol = 0.0 if atol else float(np.finfo(str(magnitudes.dtype)).eps) * max(shape[-2:])
    threshold = binary("mul", reduce_max(magnitudes, -1, keepdims=True), float(rtol))
    if atol:
        threshold = binary("maximum", threshold, float(atol))
    return binary("gt", magnitudes, threshold)


def pinv(x, rtol=None, hermitian=False, *, atol=None, rcond=None):
    """The Moore-Penrose pseudo-inverse ``V diag(1/S) U^T``, singular values below
    ``max(atol, rtol * S.max())`` treated as 0 (default ``rtol``: eps * max(m, n), as
    ``torch.linalg.pinv``; ``rcond`` is numpy's name for ``rtol``); ``hermitian=True``
    uses `eigh`. Example: ``jt.linalg.pinv(jt.array([[1.0, 2.0]]))``."""
    x = as_matrix(x, "pinv")
    if hermitian:
        values, vectors = eigh(x)
        magnitudes, left, right = unary("abs", values), vectors, vectors
        inverted = binary("div", 1.0, nonzero_divisor(values))
    else:
        left, magnitudes, right_h = svd(x)
        right = swap_last(right_h)
        inverted = binary("div", 1.0, nonzero_divisor(magnitudes))
    kept = _nonzero_singular_values(magnitudes, x.shape, rcond if rtol is None else rtol, atol)
    inverted = where(kept, inverted, 0.0)
    return matmul(binary("mul", right, inverted.unsqueeze(-2)), swap_last(left))


def matrix_rank(A, tol=None, hermitian=False, *, atol=None, rtol=None):
    """The number of singular values (``hermitian=True``: |eigenvalues|) above
    ``max(atol, rtol * largest)`` (default ``rtol``: eps * max(m, n)), an int64 Var per
    matrix, as ``torch.linalg.matrix_rank``; ``tol`` is the older absolute tolerance (``rtol``
    then 0). Example: ``jt.linalg.matrix_rank(jt.array([[1.0, 2], [2, 4]]))`` is 1."""
    A = as_matrix(A, "matrix_rank")
    if tol is not None:
        atol, rtol = tol, 0.0
    magnitudes = unary("abs", eigvalsh(A)) if hermitian else svdvals(A)
    return reduce_sum(cast(_nonzero_singular_values(magnitudes, A.shape, rtol, atol), "int64"), -1)


Lstsq = collections.namedtuple("Lstsq", ["solution", "residuals", "rank", "singular_values"])
_LSTSQ_DRIVERS = (None, "gels", "gelsy", "gelsd", "gelss")


def lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares solution ``X`` minimising ``||A @ X - B||`` for ``A`` (..., m, n)
    and ``B`` (..., m, k), the one of least norm when ``A`` is rank-deficient (singular values
    up to ``rcond`` times the largest count as 0; default eps * max(m, n)), through the SVD.
    Returns ``(solution, residuals, rank, singular_values)`` as ``torch.linalg.lstsq``, with
    its ``driver``'s outputs: residuals (squared, per column of ``B``) for "gels", "gelsd"
    and "gelss" when m > n, the rank except for "gels", the singular values for "gelsd" and
    "gelss"; the others are empty. Differentiable in ``A`` and ``B``.

    Example: ``x = jt.linalg.lstsq(a, b).solution``."""
    A = as_matrix(A, "lstsq")
    if driver not in _LSTSQ_DRIVERS:
        raise MetajitValueError(f"linalg.lstsq: driver must be one of {_LSTSQ_DRIVERS}, got {driver!r}")
    B = as_var(B)
    if B.ndim < 2 or B.shape[-2] != A.shape[-2]:
        raise MetajitShapeError(f"linalg.lstsq expects B of shape (..., m, k) with A's m = {A.shape[-2]} rows, "
                                f"got A {tuple(A.shape)} and B {tuple(B.shape)}")
    A, B = batched_pair(A, cast(B, A.dtype), "lstsq")
    u, values, vh = svd(A)
    kept = _nonzero_singular_values(values, A.shape, rcond, None)
    inverted = where(kept, binary("div", 1.0, nonzero_divisor(values)), 0.0)
    solution = matmul(binary("mul", swap_last(vh), inverted.unsqueeze(-2)), matmul(swap_last(u), B))
    m, n = A.shape[-2:]
    empty = zeros(0, dtype=A.dtype)
    residuals = empty
    if driver in ("gels", "gelsd", "gelss") and m > n:
        error = binary("sub", matmul(A, solution), B)
        residuals = reduce_sum(binary("mul", error, error), -2)
    rank = zeros(0, dtype="int64") if driver == "gels" else reduce_sum(cast(kept, "int64"), -1)
    return Lstsq(solution, residuals, rank, values if driver in ("gelsd", "gelss") else empty)


# ---- norms and products ------------------------------------------------------------------

def vector_norm(x, ord=2, dim=None, keepdim=False, keepdims=False):
    """The vector ``ord``-norm over ``dim`` (all elements by default): 2, 1, inf, -inf, 0
    or any float (`metajit.norm`); the gradient is 0 where the norm is 0, as PyTorch.

    Example: ``jt.linalg.vector_norm(jt.array([3.0, 4.0]))`` is 5."""
    return _vector_p_norm(x, ord, dim=dim, keepdims=keepdim or keepdims)


def _matrix_dims_last(x, dim, op):
    """``x`` with the two ``dim`` axes moved to the end, and a function restoring kept dims."""
    if len(dim) != 2:
        raise MetajitShapeError(f"linalg.{op}: dim must name two dims, got {dim!r}")
    rows, columns = (d % x.ndim for d in dim)
    if rows == columns:
        raise MetajitShapeError(f"linalg.{op}: dim {dim!r} names the same dim twice")
    rest = [d for d in range(x.ndim) if d not in (rows, columns)]
    moved = permute(x, rest + [rows, columns])

    def restore(result, keepdim):
        if not keepdim:
            return result
        for axis in sorted((rows, columns)):
            result = result.unsqueeze(axis)
        return result
    return moved, restore


def matrix_norm(x, ord="fro", dim=(-2, -1), keepdim=False, keepdims=False):
    """A matrix norm over the two ``dim`` axes: ``"fro"``, ``"nuc"`` (sum of singular
    values), 2 / -2 (largest / smallest singular value), 1 / -1 (max / min absolute column
    sum), inf / -inf (max / min absolute row sum), as ``torch.linalg.matrix_norm``.

    Example: ``jt.linalg.matrix_norm(a, "nuc")``."""
    x = as_matrix(x, "matrix_norm")
    moved, restore = _matrix_dims_last(x, tuple(dim), "matrix_norm")
    if ord == "fro":
        result = _safe_sqrt(reduce_sum(binary("mul", moved, moved), (-2, -1)))
    elif ord in ("nuc", 2, -2):
        values = svdvals(moved)
        result = {"nuc": reduce_sum, 2: reduce_max, -2: reduce_min}[ord](values, -1)
    elif ord in (1, -1, float("inf"), float("-inf")):
        summed_axis = -2 if abs(ord) == 1 else -1
        sums = reduce_sum(unary("abs", moved), summed_axis)
        result = (reduce_max if ord > 0 else reduce_min)(sums, -1)
    else:
        raise MetajitValueError(f"linalg.matrix_norm: ord must be 'fro', 'nuc', 1, -1, 2, -2, inf or -inf, "
                                f"got {ord!r}")
    return restore(result, keepdim or keepdims)


def norm(x, ord=None, dim=None, keepdim=False, keepdims=False):
    """``torch.linalg.norm``: a vector norm when ``dim`` is an int (or ``x`` is 1-d), a
    matrix norm when ``dim`` is a pair (or ``x`` is 2-d and ``ord`` given), else the
    2-norm of all elements. Example: ``jt.linalg.norm(a, "fro")``."""
    x = as_var(x)
    keepdim = keepdim or keepdims
    if isinstance(dim, int):
        dim = (dim,)
    if dim is not None and len(dim) == 2 or (dim is None and ord is not None and x.ndim == 2):
        return matrix_norm(x, "fro" if ord is None else ord, (-2, -1) if dim is None else dim, keepdim)
    if ord is not None and dim is None and x.ndim != 1:
        raise MetajitShapeError(f"linalg.norm: ord={ord!r} needs a 1-d or 2-d input or dim, got shape "
                                f"{tuple(x.shape)}")
    if isinstance(ord, str):
        raise MetajitValueError(f"linalg.norm: ord={ord!r} is a matrix norm; give a pair of dims")
    return vector_norm(x, 2 if ord is None else ord, dim, keepdim)


def cross(x, y, dim=-1):
    """The cross product of 3-vectors along ``dim``, batch dims broadcast
    (``torch.linalg.cross``). Example: ``jt.linalg.cross(e1, e2)`` is ``e3``."""
    x = as_var(x)
    y = as_var(y)
    shape = broadcast_shapes(tuple(x.shape), tuple(y.shape), op="linalg.cross")
    return _cross(broadcast_to(x, shape), broadcast_to(y, shape), dim)


def diagonal(x, offset=0, dim1=-2, dim2=-1):
    """The diagonal ``offset`` of the matrices spanned by ``dim1`` and ``dim2``, as the
    last dim (``torch.linalg.diagonal``). Example: ``jt.linalg.diagonal(a)``."""
    x = as_var(x)
    moved, _ = _matrix_dims_last(x, (dim1, dim2), "diagonal")
    rows, columns = moved.shape[-2:]
    length = max(0, min(rows, columns - offset) if offset >= 0 else min(rows + offset, columns))
    batch = len(moved.shape) - 2
    loops = [f"i{d}" for d in range(batch)]
    return moved.reindex(tuple(moved.shape[:-2]) + (length,),
                         loops + [f"i{batch}+{max(-offset, 0)}", f"i{batch}+{max(offset, 0)}"])


def logdet(x):
    """The natural log of the determinant: nan for a negative determinant, -inf for a
    singular matrix (``torch.logdet``; `slogdet` for the sign and log of the magnitude).
    Example: ``jt.linalg.logdet(2 * jt.eye(3))`` is 3 log 2."""
    sign, magnitude = slogdet(x)
    return where(binary("lt", sign, 0), float("nan"), magnitude)
