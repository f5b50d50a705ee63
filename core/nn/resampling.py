"""Padding (1-, 2- and 3-d), upsampling and pixel-shuffle layers (index-mapping meta-ops)."""
import math

import numpy as np

from ..errors import MetajitShapeError, MetajitValueError
from ..math_ops import binary
from ..shape_ops import pad
from ..var import Var
from .conv import _pair
from .module import Module, functional_module
from .pooling import adaptive_avg_pool2d


class _Pad(Module):
    """Padding of the last ``dims`` dims by ``padding`` (an int for every side, or ``2 *
    dims`` sizes: (left, right), then (top, bottom), then (front, back), as ``F.pad``) in
    ``mode``; subclasses set ``dims`` and ``mode``."""

    dims, mode = 2, "constant"

    def __init__(self, padding, value=0.0):
        super().__init__()
        self.padding = tuple(padding) if isinstance(padding, (tuple, list)) else (padding,) * (2 * self.dims)
        if len(self.padding) != 2 * self.dims:
            raise MetajitValueError(f"{type(self).__name__} takes an int or {2 * self.dims} padding sizes, "
                                    f"got {padding!r}")
        self.value = value

    def execute(self, x):
        return pad(x, self.padding, self.mode, self.value)

    def extra_repr(self):
        return f"{self.padding}" + (f", value={self.value}" if self.mode == "constant" and self.value else "")


_PAD_MODES = {"Zero": ("constant", "with zeros"), "Constant": ("constant", "with ``value``"),
              "Reflection": ("reflect", "by reflecting at the edges (the edge not repeated)"),
              "Replication": ("replicate", "by repeating the edge values"),
              "Circular": ("circular", "by wrapping around (the other end's values)")}


def _padding_layer(kind, dims):
    mode, how = _PAD_MODES[kind]
    name = f"{kind}Pad{dims}d"
    value = ", 1.5" if kind == "Constant" else ""
    return type(name, (_Pad,), {"dims": dims, "mode": mode, "__module__": __name__, "__doc__":
                                f"Pad the last {dims} dim{'s' if dims > 1 else ''} {how}, as ``torch.nn.{name}``: "
                                f"``padding`` is an int or {2 * dims} sizes (left, right, ...; negative crops). "
                                f"Example: ``nn.{name}(2{value})``."})


ZeroPad1d, ZeroPad2d, ZeroPad3d = (_padding_layer("Zero", dims) for dims in (1, 2, 3))
ConstantPad1d, ConstantPad2d, ConstantPad3d = (_padding_layer("Constant", dims) for dims in (1, 2, 3))
ReflectionPad1d, ReflectionPad2d, ReflectionPad3d = (_padding_layer("Reflection", dims) for dims in (1, 2, 3))
ReplicationPad1d, ReplicationPad2d, ReplicationPad3d = (_padding_layer("Replication", dims) for dims in (1, 2, 3))
CircularPad1d, CircularPad2d, CircularPad3d = (_padding_layer("Circular", dims) for dims in (1, 2, 3))


def _source_positions(size, out_size, rule, scale):
    """Source coordinate of each output position along one axis. ``rule``: "corners"
    (PyTorch's ``align_corners=True``), "half_pixel" (PyTorch's default: pixel centres, the
    scale ``scale`` (``1 / scale_factor`` when a factor was given) or ``size / out_size``)
    or "asymmetric" (Jittor's ``tf_mode``: ``i * size / out_size``)."""
    out = np.arange(out_size, dtype=np.float64)
    if rule == "corners":
        return out * ((size - 1) / (out_size - 1)) if out_size > 1 else np.zeros(out_size)
    if rule == "asymmetric":
        return out * (size / out_size)
    return (out + 0.5) * (size / out_size if scale is None else scale) - 0.5


def _linear_taps(size, out_size, rule, scale):
    """Two (index, weight) taps per output position for linear interpolation."""
    source = np.maximum(_source_positions(size, out_size, rule, scale), 0)
    low = np.minimum(np.floor(source).astype(np.int64), size - 1)
    fraction = source - low
    return [(low, 1 - fraction), (np.minimum(low + 1, size - 1), fraction)]


def _cubic_taps(size, out_size, rule, scale, a=-0.75):
    """Four (index, weight) taps per output position for Keys' cubic convolution with
    ``a = -0.75`` (PyTorch's bicubic): indices clamped to the edge, weights summing to 1."""
    source = _source_positions(size, out_size, rule, scale)
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


def _nearest_indices(size, out_size, scale):
    """PyTorch's nearest source indices: ``floor(i * scale)`` in float32 (``scale`` is
    ``1 / scale_factor`` or ``size / out_size``), at most ``size - 1``."""
    scale = np.float32(size) / np.float32(out_size) if scale is None else np.float32(scale)
    return np.minimum(np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64), size - 1)


def _nearest(x, out_sizes, scales):
    """Nearest-neighbour resize of the last two dims: an affine reindex where PyTorch's
    float32 indices equal ``i * size // out_size`` (the usual case), else a gather."""
    batch, channels, height, width = x.shape
    indices = [_nearest_indices(size, out, scale) for size, out, scale in zip((height, width), out_sizes, scales)]
    shape = [batch, channels] + list(out_sizes)
    if all(np.array_equal(index, np.arange(out) * size // out)
           for index, size, out in zip(indices, (height, width), out_sizes)):
        return x.reindex(shape, ["i0", "i1", f"i2*{height}/{out_sizes[0]}", f"i3*{width}/{out_sizes[1]}"])
    rows, columns = (Var(index.astype(np.int32)) for index in indices)
    return x.reindex(shape, ["i0", "i1", "@e0(i2)", "@e1(i3)"], extras=[rows, columns])


def _output_geometry(x, size, scale_factor, recompute_scale_factor):
    """Output sizes and the per-axis coordinate scales (None: ``size / out_size``)."""
    if (size is None) == (scale_factor is None):
        raise MetajitValueError("interpolate: give exactly one of size and scale_factor, got "
                                + ("both" if size is not None else "neither"))
    height, width = x.shape[2:]
    if size is not None:
        out_sizes, scales = tuple(int(s) for s in _pair(size)), (None, None)
    else:
        factors = tuple(float(f) for f in _pair(scale_factor))
        if len(factors) != 2 or not all(f > 0 for f in factors):
            raise MetajitValueError(f"interpolate: scale_factor must be a positive number or two, got {scale_factor!r}")
        out_sizes = tuple(int(math.floor(s * f)) for s, f in zip((height, width), factors))
        scales = (None, None) if recompute_scale_factor else tuple(1.0 / f for f in factors)
    if len(out_sizes) != 2 or min(out_sizes) < 1:
        raise MetajitValueError(f"interpolate: the output size must be two positive sizes, got {out_sizes} "
                                f"from input {tuple(x.shape)}")
    return out_sizes, scales


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=False, recompute_scale_factor=None,
                *, tf_mode=False):
    """Resize the spatial dims of (N, C, H, W) ``x`` to ``size`` or by ``scale_factor``:
    ``nearest``, ``bilinear``, ``bicubic`` (PyTorch's a = -0.75, edge-clamped taps; it
    overshoots like PyTorch's) or ``area`` (adaptive average pooling), as
    ``torch.nn.functional.interpolate``. With ``scale_factor`` the output size is
    ``floor(size * scale_factor)`` and source coordinates use ``1 / scale_factor``, as
    PyTorch (``recompute_scale_factor=True``: ``size / out_size``; ``area`` and
    ``align_corners=True`` always use the sizes). Jittor's ``tf_mode=True`` maps bilinear
    output ``i`` to ``i * size / out_size`` (no half-pixel offset), as Jittor.
    Example: ``F.interpolate(x, scale_factor=2, mode="bicubic")``."""
    if x.ndim != 4:
        raise MetajitShapeError(f"interpolate expects a 4-d (N, C, H, W) input, got shape {tuple(x.shape)}")
    if mode not in ("nearest", "area") and mode not in _TAPS:
        raise MetajitValueError(f"interpolate: mode must be 'nearest', 'bilinear', 'bicubic' or 'area', got {mode!r}")
    out_sizes, scales = _output_geometry(x, size, scale_factor, recompute_scale_factor)
    if mode == "nearest":
        return _nearest(x, out_sizes, scales)
    if mode == "area":
        return adaptive_avg_pool2d(x, out_sizes)
    taps = _TAPS[mode]
    rule = "corners" if align_corners else "asymmetric" if tf_mode and mode == "bilinear" else "half_pixel"
    height, width = x.shape[2:]
    rows_mixed = _mix_axis(x, 2, taps(height, out_sizes[0], rule, scales[0]))
    return _mix_axis(rows_mixed, 3, taps(width, out_sizes[1], rule, scales[1]))


class Upsample(Module):
    """Module form of `interpolate`."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=False, recompute_scale_factor=None):
        super().__init__()
        self.settings = dict(size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners,
                             recompute_scale_factor=recompute_scale_factor)

    def execute(self, x):
        return interpolate(x, **self.settings)


def pixel_shuffle(x, upscale_factor):
    """(*, C r^2, H, W) -> (*, C, H r, W r) with r = ``upscale_factor``: each group of r^2
    channels becomes an r x r block of pixels, as PyTorch. Example: ``F.pixel_shuffle(x, 2)``."""
    r = upscale_factor
    *lead, channels, height, width = x.shape
    if x.ndim < 3 or channels % (r * r):
        raise MetajitShapeError(f"pixel_shuffle({r}): the channels (dim -3) of shape {tuple(x.shape)} must be "
                                f"divisible by {r * r}")
    blocks = x.reshape(tuple(lead) + (channels // (r * r), r, r, height, width))
    order = tuple(range(len(lead))) + tuple(len(lead) + a for a in (0, 3, 1, 4, 2))
    return blocks.permute(order).reshape(tuple(lead) + (channels // (r * r), height * r, width * r))


def pixel_unshuffle(x, downscale_factor):
    """(*, C, H r, W r) -> (*, C r^2, H, W) with r = ``downscale_factor``: the inverse of
    `pixel_shuffle`, as PyTorch. Example: ``F.pixel_unshuffle(x, 2)``."""
    r = downscale_factor
    *lead, channels, height, width = x.shape
    if x.ndim < 3 or height % r or width % r:
        raise MetajitShapeError(f"pixel_unshuffle({r}): the height and width of shape {tuple(x.shape)} must be "
                                f"divisible by {r}")
    blocks = x.reshape(tuple(lead) + (channels, height // r, r, width // r, r))
    order = tuple(range(len(lead))) + tuple(len(lead) + a for a in (0, 2, 4, 1, 3))
    return blocks.permute(order).reshape(tuple(lead) + (channels * r * r, height // r, width // r))


PixelShuffle = functional_module("PixelShuffle", pixel_shuffle, ("upscale_factor",))
PixelUnshuffle = functional_module("PixelUnshuffle", pixel_unshuffle, ("downscale_factor",))
