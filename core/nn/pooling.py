"""Pooling from meta-ops: a windowed reindex (overflow = the reduction's identity) and a
reduction over the window axes."""
from ..errors import MetajitShapeError, MetajitValueError
from ..math_ops import binary
from .conv import _output_size, _pair
from .module import Module, functional_module


def _windows(x, kernel, stride, padding, dilation, fill):
    batch, channels, height, width = x.shape
    out_h = _output_size(height, kernel[0], stride[0], padding[0], dilation[0])
    out_w = _output_size(width, kernel[1], stride[1], padding[1], dilation[1])
    if out_h <= 0 or out_w <= 0:
        raise MetajitShapeError(f"pooling: input {x.shape} is smaller than the window {kernel}")
    return x.reindex([batch, channels, out_h, out_w, kernel[0], kernel[1]],
                     ["i0", "i1", f"i2*{stride[0]}-{padding[0]}+i4*{dilation[0]}",
                      f"i3*{stride[1]}-{padding[1]}+i5*{dilation[1]}"], overflow_value=fill)


def _check(x, name):
    if x.ndim != 4:
        raise MetajitShapeError(f"{name} expects a 4-d (N, C, H, W) input, got shape {x.shape}")


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Maximum over windows (padding never wins: it reads as -inf)."""
    _check(x, "max_pool2d")
    if ceil_mode:
        raise MetajitValueError("max_pool2d: ceil_mode=True is not supported")
    kernel = _pair(kernel_size)
    return _windows(x, kernel, _pair(stride or kernel_size), _pair(padding), _pair(dilation),
                    float("-inf")).max(dims=(4, 5))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average over windows; padding counts as zeros unless ``count_include_pad=False``."""
    _check(x, "avg_pool2d")
    if ceil_mode:
        raise MetajitValueError("avg_pool2d: ceil_mode=True is not supported")
    kernel, stride, padding = _pair(kernel_size), _pair(stride or kernel_size), _pair(padding)
    total = _windows(x, kernel, stride, padding, (1, 1), 0.0).sum(dims=(4, 5))
    if count_include_pad or padding == (0, 0):
        return binary("div", total, kernel[0] * kernel[1])
    from ..creation import ones
    counts = _windows(ones((1, 1) + x.shape[2:], dtype=x.dtype), kernel, stride, padding, (1, 1), 0.0)
    return binary("div", total, counts.sum(dims=(4, 5)))


def _adaptive_windows(x, out_h, out_w, fill):
    """x gathered into PyTorch's adaptive windows: window i covers [floor(iH/oh), ceil((i+1)H/oh))."""
    batch, channels, height, width = x.shape
    window_h, window_w = -(-height // out_h) + 1, -(-width // out_w) + 1
    return x.reindex(
        [batch, channels, out_h, out_w, window_h, window_w],
        ["i0", "i1", f"i2*{height}/{out_h}+i4", f"i3*{width}/{out_w}+i5"], overflow_value=fill,
        overflow_conditions=[f"i2*{height}/{out_h}+i4 >= ((i2+1)*{height}+{out_h}-1)/{out_h}",
                             f"i3*{width}/{out_w}+i5 >= ((i3+1)*{width}+{out_w}-1)/{out_w}"])


def _adaptive(x, output_size, reduce, fill):
    _check(x, "adaptive pooling")
    out_h, out_w = _pair(output_size)
    out_h, out_w = out_h or x.shape[2], out_w or x.shape[3]
    windows = _adaptive_windows(x, out_h, out_w, fill)
    if reduce == "max":
        return windows.max(dims=(4, 5))
    from ..creation import ones
    counts = _adaptive_windows(ones((1, 1) + x.shape[2:], dtype=x.dtype), out_h, out_w, 0.0)
    return binary("div", windows.sum(dims=(4, 5)), counts.sum(dims=(4, 5)))


def adaptive_avg_pool2d(x, output_size):
    """Average over PyTorch's adaptive windows for ``output_size`` (None keeps a size)."""
    return _adaptive(x, output_size, "mean", 0.0)


def adaptive_max_pool2d(x, output_size):
    """Maximum over PyTorch's adaptive windows for ``output_size``."""
    return _adaptive(x, output_size, "max", float("-inf"))


MaxPool2d = functional_module("MaxPool2d", max_pool2d,
                              ("kernel_size", "stride", "padding", "dilation", "ceil_mode"))
AvgPool2d = functional_module("AvgPool2d", avg_pool2d,
                              ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"))
AdaptiveAvgPool2d = functional_module("AdaptiveAvgPool2d", adaptive_avg_pool2d, ("output_size",))
AdaptiveMaxPool2d = functional_module("AdaptiveMaxPool2d", adaptive_max_pool2d, ("output_size",))


class Pool(Module):
    """Jittor's ``Pool(kernel_size, stride, padding, op="maximum"|"mean")``."""

    def __init__(self, kernel_size, stride=None, padding=0, op="maximum"):
        super().__init__()
        if op not in ("maximum", "mean"):
            raise MetajitValueError(f"Pool op must be 'maximum' or 'mean', got {op!r}")
        self.kernel_size, self.stride, self.padding, self.op = kernel_size, stride, padding, op

    def execute(self, x):
        if self.op == "maximum":
            return max_pool2d(x, self.kernel_size, self.stride, self.padding)
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)
