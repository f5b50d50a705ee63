"""``jt.misc``: the miscellaneous ops Jittor keeps in ``jittor.misc``, under the same names
(most are also top-level ``jt.*`` functions and Var methods), plus ``unbind``, ``view_as``,
``normalize`` and ``knn``.

Example::

    first, second = jt.misc.chunk(x, 2, dim=1)
    distances, indices = jt.misc.knn(points, points, 3)
"""
from .creation import arange, linspace
from .errors import MetajitShapeError
from .linalg import cross, diagonal, vector_norm
from .math_ops import binary, nonzero
from .reductions import sum as reduce_sum
from .shape_ops import chunk, concat, expand, flip, repeat, reshape, split, stack
from .tensor_ops import (argsort, bincount, cumprod, cumsum, diag, einsum, gather, histc, index_select, kthvalue,
                         masked_fill, meshgrid, outer, roll, scatter, searchsorted, sort, topk, trace, tril, triu,
                         unique)

__all__ = ["arange", "argsort", "bincount", "chunk", "concat", "cross", "cumprod", "cumsum", "diag", "diagonal",
           "einsum", "expand", "flip", "gather", "histc", "index_select", "knn", "kthvalue", "linspace",
           "masked_fill", "meshgrid", "nonzero", "normalize", "outer", "repeat", "roll", "scatter",
           "searchsorted", "sort", "split", "stack", "topk", "trace", "tril", "triu", "unbind", "unique", "view_as"]


def unbind(x, dim=0):
    """The slices of ``x`` along ``dim`` as a list (``torch.unbind``). Example: ``rows = jt.misc.unbind(m)``."""
    dim = dim % max(x.ndim, 1)
    return [piece.squeeze(dim) for piece in split(x, 1, dim)]


def view_as(x, other):
    """``x`` reshaped to ``other``'s shape. Example: ``jt.misc.view_as(flat, image)``."""
    return reshape(x, tuple(other.shape))


def normalize(x, p=2.0, dim=1, eps=1e-12):
    """``x`` divided by its ``p``-norm along ``dim`` (at least ``eps``), as
    ``torch.nn.functional.normalize``. Example: ``jt.misc.normalize(features, dim=-1)``."""
    return binary("div", x, binary("maximum", vector_norm(x, p, dim=dim, keepdim=True), eps))


def knn(unknown, known, k):
    """The ``k`` nearest ``known`` points of each ``unknown`` point: ``(squared distances,
    int64 indices)``, each (..., n, k), nearest first (Jittor's ``misc.knn`` on (..., n, d)
    and (..., m, d) points; the distances are a matrix product, the selection a sort).
    Example: ``d, i = jt.misc.knn(queries, points, 4)``."""
    if unknown.shape[-1] != known.shape[-1]:
        raise MetajitShapeError(f"knn: points of dimension {unknown.shape[-1]} and {known.shape[-1]} differ")
    squares = reduce_sum(binary("mul", unknown, unknown), -1, keepdims=True)
    known_squares = reduce_sum(binary("mul", known, known), -1).unsqueeze(-2)
    products = unknown @ known.transpose(-1, -2) if known.ndim >= 2 else unknown @ known
    distances = binary("maximum", binary("sub", binary("add", squares, known_squares), binary("mul", products, 2.0)),
                       0.0)
    return topk(distances, k, dim=-1, largest=False)

