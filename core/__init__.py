"""metajit: a lazy, JIT-fused deep-learning framework built on a few meta-operators.

    import metajit as jt
    x = jt.array([[1.0, 2.0], [3.0, 4.0]])
    y = (x.exp() * 2).sum()
    print(y.item(), jt.grad(y, x))

See docs/architecture.md for the layers and docs/env.md for settings.
"""
import os as _os

# Idle OpenBLAS threads otherwise spin ~0.1 s after each BLAS call and starve the next
# fused kernel; OpenBLAS reads this when numpy loads it (see docs/env.md).
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
from . import debug, garbage_collection, plugins
from .debug import profile_scope
from .ir import dtypes
from .gradients import grad, jvp, vjp
from .creation import (BoolTensor, ByteTensor, CharTensor, DoubleTensor, FloatTensor, HalfTensor, IntTensor,
                       LongTensor, ShortTensor, Tensor, arange, array, as_tensor, empty, empty_like, eye, from_numpy,
                       full, full_like,
                       get_default_dtype, is_tensor, linspace, manual_seed, ones, ones_like, rand, rand_like, randint,
                       randint_like, randn, randn_like, random, seed, set_default_dtype, set_global_seed, tensor, zeros,
                       zeros_like)
from .ir.dtypes import DType, finfo, iinfo, bool_, float16, float32, float64, int8, int16, int32, int64, uint8
from .errors import (MetajitCodegenError, MetajitCompileError, MetajitDeviceError, MetajitDtypeError,
                     MetajitError, MetajitFileNotFoundError, MetajitIndexError, MetajitMemoryError, MetajitShapeError,
                     MetajitTypeError, MetajitValueError, MetajitZeroDivisionError)
from .division import fmod
from .flags import enable_grad, flag_scope, flags, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .math_ops import (addcdiv, addcmul, atan2, cast, clamp, clamp_max, clamp_min, copysign, deg2rad, digamma, erfc,
                       exp2, float_power, frac, gcd, heaviside, hypot, isclose, isfinite, isin, isinf, isnan, isneginf,
                       isposinf, isreal, lcm, lerp, lgamma, logaddexp, logaddexp2, logit, matmul, nan_to_num, nonzero,
                       rad2deg, relu, sign, signbit, sinc, trunc, where, xlogy)
from .placement import channels_last, channels_last_3d, contiguous_format, device, preserve_format
from .plugins import devices, get_device, set_device
from .reductions import (all, amax, amin, aminmax, any, argmax, argmin, count_nonzero, dist, logsumexp, max, mean,
                         min, nanmean, nansum, norm, prod, renorm, std, sum, var)
from .shape_ops import (broadcast, broadcast_to, cat, chunk, concat, dsplit, expand, flatten, flip, fliplr, flipud,
                        hsplit, moveaxis, movedim, narrow, pad, permute, ravel, reindex, reindex_reduce, repeat,
                        reshape, rot90, split, squeeze, stack, swapaxes, t, tensor_split, tile, transpose, unflatten,
                        unsqueeze, view, vsplit)
from .tensor_ops import (addmm, addmv, addr, argsort, argwhere, baddbmm, bincount, bmm, cross, cummax, cummin,
                         cumprod, cumsum, diag, diag_embed, diagflat, diff, dot, einsum, erfinv, gather, histc,
                         index_add, index_copy, index_fill, index_select, inner, kron, kthvalue, logcumsumexp,
                         masked_fill, masked_scatter, masked_select, meshgrid, mm, mv, outer, repeat_interleave, roll,
                         scatter, scatter_add, scatter_reduce, searchsorted, sort, take, take_along_dim, topk, trace,
                         tril, triu, unique, unique_consecutive)
from .statistics import (bernoulli, corrcoef, cov, median, mode, multinomial, nanmedian, nanquantile,
                         quantile)
from .jittor_spellings import (arg_reduce, binary, reduce, reduce_add, reduce_logical_and, reduce_logical_or,
                               reduce_maximum, reduce_minimum, reduce_multiply, ternary, unary)
from .code_op import code
from .compiled import compile
from .function import Function
from .numpy_code import numpy_code
from .var import (Var, clean, display_memory_info, fetch_sync, liveness_info, memory_info, number_of_lived_vars, sync,
                  sync_all)
from .var import collect_garbage as gc
from . import amp, autograd, cuda, dataset, func, init, linalg, lr_scheduler, misc, nn, optim, transform, utils
from .amp import autocast
from .distributed import in_mpi, mpi, mpi_all_reduce, mpi_broadcast, mpi_reduce, rank, world_size
from .func import vmap
from .nn.module import Module  # Jittor: `from jittor import Module`
from .nn.functional import log_softmax, softmax
from .serialization import load, save
from . import var_methods as _var_methods  # attaches operators and methods to Var
from .ir import graph as _graph

__version__ = "0.1.0"
garbage_collection.relax_thresholds()

bool = bool_
float = float32
double = float64
half = float16
int = int32
long = int64

set_seed = set_global_seed
clip = clamp
arctan2 = atan2
fix = trunc
sgn = sign
ger = outer
vdot = dot
swapdims = swapaxes
unbind = misc.unbind
det, inverse, logdet, slogdet, cholesky, matrix_power = (linalg.det, linalg.inv, linalg.logdet, linalg.slogdet,
                                                         linalg.cholesky, linalg.matrix_power)


def index(shape, dim, dtype="int32"):
    """Jittor's ``jt.index``: a Var whose element at ``(i0, i1, ...)`` is ``i<dim>``.

    Example: ``jt.index((2, 3), 1)`` is ``[[0, 1, 2], [0, 1, 2]]``.
    """
    shape = tuple(shape)
    return Var.from_node(_graph.index_leaf(shape, _graph.normalise_axes(dim, len(shape))[0],
                                           dtypes.as_dtype(dtype)))


def _module_function(method_name):
    method = getattr(Var, method_name)

    def function(x, *args, **kwargs):
        if not isinstance(x, Var):
            x = array(x)
        return method(x, *args, **kwargs)
    function.__name__ = method_name
    function.__doc__ = f"``jt.{method_name}(x, ...)`` is ``x.{method_name}(...)``."
    return function


for _name in ("exp", "log", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
              "tanh", "asinh", "acosh", "atanh", "sigmoid", "erf", "floor", "ceil", "round", "abs",
              "neg", "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "log2",
              "log10", "log1p", "expm1", "rsqrt", "reciprocal", "sqr", "square",
              "maximum", "minimum", "logical_and", "logical_or", "logical_xor", "logical_not",
              "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "pow", "floor_divide",
              "mod", "equal", "not_equal", "less", "less_equal", "greater", "greater_equal",
              "add", "sub", "mul", "div", "subtract", "multiply", "divide", "remainder", "true_divide",
              "absolute", "positive", "diagonal", "pinverse", "qr", "svd", "split_with_sizes", "is_floating_point",
              "is_signed", "is_complex", "is_same_size", "numel", "allclose"):
    globals()[_name] = _module_function(_name)
del _name


def __getattr__(name):
    """``jt.has_cuda``: whether a ``cuda`` device is installed and usable here (asked lazily:
    listing devices probes every backend); ``jt.models`` (the model zoo) and ``jt.data`` (data pipes),
    imported on first use."""
    if name == "has_cuda":
        return cuda.is_available()
    if name in ("models", "data"):
        import importlib
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'metajit' has no attribute {name!r}")
