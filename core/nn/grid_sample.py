"""``affine_grid`` and ``grid_sample`` (spatial transformer sampling) in 2-d and 3-d, as
``torch.nn.functional``: the grid's coordinates become data-dependent integer indices of
a `reindex` gather (reads outside the image give the overflow value 0), and the
bilinear / trilinear weights are element-wise ops on the coordinates, so gradients reach
both the image (the gather's scatter-add) and the grid.

Example::

    grid = F.affine_grid(theta, (N, C, H, W), align_corners=False)   # theta (N, 2, 3)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="border")
    volume_grid = F.affine_grid(theta3, (N, C, D, H, W))              # theta3 (N, 3, 4)
"""
import itertools

import numpy as np

from ..errors import MetajitShapeError, MetajitValueError
from ..math_ops import as_node, binary, cast, matmul, unary, where, wrap
from ..shape_ops import reindex
from ..var import Var


def _normalised_positions(size, align_corners):
    """The [-1, 1] coordinates of ``size`` pixel centres (or corners)."""
    if align_corners:
        return np.linspace(-1.0, 1.0, size) if size > 1 else np.zeros(1)
    return (2 * np.arange(size) + 1) / size - 1


def affine_grid(theta, size, align_corners=False):
    """Sampling grid of the affine maps ``theta`` for an output of ``size``: theta (N, 2, 3)
    and size (N, C, H, W) give a grid (N, H, W, 2) of ``(x, y)``; theta (N, 3, 4) and size
    (N, C, D, H, W) a grid (N, D, H, W, 3) of ``(x, y, z)``, in [-1, 1] input coordinates.
    Example: ``F.affine_grid(jt.array([[[1.0, 0, 0], [0, 1, 0]]]), (1, 3, 4, 4))``."""
    theta = theta if isinstance(theta, Var) else wrap(as_node(theta))
    size = tuple(size)
    spatial = len(size) - 2
    if spatial not in (2, 3) or theta.ndim != 3 or tuple(theta.shape[1:]) != (spatial, spatial + 1) \
            or theta.shape[0] != size[0]:
        raise MetajitShapeError(f"affine_grid expects theta (N, 2, 3) with size (N, C, H, W), or theta (N, 3, 4) "
                                f"with size (N, C, D, H, W); got theta {tuple(theta.shape)} and size {size}")
    axes = np.meshgrid(*[_normalised_positions(s, align_corners) for s in size[2:]], indexing="ij")
    # homogeneous (x, y[, z], 1): x runs along the last dim, as PyTorch's grids
    base = np.stack(list(axes[::-1]) + [np.ones_like(axes[0])], -1).reshape(-1, spatial + 1)
    base = cast(Var(base.astype(np.float64)), theta.dtype)
    points = matmul(base, theta.transpose(0, 2, 1))  # (N, D*H*W, spatial)
    return points.reshape((size[0],) + size[2:] + (spatial,))


def _reflect(coordinate, low, high, scalar_kernel):
    """PyTorch's ``reflect_coordinates``: fold ``coordinate`` into [low, high] by mirroring.
    ``scalar_kernel`` follows its scalar (3-d) version: ``fmod`` for the remainder, and a
    flip count past the int range counts as even (its int cast gives INT_MIN)."""
    if high == low:
        return binary("mul", coordinate, 0.0)
    span = high - low
    distance = unary("abs", binary("sub", coordinate, low))
    flips = unary("floor", binary("div", distance, span))
    even = binary("eq", binary("mod", flips, 2.0), 0.0)
    if scalar_kernel:
        extra = binary("mod", distance, span)
        even = binary("logical_or", even, binary("ge", flips, 2.0 ** 31))
    else:
        extra = binary("sub", distance, binary("mul", flips, span))
    return where(even, binary("add", extra, low), binary("sub", high, extra))


def _source_coordinate(normalised, size, padding_mode, align_corners, scalar_kernel):
    """Pixel coordinate of normalised ``[-1, 1]`` coordinates, with the padding mode's folding.
    Border and reflection clip a nan coordinate to 0 as PyTorch's vectorised (2-d) kernel,
    or to the last pixel as its ``scalar_kernel`` (3-d: ``std::min/max``)."""
    if align_corners:
        coordinate = binary("mul", binary("add", normalised, 1.0), (size - 1) / 2)
    else:
        coordinate = binary("div", binary("sub", binary("mul", binary("add", normalised, 1.0), size), 1.0), 2)
    if padding_mode == "reflection":
        low, high = (0.0, size - 1.0) if align_corners else (-0.5, size - 0.5)
        coordinate = _reflect(coordinate, low, high, scalar_kernel)
    if padding_mode in ("border", "reflection"):
        clipped = binary("minimum", binary("maximum", coordinate, 0.0), float(size - 1))
        coordinate = where(binary("ne", coordinate, coordinate), size - 1.0 if scalar_kernel else 0.0, clipped)
    return coordinate


def _index(coordinate, size, rounding):
    """``rounding(coordinate)`` as int32 indices, kept within [-2, size + 1] (nan at -2):
    reads there are outside the image either way, and the cast cannot overflow."""
    bounded = binary("minimum", binary("maximum", coordinate, -2.0), float(size + 1))
    is_nan = binary("ne", coordinate, coordinate)
    return cast(unary(rounding, where(is_nan, -2.0, bounded)), "int32")


def _inside(indices, sizes):
    """Where every index lies in ``[0, size)`` of its dim."""
    inside = None
    for index, size in zip(indices, sizes):
        within = binary("logical_and", binary("ge", index, 0), binary("lt", index, size))
        inside = within if inside is None else binary("logical_and", inside, within)
    return inside


def _gather(x, indices):
    """``x[n, c, indices[0][n, ...], indices[1][n, ...], ...]`` (N, C, *grid dims), one
    index Var per spatial dim of ``x``; outside the image: 0."""
    loops = ",".join(["i0"] + [f"i{2 + d}" for d in range(len(indices))])
    shape = tuple(x.shape[:2]) + tuple(indices[0].shape[1:])
    return reindex(x, shape, ["i0", "i1"] + [f"@e{d}({loops})" for d in range(len(indices))], extras=indices)


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    """Sample ``input`` (N, C, H, W) at ``grid`` (N, Ho, Wo, 2) of ``(x, y)`` in [-1, 1], or
    ``input`` (N, C, D, H, W) at ``grid`` (N, Do, Ho, Wo, 3) of ``(x, y, z)``: ``mode``
    "bilinear" (trilinear in 3-d, as PyTorch) or "nearest" (half to even, as PyTorch),
    ``padding_mode`` "zeros", "border" or "reflection", ``align_corners`` as PyTorch.
    Returns (N, C, Ho, Wo) or (N, C, Do, Ho, Wo).
    Example: ``F.grid_sample(x, grid, align_corners=True)``."""
    x = input if isinstance(input, Var) else wrap(as_node(input))
    grid = grid if isinstance(grid, Var) else wrap(as_node(grid))
    spatial = x.ndim - 2
    if spatial not in (2, 3) or grid.ndim != x.ndim or grid.shape[-1] != spatial or grid.shape[0] != x.shape[0]:
        raise MetajitShapeError(f"grid_sample expects input (N, C, H, W) with grid (N, Ho, Wo, 2), or input "
                                f"(N, C, D, H, W) with grid (N, Do, Ho, Wo, 3); got {tuple(x.shape)} and "
                                f"{tuple(grid.shape)}")
    if mode not in ("bilinear", "nearest"):
        raise MetajitValueError(f"grid_sample: mode must be 'bilinear' or 'nearest', got {mode!r}")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise MetajitValueError(f"grid_sample: padding_mode must be 'zeros', 'border' or 'reflection', "
                                f"got {padding_mode!r}")
    grid = cast(grid, x.dtype)
    sizes = tuple(x.shape[2:])
    # the grid's last dim is (x, y[, z]): x addresses the last spatial dim
    coordinates = [_source_coordinate(grid[..., spatial - 1 - d], size, padding_mode, align_corners, spatial == 3)
                   for d, size in enumerate(sizes)]
    if mode == "nearest":
        return _gather(x, [_index(c, size, "round") for c, size in zip(coordinates, sizes)])
    lows = [_index(c, size, "floor") for c, size in zip(coordinates, sizes)]
    fractions = [binary("sub", c, cast(low, x.dtype)) for c, low in zip(coordinates, lows)]
    result = None
    for corner in itertools.product((False, True), repeat=spatial):
        indices, weight = [], None
        for low, fraction, upper in zip(lows, fractions, corner):
            indices.append(binary("add", low, 1) if upper else low)
            factor = fraction if upper else binary("sub", 1.0, fraction)
            weight = factor if weight is None else binary("mul", weight, factor)
        if spatial == 3:  # PyTorch's 3-d kernel skips corners outside the volume: nan/inf weights there add 0
            weight = where(_inside(indices, sizes), weight, 0.0)
        term = binary("mul", _gather(x, indices), weight.unsqueeze(1))
        result = term if result is None else binary("add", result, term)
    return result
