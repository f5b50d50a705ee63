"""Padding, upsampling and pixel-shuffle layers (index-mapping meta-ops)."""
import numpy as np

from ..errors import MetajitValueError
from ..math_ops import binary
from ..shape_ops import pad
from ..var import Var
from .conv import _pair
from .module import Module
from .pooling import adaptive_avg_pool2d


class _Pad2d(Module):
    mode = "constant"

    def __init__(self, padding, value=0.0):
        super().__init__()
        self.padding = _pair(padding, 4) if not isinstance(padding, (tuple, list)) else tuple(padding)
        self.value = value

    def execute(self, x):
        return pad(x, self.padding, self.mode, self.value)


class ZeroPad2d(_Pad2d):
    """Pad (left, right, top, bottom) with zeros."""


class ConstantPad2d(_Pad2d):
    """Pad with ``value``."""


class ReflectionPad2d(_Pad2d):
    """Pad by reflecting at the edges (edge not repeated)."""

    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    """Pad by repeating the edge values."""

    mode = "replicate"


def _source_positions(size, out_size, align_corners):
    """Source coordinate of each output position along one axis (PyTorch's rule)."""
    out = np.arange(out_size, dtype=np.float64)
    if align_corners:
        return out * ((size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(out_size)
    return (out + 0.5) * (size / out_size) - 0.5


def _linear_taps(size, out_size, align_corners):
    """Two (index, weight) taps per output position for linear interpolation."""
    source = np.maximum(_source_positions(size, out_size, align_corners), 0)
    low = np.minimum(np.floor(source).astype(np.int64), size - 1)
    fraction = source - low
    return [(low, 1 - fraction), (np.minimum(low + 1, size - 1), fraction)]


def _cubic_taps(size, out_size, align_corners, a=-0.75):
    """Four (index, weight) taps per output position for Keys' cubic convolution with
    ``a = -0.75`` (PyTorch's bicubic): indices clamped to the edge, weights summing to 1."""
    source = _source_positions(size, out_size, align_corners)
    base = np.floor(source)
    t = source - base

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    weights = [far(t + 1), near(t), near(1 - t), far(2 - t)]
    return [(np.clip(base.astype(np.int64) + k - 1, 0, size - 1), w) for k, w in enumerate(weights)]


def _mix_axis(x, axis, taps):
    """``sum_k weight_k * x[..., index_k, ...]`` along ``axis`` (host-computed taps)."""
    result = None
    prefix = (slice(None),) * axis
    shape = [1] * x.ndim
    for index, weight in taps:
        shape[axis] = len(weight)
        term = binary("mul", x[prefix + (index,)], Var(weight.reshape(shape)).cast(x.dtype))
        result = term if result is None else binary("add", result, term)
    return result


_TAPS = {"bilinear": _linear_taps, "bicubic": _cubic_taps}


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=False):
    """Resize the spatial dims of (N, C, H, W) ``x`` to ``size`` (or by ``scale_factor``):
    ``nearest``, ``bilinear``, ``bicubic`` (PyTorch's a = -0.75, edge-clamped taps; it
    overshoots like PyTorch's) or ``area`` (adaptive average pooling), as
    ``torch.nn.functional.interpolate``. Example: ``F.interpolate(x, scale_factor=2, mode="bicubic")``."""
    height, width = x.shape[2:]
    if size is None:
        factor = _pair(scale_factor)
        size = (int(height * factor[0]), int(width * factor[1]))
    out_h, out_w = _pair(size)
    if mode == "nearest":
        return x.reindex([x.shape[0], x.shape[1], out_h, out_w],
                         ["i0", "i1", f"i2*{height}/{out_h}", f"i3*{width}/{out_w}"])
    if mode == "area":
        return adaptive_avg_pool2d(x, (out_h, out_w))
    if mode not in _TAPS:
        raise MetajitValueError(f"interpolate: mode must be 'nearest', 'bilinear', 'bicubic' or 'area', got {mode!r}")
    taps = _TAPS[mode]
    rows_mixed = _mix_axis(x, 2, taps(height, out_h, align_corners))
    return _mix_axis(rows_mixed, 3, taps(width, out_w, align_corners))


class Upsample(Module):
    """Module form of `interpolate`."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=False):
        super().__init__()
        self.settings = dict(size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners)

    def execute(self, x):
        return interpolate(x, **self.settings)


class PixelShuffle(Module):
    """(N, C*r*r, H, W) -> (N, C, H*r, W*r)."""

    def __init__(self, upscale_factor):
        super().__init__()
        self.factor = upscale_factor

    def execute(self, x):
        r = self.factor
        batch, channels, height, width = x.shape
        if channels % (r * r):
            raise MetajitValueError(f"PixelShuffle({r}): {channels} channels are not divisible by {r * r}")
        return (x.reshape(batch, channels // (r * r), r, r, height, width)
                .permute(0, 1, 4, 2, 5, 3).reshape(batch, channels // (r * r), height * r, width * r))
