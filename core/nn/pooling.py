"""Pooling from meta-ops: a windowed reindex (overflow = the reduction's identity) and a
reduction over the window axes, over two or three spatial dims (1-d poolings are the 2-d
ones over a unit height). Inference 2-d max and average pooling are the library ops
``max_pool2d`` and ``avg_pool2d`` on devices that claim them (the cpu backend with
oneDNN), these compositions elsewhere. Max unpooling is a scatter (``reindex_reduce``)."""
import functools
import math

from .. import creation
from ..errors import MetajitShapeError, MetajitValueError
from ..ir import graph
from ..math_ops import binary, relu, sign, where
from ..var import Var
from . import library
from .conv import _output_size, _pair, _single, accepts_unbatched, unit_height
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
    """The output sizes of a pooling over the spatial dims of (N, C, ...) ``x``; a clear
    error when one is empty."""
    sizes = tuple(_pooled_size(x.shape[2 + a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode)
                  for a in range(len(kernel)))
    if min(sizes) <= 0:
        raise MetajitShapeError(f"pooling: input {tuple(x.shape)} is smaller than the window {kernel}")
    return sizes


def _geometry(spatial, kernel_size, stride, padding, dilation):
    """PyTorch's pooling arguments as per-axis tuples (``stride`` None: the kernel), the
    padding checked against the window (at most half of it, as PyTorch)."""
    kernel = _pair(kernel_size, spatial)
    stride = kernel if stride is None or stride == [] else _pair(stride, spatial)
    padding, dilation = _pair(padding, spatial), _pair(dilation, spatial)
    if any(2 * p > d * (k - 1) + 1 for k, p, d in zip(kernel, padding, dilation)):
        raise MetajitValueError(f"pooling: padding {padding} must be at most half of the window {kernel} "
                                f"(dilation {dilation})")
    return kernel, stride, padding, dilation


def _window_axes(spatial):
    return tuple(range(2 + spatial, 2 + 2 * spatial))


def _windows(x, kernel, stride, padding, dilation, fill, ceil_mode=False, output_size=None):
    """(N, C, *spatial) ``x`` gathered into (N, C, *output, *kernel) windows, ``fill`` outside."""
    spatial = len(kernel)
    sizes = output_size or _pooled_sizes(x, kernel, stride, padding, dilation, ceil_mode)
    return x.reindex(list(x.shape[:2]) + list(sizes) + list(kernel),
                     ["i0", "i1"] + [f"i{2 + a}*{stride[a]}-{padding[a]}+i{2 + spatial + a}*{dilation[a]}"
                                     for a in range(spatial)], overflow_value=fill)


def _maximum_and_indices(x, windows_of):
    """The maximum over each window of (N, C, *spatial) ``x`` and the flat input position of
    its first occurrence in the window (PyTorch's indices); ``windows_of(values, fill)``
    gathers the windows of ``x`` or of its positions."""
    spatial = tuple(x.shape[2:])
    count = math.prod(spatial)  # no position is as large
    positions = creation.arange(count).reshape((1, 1) + spatial).cast("int64")
    windows, axes = windows_of(x, float("-inf")), _window_axes(len(spatial))
    largest = windows.max(dims=axes, keepdims=True)
    first = where(binary("eq", windows, largest), windows_of(positions, count), count).min(dims=axes)
    return largest.squeeze(axes), first


def _squeeze_height(result):
    """A 2-d pooling's result over a unit height as the 1-d one (dim -2 dropped)."""
    return tuple(r.squeeze(-2) for r in result) if isinstance(result, tuple) else result.squeeze(-2)


@accepts_unbatched(2)
def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Maximum over windows of (N, C, H, W) ``x`` (padding never wins: it reads as -inf);
    ``ceil_mode`` keeps the last partial window of each row and column, ``return_indices``
    also returns the flat ``h * W + w`` position of each maximum (for `max_unpool2d`), as
    PyTorch. Example: ``F.max_pool2d(x, 3, stride=2, padding=1)``."""
    attrs = _geometry(2, kernel_size, stride, padding, dilation) + (bool(ceil_mode),)
    if return_indices:
        return _max_pool_with_indices(x, attrs)
    if _library_pools(x, attrs, "max_pool2d"):
        return library.apply("max_pool2d", [x], attrs, x.shape[:2] + _pooled_sizes(x, *attrs))
    return _max_pool_composed([x], attrs)


@accepts_unbatched(3)
def max_pool3d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Maximum over windows of (N, C, D, H, W) ``x``, as `max_pool2d` (indices: the flat
    ``(d * H + h) * W + w`` positions). Example: ``F.max_pool3d(volume, 2)``."""
    attrs = _geometry(3, kernel_size, stride, padding, dilation) + (bool(ceil_mode),)
    return _max_pool_with_indices(x, attrs) if return_indices else _max_pool_composed([x], attrs)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Maximum over windows of (N, C, L) ``x``: `max_pool2d` over a unit height.
    Example: ``F.max_pool1d(signal, 2)``."""
    kernel = _single(kernel_size)
    stride = kernel if stride is None or stride == [] else _single(stride)
    return _squeeze_height(max_pool2d(unit_height(x, "max_pool1d"), (1, kernel), (1, stride), (0, _single(padding)),
                                      (1, _single(dilation)), ceil_mode, return_indices))


def _max_pool_with_indices(x, attrs):
    kernel, stride, padding, dilation, ceil_mode = attrs
    sizes = _pooled_sizes(x, *attrs)
    return _maximum_and_indices(
        x, lambda values, fill: _windows(values, kernel, stride, padding, dilation, fill, output_size=sizes))


def max_pool2d_with_indices(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    """`max_pool2d` returning ``(values, indices)`` (PyTorch's name).
    Example: ``values, indices = F.max_pool2d_with_indices(x, 2)``."""
    return max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool1d_with_indices(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    """`max_pool1d` returning ``(values, indices)`` (PyTorch's name)."""
    return max_pool1d(x, kernel_size, stride, padding, dilation, ceil_mode, True)


def max_pool3d_with_indices(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                            return_indices=True):
    """`max_pool3d` returning ``(values, indices)`` (PyTorch's name)."""
    return max_pool3d(x, kernel_size, stride, padding, dilation, ceil_mode, True)


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
    return kernel == stride and not any(padding) and all(d == 1 for d in dilation) \
        and all(size % k == 0 for size, k in zip(x.shape[2:], kernel))


def _max_pool_composed(inputs, attrs):
    """`max_pool2d`'s meaning (and `max_pool3d`'s): the maximum over each reindexed window
    (-inf outside)."""
    kernel, stride, padding, dilation, ceil_mode = attrs
    windows = _windows(inputs[0], kernel, stride, padding, dilation, float("-inf"), ceil_mode)
    return windows.max(dims=_window_axes(len(kernel)))


library.register("max_pool2d", _max_pool_composed)


@accepts_unbatched(2)
def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Average over windows of (N, C, H, W) ``x``; padding counts as zeros unless
    ``count_include_pad=False``; ``divisor_override`` divides every window's sum by itself.
    With ``ceil_mode`` a last partial window divides by the part of it inside the padded
    input (PyTorch's divisor), e.g. ``avg_pool2d(x, 3, 2, ceil_mode=True)``."""
    attrs = _geometry(2, kernel_size, stride, padding, 1) + (bool(ceil_mode), bool(count_include_pad))
    if divisor_override:
        return _window_sums(x, attrs, divisor_override)
    if (not count_include_pad or _within_padding(x, *attrs[:5])) and _library_pools(x, attrs, "avg_pool2d"):
        # a library divides by the whole window with the padding counted, so a window
        # overhanging the padded input (ceil_mode) keeps the composition
        return library.apply("avg_pool2d", [x], attrs, x.shape[:2] + _pooled_sizes(x, *attrs[:5]))
    return _avg_pool_composed([x], attrs)


@accepts_unbatched(3)
def avg_pool3d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Average over windows of (N, C, D, H, W) ``x``, as `avg_pool2d`.
    Example: ``F.avg_pool3d(volume, 2)``."""
    attrs = _geometry(3, kernel_size, stride, padding, 1) + (bool(ceil_mode), bool(count_include_pad))
    return _window_sums(x, attrs, divisor_override) if divisor_override else _avg_pool_composed([x], attrs)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Average over windows of (N, C, L) ``x``: `avg_pool2d` over a unit height.
    Example: ``F.avg_pool1d(signal, 3, stride=1, padding=1)``."""
    kernel = _single(kernel_size)
    stride = kernel if stride is None or stride == [] else _single(stride)
    return _squeeze_height(avg_pool2d(unit_height(x, "avg_pool1d"), (1, kernel), (1, stride), (0, _single(padding)),
                                      ceil_mode, count_include_pad))


def _window_sums(x, attrs, divisor):
    """Each window's sum (zeros outside) divided by ``divisor``."""
    kernel, stride, padding, dilation, ceil_mode = attrs[:5]
    total = _windows(x, kernel, stride, padding, dilation, 0.0, ceil_mode).sum(dims=_window_axes(len(kernel)))
    return binary("div", total, divisor)


def _within_padding(x, kernel, stride, padding, dilation, ceil_mode):
    """Whether every window lies inside the padded input."""
    sizes = _pooled_sizes(x, kernel, stride, padding, dilation, ceil_mode)
    return all((size - 1) * s + k <= length + 2 * p
               for size, s, k, p, length in zip(sizes, stride, kernel, padding, x.shape[2:]))


def _avg_pool_composed(inputs, attrs):
    """`avg_pool2d`'s meaning (and `avg_pool3d`'s): each reindexed window's sum (zeros
    outside) over its divisor."""
    x = inputs[0]
    kernel, stride, padding, dilation, ceil_mode, count_include_pad = attrs
    if (count_include_pad or not any(padding)) and _within_padding(x, *attrs[:5]):
        return _window_sums(x, attrs, math.prod(kernel))
    spatial, axes = len(kernel), _window_axes(len(kernel))
    windows = _windows(x, kernel, stride, padding, dilation, 0.0, ceil_mode)
    sizes = tuple(windows.shape[2:2 + spatial])
    if count_include_pad:  # padding counts, the overhang past it does not
        area = creation.ones((1, 1) + tuple(n + 2 * p for n, p in zip(x.shape[2:], padding)), dtype=x.dtype)
        counts = _windows(area, kernel, stride, (0,) * spatial, dilation, 0.0, output_size=sizes)
    else:
        counts = _windows(creation.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype), kernel, stride, padding,
                          dilation, 0.0, output_size=sizes)
    return binary("div", windows.sum(dims=axes), counts.sum(dims=axes))


library.register("avg_pool2d", _avg_pool_composed)


def lp_pool1d(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling of (N, C, L) ``x``: ``(sum of x ** norm_type over each window) **
    (1 / norm_type)`` (``norm_type`` inf: the maximum of ``|x|``), as PyTorch.
    Example: ``F.lp_pool1d(signal, 2, 3)``."""
    return _lp_pool(x, norm_type, kernel_size, stride, ceil_mode, 1)


def lp_pool2d(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling of (N, C, H, W) ``x``, as `lp_pool1d`. Example: ``F.lp_pool2d(x, 2, 2)``."""
    return _lp_pool(x, norm_type, kernel_size, stride, ceil_mode, 2)


def lp_pool3d(x, norm_type, kernel_size, stride=None, ceil_mode=False):
    """Power-average pooling of (N, C, D, H, W) ``x``, as `lp_pool1d`. Example: ``F.lp_pool3d(v, 2, 2)``."""
    return _lp_pool(x, norm_type, kernel_size, stride, ceil_mode, 3)


_AVERAGES = {1: avg_pool1d, 2: avg_pool2d, 3: avg_pool3d}
_MAXIMA = {1: max_pool1d, 2: max_pool2d, 3: max_pool3d}


def _lp_pool(x, norm_type, kernel_size, stride, ceil_mode, spatial):
    """PyTorch's power-average pooling, through the average pooling over ``spatial`` dims
    (and its formula, so the gradient where a window's sum is 0 is PyTorch's too)."""
    if abs(norm_type) == float("inf"):
        largest = _MAXIMA[spatial](binary("mul", x.abs(), math.copysign(1, norm_type)), kernel_size, stride, 0, 1,
                                   ceil_mode)
        return binary("mul", largest, math.copysign(1, norm_type))
    mean = _AVERAGES[spatial](binary("pow", x, norm_type), kernel_size, stride, 0, ceil_mode)
    total = binary("mul", binary("mul", sign(mean), relu(mean.abs())), math.prod(_pair(kernel_size, spatial)))
    return binary("pow", total, 1.0 / norm_type)


def _adaptive_windows(x, output_size, fill):
    """(N, C, *spatial) ``x`` gathered into PyTorch's adaptive windows: window ``i`` along an
    axis of size ``n`` covers ``[floor(i n / out), ceil((i + 1) n / out))``."""
    spatial = len(output_size)
    window = [-(-n // out) + 1 for n, out in zip(x.shape[2:], output_size)]
    starts = [f"i{2 + a}*{n}/{out}" for a, (n, out) in enumerate(zip(x.shape[2:], output_size))]
    return x.reindex(
        list(x.shape[:2]) + list(output_size) + window,
        ["i0", "i1"] + [f"{start}+i{2 + spatial + a}" for a, start in enumerate(starts)], overflow_value=fill,
        overflow_conditions=[f"{start}+i{2 + spatial + a} >= ((i{2 + a}+1)*{n}+{out}-1)/{out}"
                             for a, (start, n, out) in enumerate(zip(starts, x.shape[2:], output_size))])


def _adaptive_sizes(x, output_size):
    sizes = _pair(output_size, x.ndim - 2)
    return tuple(n if out is None else out for n, out in zip(x.shape[2:], sizes))


def _divided_windows(x, sizes):
    """When every output size divides its input size (``output_size=1`` among them), the
    adaptive windows are equal tiles: ``x`` viewed as (N, C, out1, k1, out2, k2...) and the
    window axes, or None. A reshape, where `_adaptive_windows` builds a masked gather."""
    if not all(out and n % out == 0 for n, out in zip(x.shape[2:], sizes)):
        return None
    shape = list(x.shape[:2])
    for n, out in zip(x.shape[2:], sizes):
        shape += [out, n // out]
    return x.reshape(shape), tuple(3 + 2 * a for a in range(len(sizes)))


def _adaptive_average(x, output_size):
    sizes = _adaptive_sizes(x, output_size)
    divided = _divided_windows(x, sizes)
    if divided is not None:
        tiles, axes = divided
        return binary("div", tiles.sum(dims=axes), float(math.prod(tiles.shape[a] for a in axes)))
    axes = _window_axes(len(sizes))
    counts = _adaptive_windows(creation.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype), sizes, 0.0)
    return binary("div", _adaptive_windows(x, sizes, 0.0).sum(dims=axes), counts.sum(dims=axes))


def _adaptive_maximum(x, output_size, return_indices):
    sizes = _adaptive_sizes(x, output_size)
    if return_indices:
        return _maximum_and_indices(x, lambda values, fill: _adaptive_windows(values, sizes, fill))
    divided = _divided_windows(x, sizes)
    if divided is not None:
        return divided[0].max(dims=divided[1])
    return _adaptive_windows(x, sizes, float("-inf")).max(dims=_window_axes(len(sizes)))


@accepts_unbatched(2)
def adaptive_avg_pool2d(x, output_size):
    """Average over PyTorch's adaptive windows for ``output_size`` (None keeps a size).
    Example: ``F.adaptive_avg_pool2d(features, 1)``."""
    return _adaptive_average(x, output_size)


@accepts_unbatched(3)
def adaptive_avg_pool3d(x, output_size):
    """`adaptive_avg_pool2d` over (N, C, D, H, W) ``x``. Example: ``F.adaptive_avg_pool3d(v, (1, 2, 2))``."""
    return _adaptive_average(x, output_size)


def adaptive_avg_pool1d(x, output_size):
    """`adaptive_avg_pool2d` over (N, C, L) ``x`` (a unit height). Example: ``F.adaptive_avg_pool1d(s, 4)``."""
    return _squeeze_height(adaptive_avg_pool2d(unit_height(x, "adaptive_avg_pool1d"), (1, _single(output_size))))


@accepts_unbatched(2)
def adaptive_max_pool2d(x, output_size, return_indices=False):
    """Maximum over PyTorch's adaptive windows for ``output_size`` (None keeps a size);
    ``return_indices`` also returns the flat positions of the maxima.
    Example: ``F.adaptive_max_pool2d(features, (2, 2))``."""
    return _adaptive_maximum(x, output_size, return_indices)


@accepts_unbatched(3)
def adaptive_max_pool3d(x, output_size, return_indices=False):
    """`adaptive_max_pool2d` over (N, C, D, H, W) ``x``. Example: ``F.adaptive_max_pool3d(v, 1)``."""
    return _adaptive_maximum(x, output_size, return_indices)


def adaptive_max_pool1d(x, output_size, return_indices=False):
    """`adaptive_max_pool2d` over (N, C, L) ``x`` (a unit height). Example: ``F.adaptive_max_pool1d(s, 4)``."""
    return _squeeze_height(adaptive_max_pool2d(unit_height(x, "adaptive_max_pool1d"), (1, _single(output_size)),
                                               return_indices))


def adaptive_max_pool1d_with_indices(x, output_size, return_indices=True):
    """`adaptive_max_pool1d` returning ``(values, indices)`` (PyTorch's name)."""
    return adaptive_max_pool1d(x, output_size, True)


def adaptive_max_pool2d_with_indices(x, output_size, return_indices=True):
    """`adaptive_max_pool2d` returning ``(values, indices)`` (PyTorch's name)."""
    return adaptive_max_pool2d(x, output_size, True)


def adaptive_max_pool3d_with_indices(x, output_size, return_indices=True):
    """`adaptive_max_pool3d` returning ``(values, indices)`` (PyTorch's name)."""
    return adaptive_max_pool3d(x, output_size, True)


def _max_unpool(x, indices, kernel_size, stride, padding, output_size, spatial, name):
    """Scatter (N, C, *spatial) or unbatched ``x`` to the flat positions ``indices`` (a max
    pooling's) of a zero output, as PyTorch's ``max_unpool<k>d``."""
    if not isinstance(indices, Var):
        indices = Var(indices)
    if x.ndim == spatial + 1:
        return _max_unpool(x.unsqueeze(0), indices.unsqueeze(0), kernel_size, stride, padding, output_size, spatial,
                           name).squeeze(0)
    if x.ndim != spatial + 2 or tuple(indices.shape) != tuple(x.shape):
        raise MetajitShapeError(f"{name} expects an (N, C, {'...' if spatial > 1 else 'L'}) input of {spatial + 2} "
                                f"dims and indices of its shape, got {tuple(x.shape)} and {tuple(indices.shape)}")
    kernel, stride, padding, _ = _geometry(spatial, kernel_size, stride, padding, 1)
    sizes = tuple((n - 1) * s - 2 * p + k for n, s, p, k in zip(x.shape[2:], stride, padding, kernel))
    if output_size is not None:
        wanted = tuple(output_size)[-spatial:]
        if any(not default - s < size < default + s for size, default, s in zip(wanted, sizes, stride)):
            raise MetajitShapeError(f"{name}: output_size {tuple(output_size)} must be within a stride of {sizes}")
        sizes = wanted
    batch, channels = x.shape[:2]
    flat = x.reshape(batch, channels, -1)
    scattered = flat.reindex_reduce("add", [batch, channels, math.prod(sizes)], ["i0", "i1", "@e0(i0,i1,i2)"],
                                    extras=[indices.reshape(batch, channels, -1)])
    return scattered.reshape((batch, channels) + sizes)


def max_unpool1d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The inverse of `max_pool1d` with ``return_indices``: each value at its index, zeros
    elsewhere. Example: ``F.max_unpool1d(*F.max_pool1d(s, 2, return_indices=True), 2)``."""
    return _max_unpool(x, indices, kernel_size, stride, padding, output_size, 1, "max_unpool1d")


def max_unpool2d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The inverse of `max_pool2d` with ``return_indices``: each value at its flat index,
    zeros elsewhere (``output_size`` picks among the sizes the pooling maps to one), as PyTorch.
    Example: ``F.max_unpool2d(values, indices, 2)``."""
    return _max_unpool(x, indices, kernel_size, stride, padding, output_size, 2, "max_unpool2d")


def max_unpool3d(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    """The inverse of `max_pool3d` with ``return_indices``, as `max_unpool2d`."""
    return _max_unpool(x, indices, kernel_size, stride, padding, output_size, 3, "max_unpool3d")


_MAX_POOL = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
MaxPool1d = functional_module("MaxPool1d", max_pool1d, _MAX_POOL)
MaxPool2d = functional_module("MaxPool2d", max_pool2d, _MAX_POOL)
MaxPool3d = functional_module("MaxPool3d", max_pool3d, _MAX_POOL)
AvgPool1d = functional_module("AvgPool1d", avg_pool1d,
                              ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"))
_AVG_POOL = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
AvgPool2d = functional_module("AvgPool2d", avg_pool2d, _AVG_POOL)
AvgPool3d = functional_module("AvgPool3d", avg_pool3d, _AVG_POOL)
_LP_POOL = ("norm_type", "kernel_size", "stride", "ceil_mode")
LPPool1d = functional_module("LPPool1d", lp_pool1d, _LP_POOL)
LPPool2d = functional_module("LPPool2d", lp_pool2d, _LP_POOL)
LPPool3d = functional_module("LPPool3d", lp_pool3d, _LP_POOL)
AdaptiveAvgPool1d = functional_module("AdaptiveAvgPool1d", adaptive_avg_pool1d, ("output_size",))
AdaptiveAvgPool2d = functional_module("AdaptiveAvgPool2d", adaptive_avg_pool2d, ("output_size",))
AdaptiveAvgPool3d = functional_module("AdaptiveAvgPool3d", adaptive_avg_pool3d, ("output_size",))
AdaptiveMaxPool1d = functional_module("AdaptiveMaxPool1d", adaptive_max_pool1d, ("output_size", "return_indices"))
AdaptiveMaxPool2d = functional_module("AdaptiveMaxPool2d", adaptive_max_pool2d, ("output_size", "return_indices"))
AdaptiveMaxPool3d = functional_module("AdaptiveMaxPool3d", adaptive_max_pool3d, ("output_size", "return_indices"))


class _MaxUnpool(Module):
    """What the max unpooling modules share; subclasses set ``unpool``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def execute(self, x, indices, output_size=None):
        return self.unpool(x, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpool):
    """Module form of `max_unpool1d`: ``forward(x, indices, output_size=None)``."""

    unpool = staticmethod(max_unpool1d)


class MaxUnpool2d(_MaxUnpool):
    """Module form of `max_unpool2d`: ``forward(x, indices, output_size=None)``.
    Example: ``nn.MaxUnpool2d(2)(*nn.MaxPool2d(2, return_indices=True)(x))``."""

    unpool = staticmethod(max_unpool2d)


class MaxUnpool3d(_MaxUnpool):
    """Module form of `max_unpool3d`: ``forward(x, indices, output_size=None)``."""

    unpool = staticmethod(max_unpool3d)


class Pool(Module):
    """Jittor's ``Pool(kernel_size, stride=None, padding=0, dilation=None, return_indices=None,
    ceil_mode=False, count_include_pad=True, op="maximum")``: `max_pool2d` (``"maximum"``,
    with ``dilation`` and ``return_indices``) or `avg_pool2d` (``"mean"``, with
    ``count_include_pad``). Example: ``nn.Pool(3, stride=2, ceil_mode=True, op="maximum")``."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=None, return_indices=None, ceil_mode=False,
                 count_include_pad=True, op="maximum"):
        super().__init__()
        if op not in ("maximum", "mean"):
            raise MetajitValueError(f"Pool op must be 'maximum' or 'mean', got {op!r}")
        if op == "mean" and (dilation not in (None, 1) or return_indices):
            raise MetajitValueError("Pool: dilation and return_indices need op='maximum' (average pooling has neither)")
        self.kernel_size, self.stride, self.padding, self.op = kernel_size, stride, padding, op
        self.dilation, self.ceil_mode, self.count_include_pad = dilation or 1, ceil_mode, count_include_pad
        self.return_indices = bool(return_indices)

    def execute(self, x):
        if self.op == "maximum":
            return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                              self.return_indices)
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)
