"""Attach operators and methods to `Var` (Jittor and PyTorch spellings).

Kept apart from `metajit.var` so the Var class stays small and the front-end
modules can import it without cycles.
"""
import collections
import math

from . import (creation, division, indexing, jittor_spellings, linalg, math_ops, misc, placement, plugins,
               reductions, shape_ops, statistics, tensor_ops)
from .errors import MetajitDtypeError, MetajitShapeError, MetajitTypeError, MetajitValueError
from .ir import dtypes
from .math_ops import binary, unary
from .var import Var


def _binary(op, reflected=False):
    if reflected:
        return lambda self, other: binary(op, other, self)
    return lambda self, other: binary(op, self, other)


def _in_place(operator):
    """The in-place form (``x += y``) of ``operator(x, y)``: ``x`` rebound to the result."""
    def method(self, other):
        return self._replace(operator(self, other)._node)
    return method


def _reflected(function):
    return lambda self, other: function(other, self)


def _equality(op, with_none):
    """``x == y`` / ``x != y`` element-wise; against None, ``with_none`` (False for ``==``,
    True for ``!=``), as PyTorch, so ``mask == None`` tests nothing by mistake."""
    def method(self, other):
        return with_none if other is None else binary(op, self, other)
    return method


def _format(self, spec):
    """``f"{loss:.3f}"``: a one-element Var formats as its Python scalar (PyTorch formats 0-d
    tensors so); without a spec, as ``str``."""
    if not spec:
        return str(self)
    if self.numel() != 1:
        raise MetajitTypeError(f"cannot format a Var of shape {tuple(self.shape)} with {spec!r}: format one "
                               f"element (f'{{x.item():{spec}}}') or the list (x.tolist())")
    return format(self.item(), spec)


def _to(self, *args, **kwargs):
    """PyTorch's ``x.to(device)``, ``x.to(dtype)``, ``x.to(device, dtype)``, ``x.to(other)``
    (`metajit.placement`): the same Var for the device in use, a converted one for a dtype."""
    _, dtype = placement.to_arguments(args, kwargs)
    return self if dtype is None else math_ops.cast(self, dtype)


def _unary(op):
    return lambda self: unary(op, self)


def _dtype_kept(name, op):
    """PyTorch's in-place ``x.add_(y)`` & co. (`_kept_in_place`); ``alpha`` scales ``y`` for add/sub."""
    def method(self, other, alpha=None):
        if alpha is not None:
            other = binary("mul", other, alpha)
        return _kept_in_place(self, binary(op, self, other), name)
    return method


def _kept_in_place(self, result, name):
    """``self`` rebound to ``result`` in its own dtype; a float result for an integer ``self``
    is refused, as PyTorch."""
    if result.dtype != self.dtype:
        if dtypes.is_float(result.dtype) and not dtypes.is_float(self.dtype):
            raise MetajitDtypeError(f"{name}: the result is {result.dtype}, which this {self.dtype} Var cannot "
                                    "hold in place; cast it first (x = x.float())")
        result = math_ops.cast(result, self.dtype)
    return self._replace(result._node)


def _divide(self, other, rounding_mode=None):
    """PyTorch's ``x.div(y, rounding_mode=None | "trunc" | "floor")`` (`division.divide`)."""
    return division.divide(self, other, rounding_mode)


def _divide_in_place(self, other, rounding_mode=None):
    return _kept_in_place(self, division.divide(self, other, rounding_mode), "div_")


def _opt_grad(self, optimizer):
    """Jittor's ``var.opt_grad(optimizer)``: this parameter's gradient from the optimizer's
    last ``backward(loss)`` (or ``loss.backward()``)."""
    if not any(p is self for p in optimizer.params):
        raise MetajitValueError("opt_grad: this Var is not a parameter of the optimizer given")
    if self.grad is None:
        raise MetajitValueError("opt_grad: no gradient yet; call optimizer.backward(loss) first")
    return self.grad


def _reindex_var(self, indexes, overflow_value=0, overflow_conditions=None):
    """Jittor's ``x.reindex_var(indexes)``: ``out[i...] = x[indexes[0][i...], indexes[1][i...], ...]``
    with one integer Var per dim of ``x``, all of the output's shape; positions reading
    outside ``x`` (or where an ``overflow_conditions`` expression holds) get ``overflow_value``."""
    indexes = list(indexes)
    if len(indexes) != self.ndim:
        raise MetajitShapeError(f"reindex_var: {len(indexes)} index Vars given for a {self.ndim}-d Var")
    shape = indexes[0].shape
    if any(i.shape != shape for i in indexes):
        raise MetajitShapeError(f"reindex_var: index Vars of shapes {[i.shape for i in indexes]} differ")
    loops = ", ".join(f"i{d}" for d in range(len(shape)))
    return shape_ops.reindex(self, shape, [f"@e{k}({loops})" for k in range(len(indexes))],
                             overflow_value=overflow_value, overflow_conditions=overflow_conditions or [],
                             extras=indexes)


def _fill(self, value):
    """PyTorch's ``fill_``: every element ``value``; earlier values get no gradient."""
    return self._replace(creation.full(self.shape, value, self.dtype)._node)


def _copy_from(self, source):
    """PyTorch's ``copy_``: ``source`` broadcast and cast into this Var, differentiable in ``source``."""
    value = shape_ops.broadcast_to(source if isinstance(source, Var) else creation.array(source), self.shape)
    return self._replace(math_ops.cast(value, self.dtype)._node)


def _logical_or_bitwise(bitwise, logical):
    def method(self, other):
        both_bool = self.dtype == dtypes.bool_ and (
            isinstance(other, bool) or getattr(other, "dtype", None) == dtypes.bool_)
        return binary(logical if both_bool else bitwise, self, other)
    return method


def _invert(self):
    return unary("logical_not" if self.dtype == dtypes.bool_ else "bitwise_not", self)


def _setitem(self, index, value):
    indexing.setitem(self, index, value)


def _cast_to(dtype):
    return lambda self: math_ops.cast(self, dtype)


def _softmax(log):
    def method(self, dim=-1, dtype=None):
        from .nn import functional  # (the layer functions sit above the Var methods)
        return (functional.log_softmax if log else functional.softmax)(self, dim, dtype=dtype)
    return method


def _new_filled(name, fill):
    """PyTorch's ``x.new_zeros(size)`` & co.: a new Var of ``x``'s dtype unless given, with
    torch's keyword arguments (`creation.factory_arguments`)."""
    def method(self, *size, dtype=None, **options):
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size
        return creation.factory_arguments(name, creation.full(shape, fill, dtype or self.dtype), **options)
    return method


def _new_full(self, size, fill_value, dtype=None, **options):
    return creation.factory_arguments("new_full", creation.full(tuple(size), fill_value, dtype or self.dtype),
                                      **options)


def _new_tensor(self, data, dtype=None, **options):
    return creation.factory_arguments("new_tensor", creation.array(data, dtype or self.dtype), **options)


def _allclose(self, other, rtol=1e-5, atol=1e-8, equal_nan=False):
    import numpy as np
    return bool(np.allclose(self.numpy(), np.asarray(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


def _reciprocal(self):
    return binary("div", 1.0, self)


def _log_base(base):
    import math
    return lambda self: binary("div", unary("log", self), math.log(base))


_OPERATORS = {
    "__add__": _binary("add"), "__radd__": _binary("add", True),
    "__sub__": _binary("sub"), "__rsub__": _binary("sub", True),
    "__mul__": _binary("mul"), "__rmul__": _binary("mul", True),
    "__truediv__": _binary("div"), "__rtruediv__": _binary("div", True),
    "__floordiv__": division.floor_divide, "__rfloordiv__": _reflected(division.floor_divide),
    "__mod__": division.remainder, "__rmod__": _reflected(division.remainder),
    "__pow__": _binary("pow"), "__rpow__": _binary("pow", True),
    "__lshift__": _binary("left_shift"), "__rshift__": _binary("right_shift"),
    "__and__": _logical_or_bitwise("bitwise_and", "logical_and"),
    "__or__": _logical_or_bitwise("bitwise_or", "logical_or"),
    "__xor__": _logical_or_bitwise("bitwise_xor", "logical_xor"),
    "__eq__": _equality("eq", False), "__ne__": _equality("ne", True), "__lt__": _binary("lt"),
    "__le__": _binary("le"), "__gt__": _binary("gt"), "__ge__": _binary("ge"),
    "__iadd__": _in_place(_binary("add")), "__isub__": _in_place(_binary("sub")),
    "__imul__": _in_place(_binary("mul")), "__itruediv__": _in_place(_binary("div")),
    "__ifloordiv__": _in_place(division.floor_divide), "__imod__": _in_place(division.remainder),
    "__ipow__": _in_place(_binary("pow")),
    "__neg__": _unary("neg"), "__pos__": lambda self: self, "__abs__": _unary("abs"),
    "__invert__": _invert,
    "__matmul__": lambda self, other: math_ops.matmul(self, other),
    "__rmatmul__": lambda self, other: math_ops.matmul(other, self),
    "__getitem__": indexing.getitem, "__setitem__": _setitem, "__format__": _format,
}

_METHODS = {
    "add": _binary("add"), "sub": _binary("sub"), "subtract": _binary("sub"),
    "mul": _binary("mul"), "multiply": _binary("mul"), "div": _divide,
    "divide": _divide, "floor_divide": division.floor_divide, "mod": division.remainder,
    "pow": _binary("pow"), "maximum": _binary("maximum"), "minimum": _binary("minimum"),
    "equal": _binary("eq"), "not_equal": _binary("ne"), "less": _binary("lt"),
    "eq": _binary("eq"), "ne": _binary("ne"), "lt": _binary("lt"), "le": _binary("le"),
    "gt": _binary("gt"), "ge": _binary("ge"),
    "softmax": _softmax(False), "log_softmax": _softmax(True), "allclose": _allclose,
    "view_as": lambda self, other: shape_ops.reshape(self, other.shape),
    "reshape_as": lambda self, other: shape_ops.reshape(self, other.shape),
    "type_as": lambda self, other: math_ops.cast(self, other.dtype),
    "new_zeros": _new_filled("new_zeros", 0), "new_ones": _new_filled("new_ones", 1),
    "new_empty": _new_filled("new_empty", 0),
    "new_full": _new_full, "new_tensor": _new_tensor,
    "less_equal": _binary("le"), "greater": _binary("gt"), "greater_equal": _binary("ge"),
    "logical_and": _binary("logical_and"), "logical_or": _binary("logical_or"),
    "logical_xor": _binary("logical_xor"), "logical_not": _unary("logical_not"),
    "bitwise_and": _binary("bitwise_and"), "bitwise_or": _binary("bitwise_or"),
    "bitwise_xor": _binary("bitwise_xor"), "bitwise_not": _unary("bitwise_not"),
    "matmul": math_ops.matmul, "clamp": math_ops.clamp, "clip": math_ops.clamp,
    "sign": math_ops.sign, "relu": math_ops.relu, "isnan": math_ops.isnan,
    "isinf": math_ops.isinf, "isfinite": math_ops.isfinite,
    "sqr": lambda self: binary("mul", self, self), "square": lambda self: binary("mul", self, self),
    "rsqrt": lambda self: binary("div", 1.0, unary("sqrt", self)), "reciprocal": _reciprocal,
    "log2": _log_base(2), "log10": _log_base(10),
    "log1p": _unary("log1p"), "expm1": _unary("expm1"),
    "cast": math_ops.cast, "astype": math_ops.cast, "to": _to,
    "cpu": lambda self: _to(self, "cpu"), "cuda": lambda self, device=None: _to(self, "cuda"),
    "float": _cast_to("float32"), "float32": _cast_to("float32"), "double": _cast_to("float64"),
    "float64": _cast_to("float64"), "half": _cast_to("float16"), "float16": _cast_to("float16"),
    "int": _cast_to("int32"), "int32": _cast_to("int32"), "long": _cast_to("int64"),
    "int64": _cast_to("int64"), "int8": _cast_to("int8"), "int16": _cast_to("int16"),
    "uint8": _cast_to("uint8"), "bool": _cast_to("bool"),
    "clone": lambda self: creation.array(self), "copy": lambda self: creation.array(self),
    "contiguous": lambda self, memory_format=None: self, "nonzero": math_ops.nonzero,
    "sum": reductions.sum, "mean": reductions.mean, "max": reductions.max,
    "min": reductions.min, "prod": reductions.prod, "product": reductions.prod,
    "any": reductions.any, "all": reductions.all, "argmax": reductions.argmax,
    "argmin": reductions.argmin, "norm": reductions.norm, "var": reductions.var,
    "std": reductions.std,
    "reshape": shape_ops.reshape, "view": shape_ops.view, "transpose": shape_ops.transpose,
    "permute": shape_ops.permute, "t": shape_ops.t, "flatten": shape_ops.flatten,
    "squeeze": shape_ops.squeeze, "unsqueeze": shape_ops.unsqueeze,
    "broadcast": shape_ops.broadcast, "broadcast_to": shape_ops.broadcast_to,
    "broadcast_var": shape_ops.broadcast,
    "expand": shape_ops.expand, "expand_as": shape_ops.expand_as, "flip": shape_ops.flip,
    "repeat": shape_ops.repeat, "tile": shape_ops.tile, "split": shape_ops.split,
    "chunk": shape_ops.chunk, "reindex": shape_ops.reindex,
    "reindex_reduce": shape_ops.reindex_reduce,
    "masked_fill": tensor_ops.masked_fill, "index_select": tensor_ops.index_select,
    "gather": tensor_ops.gather, "tril": tensor_ops.tril, "triu": tensor_ops.triu,
    "diag": tensor_ops.diag, "trace": tensor_ops.trace, "outer": tensor_ops.outer, "roll": tensor_ops.roll,
    "clamp_": lambda self, *args, **kwargs: self._replace(math_ops.clamp(self, *args, **kwargs)._node),
    "masked_fill_": lambda self, mask, value: self._replace(tensor_ops.masked_fill(self, mask, value)._node),
    "cumsum": tensor_ops.cumsum, "cumprod": tensor_ops.cumprod, "sort": tensor_ops.sort,
    "argsort": tensor_ops.argsort, "topk": tensor_ops.topk, "kthvalue": tensor_ops.kthvalue,
    "histc": tensor_ops.histc, "bincount": tensor_ops.bincount, "cross": tensor_ops.cross,
    "erfinv": tensor_ops.erfinv, "scatter": tensor_ops.scatter, "scatter_add": tensor_ops.scatter_add,
    "masked_select": tensor_ops.masked_select, "unique": tensor_ops.unique,
    "scatter_": lambda self, *args, **kwargs: self._replace(tensor_ops.scatter(self, *args, **kwargs)._node),
    "scatter_add_": lambda self, *args: self._replace(tensor_ops.scatter_add(self, *args)._node),
    "bmm": tensor_ops.bmm, "baddbmm": tensor_ops.baddbmm, "addmm": tensor_ops.addmm,
    "add_": _dtype_kept("add_", "add"), "sub_": _dtype_kept("sub_", "sub"), "mul_": _dtype_kept("mul_", "mul"),
    "div_": _divide_in_place, "pow_": _dtype_kept("pow_", "pow"),
    "zero_": lambda self: _fill(self, 0), "fill_": _fill, "copy_": _copy_from,
    "dim": lambda self: self.ndim, "ndimension": lambda self: self.ndim,
    "opt_grad": _opt_grad, "reindex_var": _reindex_var,
    "reduce": jittor_spellings.reduce, "arg_reduce": jittor_spellings.arg_reduce,
}
for _op in ("add", "multiply", "maximum", "minimum", "logical_and", "logical_or"):
    _METHODS["reduce_" + _op] = getattr(jittor_spellings, "reduce_" + _op)

for _name in ("exp", "log", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
              "tanh", "asinh", "acosh", "atanh", "sigmoid", "erf", "floor", "ceil", "round",
              "abs", "neg"):
    _METHODS[_name] = _unary(_name)
for _alias, _name in (("arcsin", "asin"), ("arccos", "acos"), ("arctan", "atan"),
                      ("arcsinh", "asinh"), ("arccosh", "acosh"), ("arctanh", "atanh"),
                      ("negative", "neg")):
    _METHODS[_alias] = _unary(_name)


# ---- PyTorch's further Tensor methods -------------------------------------------------------

def _device(self):
    """PyTorch's ``x.device``: the `placement.device` in use (the same for every Var):
    ``"cuda:0"`` on cuda, ``"cpu"`` on the host's devices (cpu and the reference
    interpreter), the backend's name on any other."""
    kind = plugins.current().description.device_kind
    if kind == "cuda":
        return placement.device("cuda:0")
    return placement.device("cpu" if kind in ("cpu", "interpreter") else plugins.get_device())


def _get_device(self):
    """PyTorch's ``x.get_device()``: -1 on the host, else the device's index (0)."""
    current = _device(self)
    return -1 if current.type == "cpu" else current.index or 0


_TENSOR_TYPES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
                 "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor", "int8": "CharTensor",
                 "uint8": "ByteTensor", "bool": "BoolTensor"}


def _type(self, dtype=None, non_blocking=False):
    """PyTorch's ``x.type()``: the tensor type's name (``"torch.FloatTensor"``;
    ``"torch.cuda.FloatTensor"`` on cuda); ``x.type(dtype)`` with a dtype or such a name:
    ``x`` converted to it."""
    if dtype is None:
        return ("torch.cuda." if _device(self).type == "cuda" else "torch.") + _TENSOR_TYPES[str(self.dtype)]
    if isinstance(dtype, str) and dtype.endswith("Tensor"):
        names = {name: key for key, name in _TENSOR_TYPES.items()}
        if dtype.rsplit(".", 1)[-1] not in names:
            raise MetajitDtypeError(f"type: unknown tensor type {dtype!r}; use one of "
                                    f"{', '.join('torch.' + name for name in names)} or a dtype")
        dtype = names[dtype.rsplit(".", 1)[-1]]
    return math_ops.cast(self, placement.as_dtype(dtype))


def _stride(self, dim=None):
    """PyTorch's ``x.stride()``: the strides, in elements, of ``x`` laid out contiguously
    (metajit's layout), or that of dim ``dim``."""
    strides, step = [], 1
    for size in reversed(self.shape):
        strides.append(step)
        step *= max(size, 1)
    strides = tuple(reversed(strides))
    return strides if dim is None else strides[dim]


SVD = collections.namedtuple("svd", ["U", "S", "V"])


def _svd(self, some=True, compute_uv=True):
    """PyTorch's ``x.svd()`` (``torch.svd``): the named tuple ``(U, S, V)`` with ``V``, not
    `metajit.linalg.svd`'s ``Vh``; reduced unless ``some=False``; without ``compute_uv``,
    U and V are zeros (m x m and n x n), as torch's."""
    u, values, vh = linalg.svd(self, full_matrices=not some)
    if not compute_uv:
        batch, (m, n) = tuple(self.shape[:-2]), self.shape[-2:]
        return SVD(creation.zeros(*batch, m, m, dtype=values.dtype), values,
                   creation.zeros(*batch, n, n, dtype=values.dtype))
    return SVD(u, values, shape_ops.transpose(vh, -2, -1))


def _in_place_version(function):
    """PyTorch's in-place ``x.f_(...)`` of ``f``: ``x`` rebound to the result, cast to its dtype."""
    def method(self, *args, **kwargs):
        return self._replace(math_ops.cast(function(self, *args, **kwargs), self.dtype)._node)
    return method


_TORCH_METHODS = {
    "amax": reductions.amax, "amin": reductions.amin, "aminmax": reductions.aminmax,
    "logsumexp": reductions.logsumexp, "nansum": reductions.nansum, "nanmean": reductions.nanmean,
    "count_nonzero": reductions.count_nonzero, "sum_to_size": reductions.sum_to_size,
    "dist": reductions.dist, "renorm": reductions.renorm,
    "atan2": math_ops.atan2, "arctan2": math_ops.atan2, "hypot": math_ops.hypot,
    "clamp_min": math_ops.clamp_min, "clamp_max": math_ops.clamp_max, "lerp": math_ops.lerp,
    "addcmul": math_ops.addcmul, "addcdiv": math_ops.addcdiv, "logaddexp": math_ops.logaddexp,
    "logaddexp2": math_ops.logaddexp2, "deg2rad": math_ops.deg2rad, "rad2deg": math_ops.rad2deg,
    "exp2": math_ops.exp2, "erfc": math_ops.erfc, "trunc": math_ops.trunc, "fix": math_ops.trunc,
    "frac": math_ops.frac, "fmod": division.fmod, "remainder": division.remainder, "copysign": math_ops.copysign,
    "sgn": math_ops.sign, "signbit": math_ops.signbit, "heaviside": math_ops.heaviside, "sinc": math_ops.sinc,
    "xlogy": math_ops.xlogy, "logit": math_ops.logit, "lgamma": math_ops.lgamma, "digamma": math_ops.digamma,
    "nan_to_num": math_ops.nan_to_num, "isclose": math_ops.isclose, "isposinf": math_ops.isposinf,
    "isneginf": math_ops.isneginf, "isreal": math_ops.isreal, "float_power": math_ops.float_power,
    "gcd": math_ops.gcd, "lcm": math_ops.lcm, "positive": lambda self: self, "absolute": _unary("abs"),
    "true_divide": _binary("div"), "where": lambda self, condition, y: math_ops.where(condition, self, y),
    "mm": tensor_ops.mm, "mv": tensor_ops.mv, "dot": tensor_ops.dot, "vdot": tensor_ops.dot,
    "inner": tensor_ops.inner, "ger": tensor_ops.outer, "kron": tensor_ops.kron, "addmv": tensor_ops.addmv,
    "addr": tensor_ops.addr, "cummax": tensor_ops.cummax, "cummin": tensor_ops.cummin,
    "logcumsumexp": tensor_ops.logcumsumexp, "diff": tensor_ops.diff, "take": tensor_ops.take,
    "take_along_dim": tensor_ops.take_along_dim, "index_add": tensor_ops.index_add,
    "index_copy": tensor_ops.index_copy, "index_fill": tensor_ops.index_fill,
    "masked_scatter": tensor_ops.masked_scatter, "scatter_reduce": tensor_ops.scatter_reduce,
    "repeat_interleave": tensor_ops.repeat_interleave, "diag_embed": tensor_ops.diag_embed,
    "diagflat": tensor_ops.diagflat, "argwhere": tensor_ops.argwhere,
    "unique_consecutive": tensor_ops.unique_consecutive,
    "unbind": misc.unbind, "narrow": shape_ops.narrow, "movedim": shape_ops.movedim,
    "moveaxis": shape_ops.movedim, "swapaxes": shape_ops.swapaxes, "swapdims": shape_ops.swapaxes,
    "unflatten": shape_ops.unflatten, "ravel": shape_ops.ravel, "tensor_split": shape_ops.tensor_split,
    "split_with_sizes": lambda self, split_sizes, dim=0: shape_ops.split(self, list(split_sizes), dim),
    "hsplit": shape_ops.hsplit, "vsplit": shape_ops.vsplit, "dsplit": shape_ops.dsplit,
    "fliplr": shape_ops.fliplr, "flipud": shape_ops.flipud, "rot90": shape_ops.rot90, "unfold": shape_ops.unfold,
    "diagonal": lambda self, offset=0, dim1=0, dim2=1: linalg.diagonal(self, offset, dim1, dim2),
    "median": statistics.median, "nanmedian": statistics.nanmedian, "mode": statistics.mode,
    "quantile": statistics.quantile, "nanquantile": statistics.nanquantile, "cov": statistics.cov,
    "corrcoef": statistics.corrcoef, "multinomial": statistics.multinomial, "bernoulli": statistics.bernoulli,
    "det": linalg.det, "logdet": linalg.logdet, "slogdet": linalg.slogdet, "inverse": linalg.inv,
    "pinverse": lambda self, rcond=1e-15: linalg.pinv(self, rtol=rcond), "cholesky": linalg.cholesky,
    "qr": lambda self, some=True: linalg.qr(self, "reduced" if some else "complete"), "svd": _svd,
    "matrix_power": linalg.matrix_power,
    "is_floating_point": lambda self: dtypes.is_float(self.dtype),
    "is_signed": lambda self: self.dtype not in (dtypes.uint8, dtypes.bool_),
    "is_complex": lambda self: False, "is_same_size": lambda self, other: tuple(self.shape) == tuple(other.shape),
    "nelement": lambda self: self.numel(), "element_size": lambda self: self.dtype.itemsize,
    "stride": _stride, "is_contiguous": lambda self, memory_format=None: True, "get_device": _get_device,
    "type": _type, "byte": _cast_to("uint8"), "char": _cast_to("int8"), "short": _cast_to("int16"),
}
for _name in ("addcmul", "addcdiv", "lerp", "clamp_min", "clamp_max", "index_add", "index_copy", "index_fill",
              "masked_scatter", "scatter_reduce", "nan_to_num", "fmod", "remainder", "trunc", "frac", "floor_divide"):
    _TORCH_METHODS[_name + "_"] = _in_place_version(_TORCH_METHODS.get(_name) or _METHODS[_name])
for _name in ("exp", "log", "log2", "log10", "log1p", "expm1", "exp2", "sqrt", "rsqrt", "abs", "neg", "sign", "sgn",
              "relu", "sigmoid", "tanh", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh",
              "atanh", "erf", "erfc", "erfinv", "floor", "ceil", "round", "reciprocal", "square", "logit", "lgamma",
              "digamma", "deg2rad", "rad2deg", "sinc", "xlogy", "hypot", "atan2", "copysign", "float_power", "t",
              "squeeze", "unsqueeze", "transpose", "addmm", "baddbmm", "addmv", "addr"):
    _TORCH_METHODS[_name + "_"] = _in_place_version(_TORCH_METHODS.get(_name) or _METHODS[_name])


def _drawn(sample):
    """PyTorch's in-place random fill ``x.f_(...)``: ``x`` takes ``sample(x, ...)`` (drawn
    from metajit's generator, so ``jt.set_global_seed`` repeats it), without history."""
    def method(self, *args, generator=None, **kwargs):
        if generator is not None:
            raise MetajitValueError("metajit's random numbers come from one generator: seed it with "
                                    "jt.set_global_seed instead of passing generator=")
        return self.assign(math_ops.cast(sample(self, *args, **kwargs), self.dtype))
    return method


def _uniform(x, low=0.0, high=1.0):
    return creation.rand(*x.shape) * (high - low) + low


def _random_integers(x, low=0, high=None):
    """Integers in ``[low, high)`` (one argument: ``[0, low)``; none: up to the largest
    integer ``x``'s dtype holds exactly), as PyTorch's ``random_``."""
    if high is None:
        low, high = (0, low) if low else (0, 2 ** (24 if x.dtype == dtypes.float32 else 53) + 1
                                          if dtypes.is_float(x.dtype) else dtypes.iinfo(x.dtype).max)
    return creation.randint(low, high, shape=tuple(x.shape), dtype="int64")


_TORCH_METHODS.update({
    "uniform_": _drawn(_uniform),
    "normal_": _drawn(lambda x, mean=0.0, std=1.0: creation.randn(*x.shape) * std + mean),
    "log_normal_": _drawn(lambda x, mean=1.0, std=2.0: unary("exp", creation.randn(*x.shape) * std + mean)),
    "bernoulli_": _drawn(lambda x, p=0.5: binary("lt", creation.rand(*x.shape), p)),
    "exponential_": _drawn(lambda x, lambd=1.0: unary("neg", unary("log1p", unary("neg", creation.rand(*x.shape))))
                           / lambd),
    "geometric_": _drawn(lambda x, p: unary("ceil", unary("log1p", unary("neg", creation.rand(*x.shape)))
                                             / math.log1p(-p))),
    "cauchy_": _drawn(lambda x, median=0.0, sigma=1.0: unary("tan", (creation.rand(*x.shape) - 0.5) * math.pi)
                      * sigma + median),
    "random_": _drawn(_random_integers),
    "index_put_": lambda self, indices, values, accumulate=False: indexing.setitem(self, tuple(indices), values,
                                                                                   accumulate),
    "index_put": lambda self, indices, values, accumulate=False: indexing.setitem(creation.array(self),
                                                                                  tuple(indices), values, accumulate),
})
_TORCH_PROPERTIES = {
    "device": _device, "is_cuda": lambda self: _device(self).type == "cuda",
    "is_cpu": lambda self: _device(self).type == "cpu", "itemsize": lambda self: self.dtype.itemsize,
    "nbytes": lambda self: self.numel() * self.dtype.itemsize,
}


def _attach():
    for name, function in {**_OPERATORS, **_METHODS, **_TORCH_METHODS}.items():
        setattr(Var, name, function)
    for name, getter in _TORCH_PROPERTIES.items():
        setattr(Var, name, property(getter))
    Var.T = property(lambda self: shape_ops.transpose(self))
    Var.mT = property(lambda self: shape_ops.transpose(self, -2, -1))


_attach()
