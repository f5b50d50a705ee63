"""Parameter initialisation (``metajit.init``), matching ``torch.nn.init`` distributions.

Each function fills a Var in place (it keeps its identity) and returns it; a numpy array
(PyTorch scripts pass ``param.data``: metajit's writes back to its Var) is filled in place.
"""
import math

import numpy as np

from . import creation
from .passes import side_effects
from .errors import MetajitValueError


def _numpy_dtype(var):
    return var.dtype if isinstance(var, np.ndarray) else var.dtype.numpy


def _fill(var, values):
    """Give ``var`` the ``values`` (all of them, or one broadcast) and return it: a Var keeps its
    identity (`Var.assign`); a numpy array, as PyTorch scripts pass ``param.data`` (a
    `metajit.host_view.HostView`, which writes back to its Var), is filled in place."""
    values, shape = np.asarray(values, dtype=_numpy_dtype(var)), tuple(var.shape)
    values = values.reshape(shape) if values.size == math.prod(shape) else np.broadcast_to(values, shape)
    if isinstance(var, np.ndarray):
        np.copyto(var, values)
        return var
    return var.assign(values)


def _sample(shape, draw):
    side_effects.note("it drew random numbers")
    return draw(creation._generator, shape)


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for ``nonlinearity`` (PyTorch's table)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid", "conv_transpose2d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise MetajitValueError(f"unknown nonlinearity {nonlinearity!r}")


def fan_in_and_fan_out(var):
    """``(fan_in, fan_out)`` of a weight shaped (out, in, *kernel)."""
    if var.ndim < 2:
        raise MetajitValueError(f"fan in/out need at least 2 dims, got shape {var.shape}")
    receptive = int(np.prod(var.shape[2:])) if var.ndim > 2 else 1
    return var.shape[1] * receptive, var.shape[0] * receptive


def _float32(var):
    # float32 parameters are drawn in float32: numpy's float32 samplers take half the time
    # and memory, which counts for models with 100M+ parameters (VGG's classifier)
    return np.float32 if _numpy_dtype(var) == np.float32 else np.float64


def _affine(values, scale, shift):
    values *= values.dtype.type(scale)
    values += values.dtype.type(shift)
    return values


def uniform_(var, a=0.0, b=1.0):
    """Uniform on ``[a, b)``."""
    dtype = _float32(var)
    return _fill(var, _sample(var.shape, lambda g, s: _affine(g.random(s, dtype=dtype), b - a, a)))


def normal_(var, mean=0.0, std=1.0):
    """Normal with ``mean`` and ``std``."""
    dtype = _float32(var)
    return _fill(var, _sample(var.shape, lambda g, s: _affine(g.standard_normal(s, dtype=dtype), std, mean)))


def trunc_normal_(var, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Normal with ``mean`` and ``std`` truncated to ``[a, b]`` (absolute bounds, as
    ``torch.nn.init.trunc_normal_``), by redrawing the values that fall outside.

    Example: ``init.trunc_normal_(layer.weight, std=0.01)``.
    """
    if not a < b:
        raise MetajitValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")

    def draw(generator, shape):
        values = generator.normal(mean, std, shape)
        outside = (values < a) | (values > b)
        while outside.any():
            values[outside] = generator.normal(mean, std, int(outside.sum()))
            outside = (values < a) | (values > b)
        return values
    return _fill(var, _sample(var.shape, draw))


def constant_(var, value):
    """Every element ``value`` (for a Var, a lazy broadcast: no host copy)."""
    return _fill(var, value) if isinstance(var, np.ndarray) else var.assign(value)


def zeros_(var):
    """Zeros."""
    return constant_(var, 0)


def ones_(var):
    """Ones."""
    return constant_(var, 1)


def eye(shape, dtype="float32"):
    """The identity matrix of ``shape`` (an int ``n`` or ``(n, m)``), Jittor's ``init.eye``."""
    return creation.eye(shape, dtype=dtype)


def eye_like(var):
    """The identity matrix of ``var``'s (2-d) shape and dtype, Jittor's ``init.eye_like``."""
    return creation.eye(_matrix_shape(var, "eye_like"), dtype=var.dtype)


def eye_(var):
    """Ones on the diagonal of a 2-d ``var``, zeros elsewhere (``torch.nn.init.eye_``)."""
    rows, columns = _matrix_shape(var, "eye_")
    if isinstance(var, np.ndarray):
        return _fill(var, np.eye(rows, columns))
    return var.assign(creation.eye(rows, columns, dtype=var.dtype))


def _matrix_shape(var, name):
    if var.ndim != 2:
        raise MetajitValueError(f"init.{name} needs a 2-d Var, got shape {tuple(var.shape)}")
    return var.shape


def xavier_uniform_(var, gain=1.0):
    """Glorot uniform: bound ``gain * sqrt(6 / (fan_in + fan_out))``."""
    fan_in, fan_out = fan_in_and_fan_out(var)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(var, -bound, bound)


def xavier_normal_(var, gain=1.0):
    """Glorot normal: std ``gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = fan_in_and_fan_out(var)
    return normal_(var, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(var, a, mode, nonlinearity):
    fan_in, fan_out = fan_in_and_fan_out(var)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(var, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """He uniform: bound ``sqrt(3) * gain / sqrt(fan)``."""
    bound = math.sqrt(3.0) * _kaiming_std(var, a, mode, nonlinearity)
    return uniform_(var, -bound, bound)


def kaiming_normal_(var, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """He normal: std ``gain / sqrt(fan)``."""
    return normal_(var, 0.0, _kaiming_std(var, a, mode, nonlinearity))


def fan_in_uniform_(weight, bias=None):
    """PyTorch's initialisation of Linear and convolution layers (their ``reset_parameters``):
    ``weight`` He-uniform with ``a = sqrt(5)``, ``bias`` (when given) uniform within
    ``1 / sqrt(fan_in)``. Example: ``init.fan_in_uniform_(layer.weight, layer.bias)``."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = fan_in_and_fan_out(weight)[0]
        bound = 1 / math.sqrt(fan_in) if fan_in else 0
        uniform_(bias, -bound, bound)
    return weight


def orthogonal_(var, gain=1.0):
    """A (semi-)orthogonal matrix times ``gain``, as ``torch.nn.init.orthogonal_``: ``var``
    (2 or more dims) seen as (rows, the rest) gets the Q factor of a QR decomposition of
    standard normal values, signed by R's diagonal, so its rows (or columns, whichever are
    fewer) are orthonormal. Example: ``init.orthogonal_(rnn.weight_hh_l0)``."""
    if var.ndim < 2:
        raise MetajitValueError(f"orthogonal_ needs a Var of 2 or more dims, got shape {tuple(var.shape)}")
    rows = var.shape[0]
    columns = math.prod(var.shape) // rows if rows else 0

    def draw(generator, shape):
        values = generator.standard_normal((rows, columns))
        if rows < columns:
            values = values.T
        q, r = np.linalg.qr(values)
        q *= np.sign(np.diagonal(r))
        return (q.T if rows < columns else q) * gain
    return _fill(var, _sample(var.shape, draw))
