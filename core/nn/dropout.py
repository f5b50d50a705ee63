"""Dropout: element-wise (`dropout`), whole channels (`dropout1d` / `2d` / `3d`) and the
self-normalising alpha variants (`alpha_dropout`, `feature_alpha_dropout`), as functions
and modules, with PyTorch's scaling; the masks come from metajit's random numbers, so
``jt.set_global_seed`` repeats them."""
import math

from ..creation import rand
from ..errors import MetajitShapeError, MetajitValueError
from ..math_ops import binary, where
from .functional import SELU_ALPHA, SELU_SCALE, _var
from .module import Module

# the value SELU saturates to, negated: alpha dropout drops to it
_SELU_NEGATIVE_SATURATION = SELU_ALPHA * SELU_SCALE


def _check_probability(p):
    if not 0 <= p <= 1:
        raise MetajitValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _kept(x, p, per_channel):
    """A random mask, true with probability ``1 - p``: per element, or per (sample,
    channel) of an (N, C, ...) ``x`` with ``per_channel``."""
    if per_channel and x.ndim < 2:
        raise MetajitShapeError(f"channel dropout needs an (N, C, ...) input, got shape {tuple(x.shape)}")
    shape = tuple(x.shape[:2]) + (1,) * (x.ndim - 2) if per_channel else tuple(x.shape)
    return binary("ge", rand(*shape), p)


def _without_randomness(x, p, training):
    """``x`` itself when dropout keeps everything (eval mode, ``p`` 0), zeros when it drops
    everything (``p`` 1), else None (a mask is needed); ``p`` checked."""
    _check_probability(p)
    if not training or p == 0:
        return x
    return binary("mul", _var(x), 0.0) if p == 1 else None


def _dropout(x, p, training, per_channel):
    trivial = _without_randomness(x, p, training)
    if trivial is not None:
        return trivial
    x = _var(x)
    return where(_kept(x, p, per_channel), binary("mul", x, 1.0 / (1.0 - p)), 0.0)


def _alpha_dropout(x, p, training, per_channel):
    """Dropped values set to SELU's negative saturation, then an affine map that keeps a
    zero-mean, unit-variance input so (PyTorch's constants)."""
    trivial = _without_randomness(x, p, training)
    if trivial is not None:
        return trivial
    x = _var(x)
    scale = 1.0 / math.sqrt((_SELU_NEGATIVE_SATURATION ** 2 * p + 1) * (1 - p))
    shift = _SELU_NEGATIVE_SATURATION * scale * p
    return where(_kept(x, p, per_channel), binary("add", binary("mul", x, scale), shift),
                 shift - _SELU_NEGATIVE_SATURATION * scale)


def _unbatched(x, batched_ndim, function):
    """``function`` of ``x``, as a batch of one when ``x`` has ``batched_ndim - 1`` dims."""
    x = _var(x)
    if x.ndim == batched_ndim - 1:
        return function(x.unsqueeze(0)).squeeze(0)
    return function(x)


def dropout(x, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)`` when
    training (PyTorch's ``inplace`` is accepted; results are new Vars).

    Example: ``F.dropout(x, 0.1, training=model.training)``."""
    return _dropout(x, p, training, False)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) or (C, L) ``input`` with probability ``p``, scaling
    the rest by ``1/(1-p)``, when training. Example: ``F.dropout1d(sequence_features, 0.2)``."""
    input = _var(input)
    if input.ndim not in (2, 3):
        raise MetajitShapeError(f"dropout1d: expected a (C, L) or (N, C, L) input, got shape {tuple(input.shape)}; "
                                f"use dropout for other shapes")
    return _unbatched(input, 3, lambda x: _dropout(x, p, training, True))


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, H, W) ``input`` with probability ``p``, scaling the
    rest by ``1/(1-p)``, when training; as PyTorch, a 3-d input is (N, C, L).

    Example: ``F.dropout2d(feature_maps, 0.1)``."""
    return _dropout(input, p, training, True)


def dropout3d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) ``input`` with probability
    ``p``, scaling the rest by ``1/(1-p)``, when training. Example: ``F.dropout3d(volumes)``."""
    return _unbatched(input, 5, lambda x: _dropout(x, p, training, True))


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout for SELU networks: dropped elements take SELU's negative saturation value
    and an affine map keeps the mean and variance, when ``training`` (False by default, as
    PyTorch). Example: ``F.alpha_dropout(F.selu(x), 0.1, training=True)``."""
    return _alpha_dropout(input, p, training, False)


def feature_alpha_dropout(input, p=0.5, training=False, inplace=False):
    """`alpha_dropout` of whole channels of an (N, C, ...) input.

    Example: ``F.feature_alpha_dropout(F.selu(maps), 0.1, training=True)``."""
    return _alpha_dropout(input, p, training, True)


class Dropout(Module):
    """Zeroes elements with probability ``p`` while training, scaling the rest by ``1/(1-p)``
    (PyTorch's ``inplace`` is accepted and ignored: results are new Vars).

    Example: ``nn.Dropout(0.1)``; subclasses drop whole channels or use alpha dropout."""

    dropout_function = staticmethod(dropout)

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        _check_probability(p)
        self.p = p

    def execute(self, x):
        return self.dropout_function(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Dropout1d(Dropout):
    """Channel dropout of (N, C, L) or (C, L) inputs (`dropout1d`). Example: ``nn.Dropout1d(0.2)``."""

    dropout_function = staticmethod(dropout1d)


class Dropout2d(Dropout):
    """Channel dropout of (N, C, H, W) inputs (`dropout2d`). Example: ``nn.Dropout2d(0.2)``."""

    dropout_function = staticmethod(dropout2d)


class Dropout3d(Dropout):
    """Channel dropout of (N, C, D, H, W) or (C, D, H, W) inputs (`dropout3d`).
    Example: ``nn.Dropout3d(0.2)``."""

    dropout_function = staticmethod(dropout3d)


class AlphaDropout(Dropout):
    """`alpha_dropout` while training, for SELU networks. Example: ``nn.AlphaDropout(0.05)``."""

    dropout_function = staticmethod(alpha_dropout)


class FeatureAlphaDropout(Dropout):
    """`feature_alpha_dropout` while training. Example: ``nn.FeatureAlphaDropout(0.05)``."""

    dropout_function = staticmethod(feature_alpha_dropout)
