"""Reductions: sum/mean/max/min/prod/any/all, argmax/argmin, norm, var, std, and PyTorch's
amax/amin/aminmax, logsumexp, nansum/nanmean, count_nonzero, sum_to_size, dist, renorm.

Dimensions are given Jittor-style (``x.sum(1)``, ``dims=(0, 1)``, ``keepdims``)
or PyTorch/numpy-style (``dim=``, ``axis=``, ``keepdim=``). Integer and bool
sums and products accumulate in int64, as numpy and PyTorch do.
"""
import builtins
import collections

from .ir import dtypes, graph
from .errors import MetajitShapeError, MetajitValueError
from .math_ops import as_node, binary, cast, cast_node, isinf, isnan, unary, where, wrap, replace_at_zero
from .var import Var


def _as_var(x):
    """``x`` as a Var (a list, array or number becomes one, as in the other ops)."""
    return x if isinstance(x, Var) else wrap(as_node(x))


def _axes_and_keepdims(x, args, kwargs, name):
    if not kwargs or (len(kwargs) == 1 and "keepdims" in kwargs):  # x.sum(1), x.max(1, keepdims=True)
        if len(args) <= 1:
            axes = args[0] if args else None
            return graph.normalise_axes(tuple(axes) if isinstance(axes, list) else axes, x.ndim, name), \
                bool(kwargs.get("keepdims", False))
    axes = None
    if args:
        axes = args[0] if len(args) == 1 else tuple(args)
    for key in ("dim", "dims", "axis", "axes"):
        if key in kwargs:
            if axes is not None:
                raise MetajitValueError(f"{name}: dimensions given twice")
            axes = kwargs.pop(key)
    keepdims = bool(kwargs.pop("keepdims", kwargs.pop("keepdim", False)))
    if kwargs:
        raise MetajitValueError(f"{name}: unexpected arguments {', '.join(kwargs)}")
    if isinstance(axes, list):
        axes = tuple(axes)
    return graph.normalise_axes(axes, x.ndim, name), keepdims


def _reduce(op, x, axes, keepdims):
    return wrap(graph.reduce(op, as_node(x), axes, keepdims))


def _as_float_or_int64(x):
    return x if dtypes.is_float(x.dtype) else cast(x, dtypes.int64)


def _as_bool(x):
    return cast(x, dtypes.bool_)


def _reduction(op, prepare, doc, takes_dtype=False):
    def reduction(x, *args, **kwargs):
        x = _as_var(x)
        dtype = kwargs.pop("dtype", None) if takes_dtype else None
        axes, keepdims = _axes_and_keepdims(x, args, kwargs, op)
        if op in ("max", "min") and builtins.any(x.shape[a] == 0 for a in axes):
            raise MetajitValueError(f"{op} over a zero-size dimension of a Var of shape {x.shape} has no "
                                    "value (numpy and torch raise too): reduce over non-empty dimensions")
        return _reduce(op, prepare(x) if dtype is None else cast(x, dtype), axes, keepdims)
    reduction.__name__ = op
    reduction.__doc__ = doc
    return reduction


sum = _reduction("sum", _as_float_or_int64, "Sum over dimensions (all by default), e.g. "
                 "``x.sum(1, keepdims=True)``; ints and bools accumulate in int64; ``dtype=``: "
                 "``x`` converted to it first (PyTorch's), e.g. ``x.sum(dim=1, dtype=jt.float64)``.", True)
prod = _reduction("prod", _as_float_or_int64, "Product over dimensions, e.g. ``x.prod(0)``; "
                  "ints and bools accumulate in int64; ``dtype=``: ``x`` converted to it first.", True)
max = _reduction("max", lambda x: x, "Maximum over dimensions (values only, as in Jittor; nan "
                 "propagates), e.g. ``x.max(0)``.")
min = _reduction("min", lambda x: x, "Minimum over dimensions (values only, as in Jittor; nan "
                 "propagates), e.g. ``x.min(0)``.")
any = _reduction("any", _as_bool, "Whether any element is nonzero over dimensions, e.g. ``x.any(1)``.")
all = _reduction("all", _as_bool, "Whether all elements are nonzero over dimensions, e.g. ``x.all(1)``.")


def _count(x, axes):
    return graph.numel([x.shape[a] for a in axes])


def mean(x, *args, **kwargs):
    """Average over dimensions; integer inputs give float32; ``dtype=``: ``x`` converted to it
    first (PyTorch's), e.g. ``x.mean(0, dtype=jt.float64)``."""
    x = _as_var(x)
    dtype = kwargs.pop("dtype", None)
    if dtype is not None:
        x = cast(x, dtype)
    axes, keepdims = _axes_and_keepdims(x, args, kwargs, "mean")
    node = as_node(x)
    if not dtypes.is_float(node.dtype):
        node = cast_node(node, dtypes.DEFAULT_FLOAT)
    total = _reduce("sum", wrap(node), axes, keepdims)
    count = _count(x, axes)
    return binary("div", total, count) if count else binary("mul", total, float("nan"))


ARG_EXTREME_HINT = ("jt.argmax / jt.argmin return the tuple (indices, values), as Jittor's: take the indices "
                     "with [0], e.g. x.argmax(1)[0]")


class IndicesValues(collections.namedtuple("IndicesValues", ["indices", "values"])):
    """What `argmax` / `argmin` return: Jittor's tuple ``(indices, values)`` (also by name).
    Used as PyTorch's single Var of indices (``x.argmax(1).eq(y)``, ``int(...)``) it raises
    an error saying so, instead of failing on a plain tuple."""

    __slots__ = ()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(f"{ARG_EXTREME_HINT}; the tuple has no attribute {name!r}")

    def _not_a_number(self, *unused):
        raise TypeError(f"{ARG_EXTREME_HINT}; a tuple is not a number")

    __int__ = __float__ = __index__ = _not_a_number


def _arg_extreme(op):
    def arg(x, dim=None, keepdims=False, keepdim=False):
        keepdims = keepdims or keepdim
        x = _as_var(x)
        from .shape_ops import reshape
        if dim is None:
            x, dim = reshape(x, (-1,)), 0
        axes = graph.normalise_axes(dim, x.ndim, "arg" + op)
        if x.shape[axes[0]] == 0:
            raise MetajitValueError(f"arg{op} of an empty dimension")
        extreme = _reduce(op, x, axes, True)
        hits = binary("eq", x, extreme)
        if dtypes.is_float(x.dtype):
            hits = binary("logical_or", hits, binary("logical_and", binary("ne", x, x),
                                                     binary("ne", extreme, extreme)))
        positions = wrap(graph.broadcast_to(graph.index_leaf(x.shape, axes[0]), x.shape))
        candidates = where(hits, positions, x.shape[axes[0]])
        index = _reduce("min", candidates, axes, keepdims)
        value = _reduce(op, x, axes, keepdims)
        return IndicesValues(index, value)
    arg.__name__ = "arg" + op
    arg.__doc__ = (f"Jittor's ``arg{op}(dim, keepdims=False)``: a tuple (int32 indices of the "
                   f"first {op}imum, values). ``dim=None`` searches the flattened Var.")
    return arg


argmax = _arg_extreme("max")
argmin = _arg_extreme("min")


def norm(x, p=2, dim=None, keepdims=False, keepdim=False):
    """Vector p-norm over ``dim`` (all elements by default): p = 1, 2, inf, -inf, 0 or any float;
    ``"fro"`` is the 2-norm. The gradient is 0 where the norm is 0, and for 0 < p < 1 at zero
    elements, as PyTorch's (a subgradient where the derivative does not exist).

    Example: ``jt.norm(jt.array([3.0, 4.0]))`` is 5."""
    keepdims = keepdims or keepdim
    x = _as_var(x)
    kwargs = {"dim": dim, "keepdims": keepdims}
    magnitude = unary("abs", x if dtypes.is_float(x.dtype) else cast(x, dtypes.DEFAULT_FLOAT))
    if p == "fro" or p == 2:
        return replace_at_zero(lambda total: unary("sqrt", total), sum(binary("mul", magnitude, magnitude), **kwargs))
    if p == 1:
        return sum(magnitude, **kwargs)
    if p == float("inf"):
        return max(magnitude, **kwargs)
    if p == float("-inf"):
        return min(magnitude, **kwargs)
    if p == 0:
        return sum(cast(binary("ne", magnitude, 0), magnitude.dtype), **kwargs)
    if isinstance(p, str):
        raise MetajitValueError(f"norm: unsupported p={p!r}")
    # 0 to a power p is 0 (inf for p < 0), with a zero gradient: a zero element, and a zero sum
    power_of_zero = 0.0 if p > 0 else float("inf")
    powers = replace_at_zero(lambda m: binary("pow", m, float(p)), magnitude, power_of_zero)
    return replace_at_zero(lambda total: binary("pow", total, 1.0 / p), sum(powers, **kwargs), power_of_zero)


def var(x, dim=None, unbiased=None, keepdims=False, correction=None, keepdim=False):
    """Variance over ``dim``; unbiased (divides by N-1) by default as in PyTorch.

    ``correction`` (PyTorch 2) overrides ``unbiased``: the divisor is ``N - correction``.
    """
    keepdims = keepdims or keepdim
    if correction is None:
        correction = 0 if unbiased is False else 1
    x = _as_var(x)
    x = x if dtypes.is_float(x.dtype) else cast(x, dtypes.DEFAULT_FLOAT)
    axes = graph.normalise_axes(dim, x.ndim, "var")
    centered = binary("sub", x, mean(x, dim=axes, keepdims=True))
    squares = sum(binary("mul", centered, centered), dim=axes, keepdims=keepdims)
    return binary("div", squares, builtins.max(_count(x, axes) - correction, 0))


def std(x, dim=None, unbiased=None, keepdims=False, correction=None, keepdim=False):
    """Standard deviation over ``dim``; unbiased by default (see `var`). Where the values
    are all equal (0) the gradient is 0, as PyTorch's, not ``inf * 0``."""
    return replace_at_zero(lambda variance: unary("sqrt", variance), var(x, dim, unbiased, keepdims, correction,
                                                                        keepdim))


MinMax = collections.namedtuple("aminmax", ["min", "max"])


def _all_if_empty(dim):
    """PyTorch's ``dim=()`` for all dims is metajit's ``None``."""
    return None if isinstance(dim, (tuple, list)) and not dim else dim


def amax(x, dim=None, keepdim=False, keepdims=False):
    """The maximum over ``dim`` (all dims for None or ``()``), as ``torch.amax``: nan
    propagates and the gradient is split evenly between tied maxima. Example: ``x.amax(1)``."""
    return max(x, dim=_all_if_empty(dim), keepdims=keepdim or keepdims)


def amin(x, dim=None, keepdim=False, keepdims=False):
    """The minimum over ``dim`` (see `amax`), as ``torch.amin``. Example: ``x.amin((0, 1))``."""
    return min(x, dim=_all_if_empty(dim), keepdims=keepdim or keepdims)


def aminmax(x, *, dim=None, keepdim=False):
    """``(min, max)`` over ``dim`` (all dims by default) as a named tuple, as ``torch.aminmax``.
    Example: ``low, high = x.aminmax(dim=0)``."""
    return MinMax(amin(x, dim, keepdim), amax(x, dim, keepdim))


def _float_var(x):
    x = _as_var(x)
    return x if dtypes.is_float(x.dtype) else cast(x, dtypes.DEFAULT_FLOAT)


def logsumexp(x, dim=None, keepdim=False):
    """``log(sum(exp(x)))`` over ``dim`` (all dims by default) without overflow: the
    maximum is taken out first (as a constant, so the gradient is ``softmax(x)``), as
    ``torch.logsumexp``. Example: ``jt.logsumexp(jt.array([1000.0, 1000.0]), 0)`` is 1000 + log 2."""
    x = _float_var(x)
    axes = graph.normalise_axes(_all_if_empty(dim), x.ndim, "logsumexp")
    largest = max(x, dim=axes, keepdims=True).detach()
    shift = where(isinf(largest), 0.0, largest)  # all -inf (or an inf) passes through the exp as it is
    total = unary("log", sum(unary("exp", x - shift), dim=axes, keepdims=True)) + shift
    return total if keepdim else _without_axes(total, axes)


def _without_axes(x, axes):
    """``x`` with the size-1 dims ``axes`` removed."""
    from .shape_ops import reshape
    return reshape(x, [size for axis, size in enumerate(x.shape) if axis not in axes])


def nansum(x, dim=None, keepdim=False, dtype=None):
    """The sum over ``dim`` treating nan as 0 (``torch.nansum``). Example: ``x.nansum(1)``."""
    x = _as_var(x) if dtype is None else cast(_as_var(x), dtype)
    if dtypes.is_float(x.dtype):
        x = where(isnan(x), 0.0, x)
    return sum(x, dim=dim, keepdims=keepdim)


def nanmean(x, dim=None, keepdim=False):
    """The mean over ``dim`` of the elements that are not nan (nan where all are), as
    ``torch.nanmean``. Example: ``x.nanmean(0)``."""
    x = _float_var(x)
    kept = ~isnan(x)
    return binary("div", sum(where(kept, x, 0.0), dim=dim, keepdims=keepdim),
                  cast(sum(kept, dim=dim, keepdims=keepdim), x.dtype))


def count_nonzero(x, dim=None):
    """The number of nonzero elements over ``dim`` (all by default), int64, as
    ``torch.count_nonzero``. Example: ``x.count_nonzero(0)``."""
    return sum(binary("ne", x, 0), dim=_all_if_empty(dim))


def sum_to_size(x, *size):
    """``x`` summed down to ``size``, which it must broadcast from (``Tensor.sum_to_size``):
    the gradient of a broadcast. Example: ``jt.ones(2, 3).sum_to_size(1, 3)`` is ``[[2, 2, 2]]``."""
    from .shape_ops import reshape
    x = _as_var(x)
    size = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
    leading = x.ndim - len(size)
    if leading < 0 or builtins.any(s not in (1, n) for s, n in zip(size, x.shape[leading:])):
        raise MetajitShapeError(f"sum_to_size: shape {tuple(x.shape)} does not broadcast from {tuple(size)}; "
                                "give a size it expands to")
    axes = list(range(leading)) + [leading + k for k, s in enumerate(size) if s == 1 and x.shape[leading + k] != 1]
    return reshape(sum(x, dim=axes, keepdims=True), size) if axes else x


def dist(x, other, p=2):
    """The ``p``-norm of ``x - other`` over all elements (``torch.dist``). Example: ``a.dist(b, 1)``."""
    return norm(binary("sub", x, other), p)


def renorm(x, p, dim, maxnorm):
    """``x`` with each slice along ``dim`` whose ``p``-norm exceeds ``maxnorm`` scaled down
    to it (by ``maxnorm / (norm + 1e-7)``, as ``torch.renorm``); differentiable through
    the norm. Example: ``weight.renorm(2, 0, 1.0)``."""
    x = _float_var(x)
    axis = graph.normalise_axes(dim, x.ndim, "renorm")[0]
    norms = norm(x, p, dim=[a for a in range(x.ndim) if a != axis], keepdims=True)
    return x * where(norms > maxnorm, maxnorm / (norms + 1e-7), 1.0)
