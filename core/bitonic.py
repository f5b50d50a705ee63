"""Sorting networks as meta-ops: the stable order of long rows in O(n log^2 n) work.

`sorting_order` runs Batcher's bitonic network along the last dim over (key, position)
pairs: the rows are padded to a power of two ``N``, and each of the ``log2(N) (log2(N) + 1)
/ 2`` stages pairs every element with the one ``stride`` away (a reindex) and keeps the
earlier or the later of the two, by its place in its block. Comparing positions on equal
keys makes the order stable, and a padding entry (position >= n) comes after every real
one. Fusion stores a stage's pairs every few stages (each stage reads two positions of the
last: `FusionCosts.max_inlined_reads`), so the network is a few dozen kernels where the
all-pairs rank count it replaces for long rows did n^2 comparisons per row.
"""
import math

import numpy as np

from .creation import full
from .ir import dtypes, graph
from .math_ops import binary, unary, where
from .shape_ops import concat, reindex, stack
from .var import Var


_FAR = 1e300  # beyond any float32 value: where float64 sort keys put the infinities


def ordered_before(a, b, descending):
    """Whether value ``a`` sorts strictly before ``b`` (nan last ascending, first descending)."""
    nan_a, nan_b = a.isnan(), b.isnan()
    if descending:
        return binary("gt", a, b) | (nan_a & ~nan_b)
    return binary("lt", a, b) | (nan_b & ~nan_a)


def same_key(a, b):
    """Whether values ``a`` and ``b`` tie in a sort (nan ties with nan)."""
    return binary("eq", a, b) | (a.isnan() & b.isnan())


def _ascending_keys(keys, descending):
    """Keys whose ascending order is the requested one, and the padding key that sorts after
    them all (ties with it go by position, so padding still comes last); None for float64
    keys, compared as they are (no spare range for their infinities)."""
    if keys.dtype == dtypes.float64:
        return None
    if dtypes.is_float(keys.dtype):
        wide = keys.cast(dtypes.float64).clamp(-_FAR, _FAR)  # the infinities become finite: nan can go past them
        flipped = unary("neg", wide) if descending else wide
        return where(keys.isnan(), -math.inf if descending else math.inf, flipped), math.inf
    wide = keys.cast(dtypes.int64)
    return (unary("bitwise_not", wide) if descending else wide), int(np.iinfo(np.int64).max)


def _read(pairs, channel, stride=0):
    """(..., 2, N) ``pairs`` read in their own shape: at each entry's slot (or its partner's,
    ``slot ^ stride``), from ``channel`` 0 (keys), 1 (positions) or None (the entry's own)."""
    last = pairs.ndim - 1
    slot = f"i{last}" if not stride else f"i{last}+{stride}-{2 * stride}*((i{last}/{stride})%2)"
    exprs = [f"i{d}" for d in range(last - 1)] + [f"i{last - 1}" if channel is None else str(channel), slot]
    return reindex(pairs, pairs.shape, exprs)


def _float64_order(key, index, other_key, other_index, count, descending):
    """Whether the partner's entry comes first, for float64 keys compared with their nans."""
    real, other_real = binary("lt", index, count), binary("lt", other_index, count)
    earlier_position = binary("lt", other_index, index)
    by_key = ordered_before(other_key, key, descending) | (same_key(other_key, key) & earlier_position)
    # a strict total order: real entries by key then position, before padding, padding by position
    return where(real & other_real, by_key, where(real | other_real, other_real, earlier_position))


def sorting_order(keys, descending=False):
    """Int64 positions that sort ``keys`` along the last dim, stably (equal keys keep their
    order; nan last, first when ``descending``), as ``torch.sort(stable=True)``'s indices."""
    count = keys.shape[-1]
    size = 1 << max(count - 1, 0).bit_length()
    lead = keys.shape[:-1]
    transformed = _ascending_keys(keys, descending)
    keys, padding = transformed if transformed is not None else (keys, 0.0)
    if size > count:  # padding entries, after every real one
        keys = concat([keys, full(lead + (size - count,), padding, keys.dtype)], -1)
    # each entry is a (key, position) pair along a new axis: one value per stage to store
    position = Var.from_node(graph.index_leaf(lead + (size,), len(lead), dtypes.int64))
    pairs = stack([keys, position.cast(keys.dtype)], -2)
    # every mask is computed in the pairs' own shape: a broadcast of a long row is stored
    slot = Var.from_node(graph.index_leaf(pairs.shape, pairs.ndim - 1))
    block = 2
    while block <= size:
        stride = block // 2
        while stride >= 1:
            key, index = _read(pairs, 0), _read(pairs, 1)
            other_key, other_index = _read(pairs, 0, stride), _read(pairs, 1, stride)
            if transformed is None:
                other_first = _float64_order(key, index, other_key, other_index, count, descending)
            else:
                other_first = binary("lt", other_key, key) | (binary("eq", other_key, key) &
                                                              binary("lt", other_index, index))
            lower = binary("eq", binary("bitwise_and", slot, stride), 0)
            ascending = binary("eq", binary("bitwise_and", slot, block), 0)
            # the lower slot of an ascending pair (the upper of a descending one) keeps the earlier entry
            take_other = binary("ne", binary("eq", lower, ascending), ~other_first)
            pairs = where(take_other, _read(pairs, None, stride), pairs)
            stride //= 2
        block *= 2
    return pairs[(slice(None),) * len(lead) + (1, slice(0, count))].cast(dtypes.int64)
