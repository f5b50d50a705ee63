"""Statistics with PyTorch's names and semantics, as meta-op compositions: order statistics
(``median``/``nanmedian``, ``mode``, ``quantile``/``nanquantile``, from the stable sort of
`metajit.tensor_ops`), moments (``cov``, ``corrcoef``) and sampling from given
probabilities (``multinomial``, ``bernoulli``, from `metajit.rand`, so ``jt.seed`` /
``jt.set_global_seed`` repeat them).

Values picked out of ``x`` are gathered at their indices, so gradients reach the elements
chosen, as PyTorch's. Example::

    values, indices = x.median(dim=1)
    q = jt.quantile(x, jt.array([0.25, 0.75]), dim=0)
    samples = jt.multinomial(weights, 4, replacement=True)
"""
import numbers

import numpy as np

from .creation import arange, rand
from .errors import MetajitDtypeError, MetajitShapeError, MetajitValueError
from .ir import dtypes
from .math_ops import as_var, binary, cast, clamp, isnan, lerp, matmul, unary, where, with_gradient
from .reductions import max as reduce_max, min as reduce_min, sum as reduce_sum
from .shape_ops import movedim, stack
from .tensor_ops import ValuesIndices, argsort, diag, gather, topk
from .var import Var

_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _float(x):
    x = as_var(x)
    return x if dtypes.is_float(x.dtype) else cast(x, dtypes.DEFAULT_FLOAT)


def _to_last(x, dim):
    """``x`` with ``dim`` moved last (``dim=None``: flattened), and the function putting a
    reduced result (..., 1) back: ``keepdim`` keeps the dim (all dims, size 1, for None)."""
    if dim is None:
        def restore(result, keepdim):
            return result.reshape((1,) * x.ndim) if keepdim else result.reshape(())
        return x.reshape(-1), restore
    dim = dim % max(x.ndim, 1)

    def restore(result, keepdim):
        result = result.squeeze(-1)
        return result.unsqueeze(dim) if keepdim else result
    return (movedim(x, dim, -1) if x.ndim else x.reshape(1)), restore


def _median(x, dim, keepdim, ignore_nan):
    """``(values, indices)`` of the lower median along ``dim``: the element at position
    ``(n - 1) // 2`` of the stable sort. A nan sorts last; `median` then gives the first nan
    of the row (PyTorch's), `nanmedian` the median of the others (a row of nans: its first)."""
    moved, restore = _to_last(x, dim)
    order = argsort(moved, -1)
    size = moved.shape[-1]
    nans = reduce_sum(isnan(moved), -1, keepdims=True)
    if ignore_nan:
        position = binary("maximum", binary("floor_div", (size - nans) - 1, 2), 0)
    else:
        position = where(nans > 0, size - nans, (size - 1) // 2)
    indices = gather(order, -1, position)
    return ValuesIndices(restore(gather(moved, -1, indices), keepdim), restore(indices, keepdim))


def _evenly_split(x, value):
    """``value`` (an element of ``x``), its gradient split evenly between the elements of ``x``
    equal to it, as PyTorch's full ``median`` / ``nanmedian``."""
    ties = binary("eq", x, value.detach())
    count = reduce_sum(cast(ties, x.dtype))
    return with_gradient(value, reduce_sum(where(ties, x, 0.0)) / binary("maximum", count, 1.0))


def median(x, dim=None, keepdim=False):
    """The lower median (for an even count, the smaller of the middle two), as ``torch.median``:
    of all elements without ``dim`` (a 0-d Var, nan if any is nan), else the named tuple
    ``(values, indices)`` along ``dim``. Example: ``values, indices = x.median(1)``."""
    x = as_var(x)
    if dim is None:
        return _evenly_split(x, _median(x, None, False, False).values) if dtypes.is_float(x.dtype) else \
            _median(x, None, False, False).values
    return _median(x, dim, keepdim, False)


def nanmedian(x, dim=None, keepdim=False):
    """`median` ignoring nan (nan only where everything is), as ``torch.nanmedian``.
    Example: ``jt.nanmedian(x, 0).values``."""
    x = as_var(x)
    if dim is None:
        return _evenly_split(x, _median(x, None, False, True).values) if dtypes.is_float(x.dtype) else \
            _median(x, None, False, True).values
    return _median(x, dim, keepdim, True)


def mode(x, dim=-1, keepdim=False):
    """``(values, indices)`` of the most frequent value along ``dim`` (the smallest among
    equally frequent ones) and its last position, as ``torch.mode``. Counts compare every
    pair of elements: O(n^2) work per row. Example: ``values, indices = x.mode(1)``."""
    x = as_var(x)
    moved, restore = _to_last(x, dim)
    counts = reduce_sum(binary("eq", moved.unsqueeze(-1), moved.unsqueeze(-2)), -1)
    most = binary("eq", counts, reduce_max(counts, -1, keepdims=True))
    largest = float("inf") if dtypes.is_float(x.dtype) else int(np.iinfo(x.dtype.numpy).max)
    value = reduce_min(where(most, moved, largest), -1, keepdims=True)
    positions = arange(moved.shape[-1]).int64()
    indices = reduce_max(where(binary("eq", moved, value), positions, 0), -1, keepdims=True)
    return ValuesIndices(restore(gather(moved, -1, indices), keepdim), restore(indices, keepdim))


def _quantile(x, q, dim, keepdim, interpolation, ignore_nan, op):
    """PyTorch's quantile: the sorted row read at rank ``q * (n - 1)`` (``n``: the non-nan
    count when ``ignore_nan``; else a row with a nan reads its last, a nan), rounded or
    interpolated as ``interpolation`` says."""
    if interpolation not in _INTERPOLATIONS:
        raise MetajitValueError(f"{op}: interpolation must be one of {', '.join(_INTERPOLATIONS)}, "
                                f"got {interpolation!r}")
    x = _float(x)
    scalar = isinstance(q, numbers.Real) or (isinstance(q, Var) and q.ndim == 0)
    levels = np.asarray(q.numpy() if isinstance(q, Var) else q, dtype=np.float64).reshape(-1)
    if not ((levels >= 0) & (levels <= 1)).all():
        raise MetajitValueError(f"{op}: q must be in [0, 1], got {levels.tolist()}")
    moved, restore = _to_last(x, dim)
    size = moved.shape[-1]
    ordered = gather(moved, -1, argsort(moved, -1))
    nans = reduce_sum(isnan(moved), -1, keepdims=True)
    level_shape = (len(levels),) + (1,) * moved.ndim
    if ignore_nan:
        ranks = as_var(levels.reshape(level_shape)).cast(x.dtype) * cast((size - nans) - 1, x.dtype)
        ranks = binary("maximum", ranks, 0.0)
    else:
        ranks = where(nans > 0, float(size - 1), as_var(levels.reshape(level_shape)).cast(x.dtype) * float(size - 1))
    rounding = {"lower": "floor", "higher": "ceil", "nearest": "round"}.get(interpolation)
    if rounding:
        ranks = unary(rounding, ranks)
    ranks = ranks.broadcast_to(len(levels), *moved.shape[:-1], 1)
    table = ordered.unsqueeze(0).broadcast_to(len(levels), *moved.shape)
    below = gather(table, -1, unary("floor", ranks).int64())
    if interpolation in ("linear", "midpoint"):
        above = gather(table, -1, unary("ceil", ranks).int64())
        below = lerp(below, above, ranks - unary("floor", ranks) if interpolation == "linear" else 0.5)
    results = [restore(below[k], keepdim) for k in range(len(levels))]
    return results[0] if scalar else stack(results, 0)


def quantile(x, q, dim=None, keepdim=False, interpolation="linear"):
    """The ``q``-quantiles (a number, or a 1-d list / Var of levels in [0, 1]: a leading dim
    of results) over ``dim`` (all elements by default), as ``torch.quantile``: the sorted
    values read at rank ``q * (n - 1)``, ``interpolation`` ``"linear"`` between the two
    neighbours, ``"lower"``, ``"higher"``, ``"nearest"`` (ties to even) or ``"midpoint"``; nan
    where a nan is among the values. Example: ``jt.quantile(x, [0.25, 0.75], dim=1)``."""
    return _quantile(x, q, dim, keepdim, interpolation, False, "quantile")


def nanquantile(x, q, dim=None, keepdim=False, interpolation="linear"):
    """`quantile` of the values that are not nan (nan where all are), as ``torch.nanquantile``.
    Example: ``jt.nanquantile(x, 0.5, dim=0)``."""
    return _quantile(x, q, dim, keepdim, interpolation, True, "nanquantile")


def cov(x, correction=1, fweights=None, aweights=None):
    """The covariance matrix of the variables in the rows of ``x`` (a 1-d ``x``: one
    variable), observations in the columns, as ``torch.cov``: ``correction`` is subtracted
    from the observation count (1: Bessel's correction), ``fweights`` are integer repeat
    counts and ``aweights`` importance weights of the observations. Example: ``jt.cov(samples.t())``."""
    x = _float(x)
    if x.ndim > 2:
        raise MetajitShapeError(f"cov expects a 1-d or 2-d Var (variables, observations), got shape {tuple(x.shape)}")
    x = x.reshape(1, -1) if x.ndim < 2 else x
    weights = None
    for given in (fweights, aweights):
        if given is not None:
            given = cast(as_var(given), x.dtype)
            weights = given if weights is None else weights * given
    if weights is None:
        mean = x.mean(1, keepdims=True)
        divisor = x.shape[1] - correction
    else:
        total = reduce_sum(weights)
        mean = reduce_sum(x * weights, 1, keepdims=True) / total
        divisor = total if correction == 0 else total - correction * (
            1.0 if aweights is None else reduce_sum(weights * cast(as_var(aweights), x.dtype)) / total)
    divisor = binary("maximum", divisor, 0)
    centered = x - mean
    scaled = centered if weights is None else centered * weights
    return binary("div", matmul(scaled, centered.transpose()), divisor).squeeze()


def corrcoef(x):
    """Pearson's correlation coefficients of the variables in the rows of ``x`` (`cov`
    normalised by the standard deviations, clipped to [-1, 1]), as ``torch.corrcoef``.
    Example: ``jt.corrcoef(jt.stack([a, b]))``."""
    covariance = cov(x)
    if covariance.ndim == 0:
        return covariance / covariance
    deviation = unary("sqrt", diag(covariance))
    return clamp(covariance / deviation.unsqueeze(1) / deviation.unsqueeze(0), -1.0, 1.0)


def multinomial(probabilities, num_samples, replacement=False, generator=None):
    """``num_samples`` category indices (int64) drawn from each row of non-negative weights
    ``probabilities`` (1-d or 2-d, need not sum to 1), as ``torch.multinomial``: with
    ``replacement`` by inverting the cumulative sums at uniform numbers, without it as the
    largest keys ``u ** (1 / p)`` (Efraimidis and Spirakis). ``generator`` is not supported
    (pass None): metajit's generator is seeded by ``jt.seed``. Example: ``jt.multinomial(w, 3)``."""
    if generator is not None:
        raise MetajitValueError("multinomial: a generator object is not supported; seed metajit's own "
                                "generator with jt.seed(n) instead")
    rows = cast(as_var(probabilities), dtypes.float64)
    if rows.ndim not in (1, 2):
        raise MetajitShapeError(f"multinomial expects a 1-d or 2-d Var of weights, got shape {tuple(rows.shape)}")
    single = rows.ndim == 1
    rows = rows.reshape(1, -1) if single else rows
    count, categories = rows.shape
    if not replacement and num_samples > categories:
        raise MetajitValueError(f"multinomial: cannot draw {num_samples} samples without replacement from "
                                f"{categories} categories; pass replacement=True or draw fewer")
    if replacement:
        cumulative = rows.cumsum(1)
        targets = rand(count, num_samples, dtype=dtypes.float64) * cumulative[:, -1:]
        below = reduce_sum(binary("le", cumulative.unsqueeze(1), targets.unsqueeze(-1)), -1)
        samples = binary("minimum", below, categories - 1)
    else:
        keys = unary("log", rand(count, categories, dtype=dtypes.float64)) / rows  # log(u ** (1 / p)); -inf for p = 0
        samples = topk(keys, num_samples, -1)[1]
    return samples[0] if single else samples


def bernoulli(x, p=None, generator=None):
    """Random 0s and 1s in ``x``'s shape and dtype, 1 with probability ``x`` (or ``p`` where
    given), as ``torch.bernoulli``; not differentiable. Example: ``mask = jt.bernoulli(jt.full((3,), 0.5))``."""
    if generator is not None:
        raise MetajitValueError("bernoulli: a generator object is not supported; seed metajit's own "
                                "generator with jt.seed(n) instead")
    x = as_var(x)
    if not dtypes.is_float(x.dtype) and p is None:
        raise MetajitDtypeError(f"bernoulli: probabilities must be a float Var, got {x.dtype}")
    probability = x.detach() if p is None else p
    return cast(binary("lt", rand(*x.shape, dtype=dtypes.float64), probability), x.dtype).detach()
