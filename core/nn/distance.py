"""Distances between vectors: `cosine_similarity`, `pairwise_distance`, `pdist` and
their modules, as PyTorch's (the same ``eps`` handling, so zero vectors and equal
points give PyTorch's values and gradients)."""
import numpy as np

from .. import creation
from ..errors import MetajitShapeError, MetajitValueError
from ..math_ops import binary
from ..reductions import norm
from .functional import _var
from .module import Module


def cosine_similarity(x1, x2, dim=1, eps=1e-8):
    """``x1 . x2 / (max(|x1|, eps) max(|x2|, eps))`` along ``dim`` (the inputs broadcast),
    as ``torch.nn.functional.cosine_similarity``: each input is divided by its clamped
    norm first, and the clamp passes the norm's gradient through.

    Example: ``F.cosine_similarity(a, b, dim=-1)`` is 1 for parallel rows."""
    x1, x2 = _var(x1), _var(x2)
    shape = np.broadcast_shapes(tuple(x1.shape), tuple(x2.shape))

    def unit(x):
        x = x if tuple(x.shape) == shape else x.broadcast_to(*shape)
        length = norm(x, 2, dim, keepdim=True)
        clamped = binary("add", length, binary("sub", binary("maximum", length, eps), length).detach())
        return binary("div", x, clamped)
    return binary("mul", unit(x1), unit(x2)).sum(dim)


def pairwise_distance(x1, x2, p=2.0, eps=1e-6, keepdim=False):
    """The ``p``-norm of ``x1 - x2 + eps`` along the last dim (the inputs broadcast), as
    ``torch.nn.functional.pairwise_distance``: ``eps`` keeps equal points apart.

    Example: ``F.pairwise_distance(a, b)`` for (N, D) ``a`` and ``b`` is (N,)."""
    x1, x2 = _var(x1), _var(x2)
    return norm(binary("add", binary("sub", x1, x2), eps), p, max(x1.ndim, x2.ndim) - 1, keepdim=keepdim)


def pdist(input, p=2):
    """The ``p``-norm distances between every pair of rows ``i < j`` of an (N, M) input, in
    row-major order of the pairs (N (N - 1) / 2 values), as ``torch.nn.functional.pdist``.

    Example: ``F.pdist(points)`` of 3 points is ``[d01, d02, d12]``."""
    x = _var(input)
    if x.ndim != 2:
        raise MetajitShapeError(f"pdist: expected an (N, M) input, got shape {tuple(x.shape)}")
    if p < 0:
        raise MetajitValueError(f"pdist: p must be non-negative, got {p}")
    first, second = np.triu_indices(x.shape[0], 1)
    if first.size == 0:
        return creation.zeros(0, dtype=x.dtype)
    difference = binary("sub", x.index_select(0, first), x.index_select(0, second))
    return norm(difference, p, 1)


class CosineSimilarity(Module):
    """Module form of `cosine_similarity`. Example: ``nn.CosineSimilarity(dim=1)(a, b)``."""

    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def execute(self, x1, x2):
        return cosine_similarity(x1, x2, self.dim, self.eps)

    def extra_repr(self):
        return f"dim={self.dim}, eps={self.eps}"


class PairwiseDistance(Module):
    """Module form of `pairwise_distance`. Example: ``nn.PairwiseDistance(p=1)(a, b)``."""

    def __init__(self, p=2.0, eps=1e-6, keepdim=False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def execute(self, x1, x2):
        return pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)

    def extra_repr(self):
        return f"p={self.norm}, eps={self.eps}, keepdim={self.keepdim}"
