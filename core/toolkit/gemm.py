"""A ``matmul`` library call (`metajit.toolkit.analysis.MatmulAttrs`) as strided-batched
BLAS GEMMs that read and write the dense buffers in place, in row-major terms: the form
cuBLAS, hipBLAS, oneMKL and accelerator BLAS libraries take (a column-major library
computes the same product as ``C^T = B^T A^T``, see `GemmLayout.column_major`).

Example::

    layout = gemm_layout(attrs)          # None: no BLAS can read these strides in place
    for a_offset, b_offset, c_offset in layout.offsets:
        blas.gemm_strided_batched(layout, a + a_offset * itemsize, ...)
"""
import dataclasses
import itertools
import math

MAX_CALLS = 1024  # strided-batched calls per product before the product stays a fused kernel


@dataclasses.dataclass(frozen=True)
class GemmLayout:
    """``C = op(A) @ op(B)`` per batch item, row-major: ``m``, ``n``, ``k``; ``trans_a`` /
    ``trans_b`` read an operand transposed; ``lda``/``ldb``/``ldc`` the leading dimensions
    (element strides between rows as stored); ``batch`` items per call, ``stride_a`` /
    ``stride_b`` / ``stride_c`` element strides between items (0: broadcast); ``offsets``:
    per call, the element offsets ``(a, b, c)`` of its first item. ``swapped``: A and B
    are the call's B and A operands (the product was turned into ``C^T = B^T A^T`` because
    the output's unit stride runs along m)."""

    swapped: bool
    m: int
    n: int
    k: int
    trans_a: bool
    trans_b: bool
    lda: int
    ldb: int
    ldc: int
    batch: int
    stride_a: int
    stride_b: int
    stride_c: int
    offsets: tuple

    def column_major(self):
        """The same product for a column-major BLAS: ``(trans_first, trans_second, m, n, k,
        first operand ("a" or "b"), its ld, second operand, its ld)`` — row-major
        ``C = A B`` is column-major ``C^T = B^T A^T`` on the same memory."""
        return (self.trans_b, self.trans_a, self.n, self.m, self.k, "b", self.ldb, "a", self.lda)


def operand_layout(rows, cols, row_stride, col_stride):
    """``(transposed, ld)`` under which BLAS reads a ``rows`` x ``cols`` matrix with these
    element strides in place, or None."""
    if (col_stride == 1 or cols == 1) and (rows == 1 or row_stride >= max(cols, 1)):
        return False, row_stride if rows > 1 else max(cols, 1)
    if (row_stride == 1 or rows == 1) and (cols == 1 or col_stride >= max(rows, 1)):
        return True, col_stride if cols > 1 else max(rows, 1)
    return None


def _collapse_batch(sizes, strides):
    """Batch dims (sizes, per-operand strides) with size-1 dims dropped and adjacent dims
    merged wherever every operand steps through both as one."""
    dims = [(size, tuple(s[d] for s in strides)) for d, size in enumerate(sizes) if size != 1]
    merged = []
    for size, steps in dims:
        if merged:
            outer_size, outer_steps = merged[-1]
            if all(outer == inner * size for outer, inner in zip(outer_steps, steps)):
                merged[-1] = (outer_size * size, steps)
                continue
        merged.append((size, steps))
    return merged


def gemm_layout(attrs):
    """The `GemmLayout` of a ``matmul`` call's `MatmulAttrs`, or None when some operand's
    strides are not BLAS-readable in place (neither matrix dim has unit stride) or the
    batch needs more than `MAX_CALLS` calls."""
    nb = len(attrs.batch)
    a_batch, (a_m, a_k) = attrs.a_strides[:nb], attrs.a_strides[nb:]
    b_batch, (b_k, b_n) = attrs.b_strides[:nb], attrs.b_strides[nb:]
    c_batch, (c_m, c_n) = attrs.c_strides[:nb], attrs.c_strides[nb:]
    m, n, k = attrs.m, attrs.n, attrs.k
    swapped = n > 1 and c_n != 1
    if swapped:
        if m > 1 and c_m != 1:
            return None
        # C^T = B^T A^T: B^T is n x k with strides (b_n, b_k), A^T is k x m with (a_k, a_m)
        m, n = n, m
        (a_m, a_k), (b_k, b_n), (c_m, c_n) = (b_n, b_k), (a_k, a_m), (c_n, c_m)
        a_batch, b_batch = b_batch, a_batch
    ldc = c_m if m > 1 else max(n, 1)
    first, second = operand_layout(m, k, a_m, a_k), operand_layout(k, n, b_k, b_n)
    if first is None or second is None or ldc < n:
        return None
    dims = _collapse_batch(attrs.batch, (a_batch, b_batch, c_batch))
    inner_size, inner_steps = dims[-1] if dims else (1, (0, 0, 0))
    outer = dims[:-1]
    if math.prod(size for size, _ in outer) > MAX_CALLS:
        return None
    offsets = tuple(
        tuple(sum(i * steps[operand] for i, (_, steps) in zip(index, outer)) for operand in range(3))
        for index in itertools.product(*(range(size) for size, _ in outer)))
    return GemmLayout(swapped, m, n, k, first[0], second[0], first[1], second[1], ldc,
                      inner_size, *inner_steps, offsets)
