"""Padding, upsampling and pixel-shuffle layers (index-mapping meta-ops)."""
import numpy as np

from ..errors import MetajitValueError
from ..math_ops import binary
from ..shape_ops import pad
from ..var import Var
from .conv import _pair
from .module import Module


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


def _bilinear_axis(size, out_size, align_corners):
    """Source index pairs and weights along one axis (PyTorch's coordinate rule)."""
    out = np.arange(out_size, dtype=np.float64)
    if align_corners:
        source = out * ((size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(out_size)
    else:
        source = np.maximum((out + 0.5) * (size / out_size) - 0.5, 0)
    low = np.minimum(np.floor(source).astype(np.int32), size - 1)
    high = np.minimum(low + 1, size - 1)
    return low, high, (source - low).astype(np.float32)


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=False):
    """Resize the spatial dims of (N, C, H, W) ``x``: ``nearest`` or ``bilinear``."""
    height, width = x.shape[2:]
    if size is None:
        factor = _pair(scale_factor)
        size = (int(height * factor[0]), int(width * factor[1]))
    out_h, out_w = _pair(size)
    if mode == "nearest":
        return x.reindex([x.shape[0], x.shape[1], out_h, out_w],
                         ["i0", "i1", f"i2*{height}/{out_h}", f"i3*{width}/{out_w}"])
    if mode != "bilinear":
        raise MetajitValueError(f"interpolate: mode must be 'nearest' or 'bilinear', got {mode!r}")
    rows_low, rows_high, row_weight = _bilinear_axis(height, out_h, align_corners)
    cols_low, cols_high, col_weight = _bilinear_axis(width, out_w, align_corners)
    dtype = x.dtype
    row_weight = Var(row_weight.reshape(out_h, 1)).cast(dtype)
    col_weight = Var(col_weight.reshape(1, out_w)).cast(dtype)
    top = binary("add", binary("mul", x[:, :, rows_low][:, :, :, cols_low], binary("sub", 1.0, col_weight)),
                 binary("mul", x[:, :, rows_low][:, :, :, cols_high], col_weight))
    bottom = binary("add", binary("mul", x[:, :, rows_high][:, :, :, cols_low], binary("sub", 1.0, col_weight)),
                    binary("mul", x[:, :, rows_high][:, :, :, cols_high], col_weight))
    return binary("add", binary("mul", top, binary("sub", 1.0, row_weight)), binary("mul", bottom, row_weight))


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
