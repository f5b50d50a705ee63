"""Pooling from meta-ops: a windowed reindex (overflow = the reduction's identity) and a
reduction over the window axes. Inference max and average pooling are the library ops
``max_pool2d`` and ``avg_pool2d`` on devices that claim them (the cpu backend with
oneDNN), these compositions elsewhere."""
import functools

from ..errors import MetajitShapeError, MetajitValueError
from ..ir import graph
from ..math_ops import binary
from . import library
from .conv import _output_size, _pair
from .module import Module, functional_module


def _pooled_size(size, kernel, stride, padding, dilation, ceil_mode):
    """Output length of a pooling window sweep; ``ceil_mode`` keeps a last partial window
    unless it would start past the input and its left padding (PyTorch's rule)."""
    if not ceil_mode:
        return _output_size(size, kernel, stride, padding, dilation)
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    count = -(-span // stride) + 1
    return count - 1 if (count - 1) * stride >= size + padding else count


def _pooled_sizes(x, kernel, stride, padding, dilation, ceil_mode):
    """(output height, output width) of a pooling over ``x``; a clear error when empty."""
    out_h, out_w = (_pooled_size(x.shape[2 + a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode)
                    for a in range(2))
    if out_h <= 0 or out_w <= 0:
        raise MetajitShapeError(f"pooling: input {x.shape} is smaller than the window {kernel}")
    return out_h, out_w


def _windows(x, kernel, stride, padding, dilation, fill, ceil_mode=False, output_size=None):
    batch, channels = x.shape[:2]
    out_h, out_w = output_size or _pooled_sizes(x, kernel, stride, padding, dilation, ceil_mode)
    return x.reindex([batch, channels, out_h, out_w, kernel[0], kernel[1]],
                     ["i0", "i1", f"i2*{stride[0]}-{padding[0]}+i4*{dilation[0]}",
                      f"i3*{stride[1]}-{padding[1]}+i5*{dilation[1]}"], overflow_value=fill)


def _check(x, name):
    if x.ndim != 4:
        raise MetajitShapeError(f"{name} expects a 4-d (N, C, H, W) input, got shape {x.shape}")


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Maximum over windows (padding never wins: it reads as -inf); ``ceil_mode`` keeps
    the last partial window of each row and column, as PyTorch."""
    _check(x, "max_pool2d")
    attrs = (_pair(kernel_size), _pair(stride or kernel_size), _pair(padding), _pair(dilation), bool(ceil_mode))
    if _library_pools(x, attrs, "max_pool2d"):
        return library.apply("max_pool2d", [x], attrs, x.shape[:2] + _pooled_sizes(x, *attrs))
    return _max_pool2d_composed([x], attrs)


def _library_pools(x, attrs, name):
    """Whether ``x`` is pooled by the library op ``name`` (its attrs start ``(kernel,
    stride, padding, dilation, ceil_mode)``): in inference (the gradient would run the
    composition again), not for exact tilings (the composition is faster), and only when
    every window reaches the input (a library pooling of a window all in the padding gives
    the lowest float, or fails, where the composition gives -inf or 0 / 0)."""
    if graph.grad_mode() and x.requires_grad or _tiles_exactly(x, *attrs[:5]):
        return False
    return all(_windows_reach_input(x.shape[2 + a], *(value[a] for value in attrs[:4])) for a in range(2)) \
        and library.claimed(name, x.dtype)


@functools.lru_cache(maxsize=1024)
def _windows_reach_input(size, kernel, stride, padding, dilation):
    """Whether each window along an axis of ``size`` has a tap inside it (ceil_mode's last
    window included: PyTorch starts it inside the input or its left padding)."""
    count = _pooled_size(size, kernel, stride, padding, dilation, True)
    return all(any(0 <= start + tap * dilation < size for tap in range(kernel))
               for start in range(-padding, count * stride - padding, stride))


def _tiles_exactly(x, kernel, stride, padding, dilation, ceil_mode):
    """Whether the windows tile ``x`` exactly (VGG's 2x2, stride 2): the composition is then
    one pass without bounds checks, faster than a library pooling (a third of oneDNN's
    time on VGG-11's first pooling)."""
    return kernel == stride and padding == (0, 0) and dilation == (1, 1) \
        and x.shape[2] % kernel[0] == 0 and x.shape[3] % kernel[1] == 0


def _max_pool2d_composed(inputs, attrs):
    """`max_pool2d`'s meaning: the maximum over each reindexed window (-inf outside)."""
    kernel, stride, padding, dilation, ceil_mode = attrs
    return _windows(inputs[0], kernel, stride, padding, dilation, float("-inf"), ceil_mode).max(dims=(4, 5))


library.register("max_pool2d", _max_pool2d_composed)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average over windows; padding counts as zeros unless ``count_include_pad=False``.
    With ``ceil_mode`` a last partial window divides by the part of it inside the padded
    input (PyTorch's divisor), e.g. ``avg_pool2d(x, 3, 2, ceil_mode=True)``."""
    _check(x, "avg_pool2d")
    attrs = (_pair(kernel_size), _pair(stride or kernel_size), _pair(padding), (1, 1), bool(ceil_mode),
             bool(count_include_pad))
    if (not count_include_pad or _within_padding(x, *attrs[:5])) and _library_pools(x, attrs, "avg_pool2d"):
        # a library divides by the whole window with the padding counted, so a window
        # overhanging the padded input (ceil_mode) keeps the composition
        return library.apply("avg_pool2d", [x], attrs, x.shape[:2] + _pooled_sizes(x, *attrs[:5]))
    return _avg_pool2d_composed([x], attrs)


def _within_padding(x, kernel, stride, padding, dilation, ceil_mode):
    """Whether every window lies inside the padded input."""
    sizes = _pooled_sizes(x, kernel, stride, padding, dilation, ceil_mode)
    return all((size - 1) * s + k <= length + 2 * p
               for size, s, k, p, length in zip(sizes, stride, kernel, padding, x.shape[2:]))


def _avg_pool2d_composed(inputs, attrs):
    """`avg_pool2d`'s meaning: each reindexed window's sum (zeros outside) over its divisor."""
    x = inputs[0]
    kernel, stride, padding, _, ceil_mode, count_include_pad = attrs
    windows = _windows(x, kernel, stride, padding, (1, 1), 0.0, ceil_mode)
    total = windows.sum(dims=(4, 5))
    output_size = tuple(windows.shape[2:4])
    height, width = x.shape[2:]
    if (count_include_pad or padding == (0, 0)) and _within_padding(x, kernel, stride, padding, (1, 1), ceil_mode):
        return binary("div", total, kernel[0] * kernel[1])
    from ..creation import ones
    if count_include_pad:  # padding counts, the overhang past it does not
        area = ones((1, 1, height + 2 * padding[0], width + 2 * padding[1]), dtype=x.dtype)
        counts = _windows(area, kernel, stride, (0, 0), (1, 1), 0.0, output_size=output_size)
    else:
        counts = _windows(ones((1, 1, height, width), dtype=x.dtype), kernel, stride, padding, (1, 1), 0.0,
                          output_size=output_size)
    return binary("div", total, counts.sum(dims=(4, 5)))


library.register("avg_pool2d", _avg_pool2d_composed)


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
    """Jittor's ``Pool(kernel_size, stride=None, padding=0, dilation=None, return_indices=None,
    ceil_mode=False, count_include_pad=True, op="maximum")``: `max_pool2d` (``"maximum"``,
    with ``dilation``) or `avg_pool2d` (``"mean"``, with ``count_include_pad``).
    Example: ``nn.Pool(3, stride=2, ceil_mode=True, op="maximum")``."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=None, return_indices=None, ceil_mode=False,
                 count_include_pad=True, op="maximum"):
        super().__init__()
        if op not in ("maximum", "mean"):
            raise MetajitValueError(f"Pool op must be 'maximum' or 'mean', got {op!r}")
        if return_indices:
            raise MetajitValueError("Pool(return_indices=True) is not supported; pool without it")
        if op == "mean" and dilation not in (None, 1):
            raise MetajitValueError(f"Pool: dilation={dilation!r} needs op='maximum' (average pooling has none)")
        self.kernel_size, self.stride, self.padding, self.op = kernel_size, stride, padding, op
        self.dilation, self.ceil_mode, self.count_include_pad = dilation or 1, ceil_mode, count_include_pad

    def execute(self, x):
        if self.op == "maximum":
            return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)
