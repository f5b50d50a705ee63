"""``affine_grid`` and ``grid_sample`` (spatial transformer sampling), as
``torch.nn.functional``: the grid's coordinates become data-dependent integer indices of
a `reindex` gather (reads outside the image give the overflow value 0), and bilinear
weights are element-wise ops on the coordinates, so gradients reach both the image
(the gather's scatter-add) and the grid.

Example::

    grid = F.affine_grid(theta, (N, C, H, W), align_corners=False)   # theta (N, 2, 3)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="border")
"""
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
    """Sampling grid (N, H, W, 2) of the affine maps ``theta`` (N, 2, 3) for an output of
    ``size`` (N, C, H, W); each grid entry is ``(x, y)`` in [-1, 1] input coordinates.
    Example: ``F.affine_grid(jt.array([[[1.0, 0, 0], [0, 1, 0]]]), (1, 3, 4, 4))``."""
    theta = theta if isinstance(theta, Var) else wrap(as_node(theta))
    size = tuple(size)
    if len(size) != 4 or theta.ndim != 3 or tuple(theta.shape[1:]) != (2, 3) or theta.shape[0] != size[0]:
        raise MetajitShapeError(f"affine_grid expects theta (N, 2, 3) and size (N, C, H, W), got theta "
                                f"{tuple(theta.shape)} and size {size} (only 2-d grids are supported)")
    height, width = size[2:]
    xs, ys = np.meshgrid(_normalised_positions(width, align_corners), _normalised_positions(height, align_corners))
    base = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(height * width, 3)  # homogeneous (x, y, 1)
    base = cast(Var(base.astype(np.float64)), theta.dtype)
    points = matmul(base, theta.transpose(0, 2, 1))  # (N, H*W, 2)
    return points.reshape(size[0], height, width, 2)


def _reflect(coordinate, low, high):
    """PyTorch's ``reflect_coordinates``: fold ``coordinate`` into [low, high] by mirroring."""
    if high == low:
        return binary("mul", coordinate, 0.0)
    span = high - low
    distance = unary("abs", binary("sub", coordinate, low))
    flips = unary("floor", binary("div", distance, span))
    extra = binary("sub", distance, binary("mul", flips, span))
    even = binary("eq", binary("mod", flips, 2.0), 0.0)
    return where(even, binary("add", extra, low), binary("sub", high, extra))


def _source_coordinate(normalised, size, padding_mode, align_corners):
    """Pixel coordinate of normalised ``[-1, 1]`` coordinates, with the padding mode's folding."""
    if align_corners:
        coordinate = binary("mul", binary("add", normalised, 1.0), (size - 1) / 2)
    else:
        coordinate = binary("div", binary("sub", binary("mul", binary("add", normalised, 1.0), size), 1.0), 2)
    if padding_mode == "reflection":
        coordinate = _reflect(coordinate, 0.0, size - 1.0) if align_corners else _reflect(coordinate, -0.5, size - 0.5)
    if padding_mode in ("border", "reflection"):  # nan clips to 0, as PyTorch's clip_coordinates
        clipped = binary("minimum", binary("maximum", coordinate, 0.0), float(size - 1))
        coordinate = where(binary("ne", coordinate, coordinate), 0.0, clipped)
    return coordinate


def _index(coordinate, size, rounding):
    """``rounding(coordinate)`` as int32 indices, kept within [-2, size + 1] (nan at -2):
    reads there are outside the image either way, and the cast cannot overflow."""
    bounded = binary("minimum", binary("maximum", coordinate, -2.0), float(size + 1))
    is_nan = binary("ne", coordinate, coordinate)
    return cast(unary(rounding, where(is_nan, -2.0, bounded)), "int32")


def _gather(x, rows, columns):
    """``x[n, c, rows[n, i, j], columns[n, i, j]]`` (N, C, Ho, Wo); outside the image: 0."""
    shape = tuple(x.shape[:2]) + tuple(rows.shape[1:])
    return reindex(x, shape, ["i0", "i1", "@e0(i0,i2,i3)", "@e1(i0,i2,i3)"], extras=[rows, columns])


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=False):
    """Sample ``input`` (N, C, H, W) at ``grid`` (N, Ho, Wo, 2) of ``(x, y)`` in [-1, 1]:
    ``mode`` "bilinear" or "nearest" (half to even, as PyTorch), ``padding_mode`` "zeros",
    "border" or "reflection", ``align_corners`` as PyTorch. Returns (N, C, Ho, Wo).
    Example: ``F.grid_sample(x, grid, align_corners=True)``."""
    x = input if isinstance(input, Var) else wrap(as_node(input))
    grid = grid if isinstance(grid, Var) else wrap(as_node(grid))
    if x.ndim != 4 or grid.ndim != 4 or grid.shape[-1] != 2 or grid.shape[0] != x.shape[0]:
        raise MetajitShapeError(f"grid_sample expects input (N, C, H, W) and grid (N, Ho, Wo, 2), got "
                                f"{tuple(x.shape)} and {tuple(grid.shape)} (only 2-d sampling is supported)")
    if mode not in ("bilinear", "nearest"):
        raise MetajitValueError(f"grid_sample: mode must be 'bilinear' or 'nearest', got {mode!r}")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise MetajitValueError(f"grid_sample: padding_mode must be 'zeros', 'border' or 'reflection', "
                                f"got {padding_mode!r}")
    grid = cast(grid, x.dtype)
    height, width = x.shape[2:]
    column = _source_coordinate(grid[..., 0], width, padding_mode, align_corners)
    row = _source_coordinate(grid[..., 1], height, padding_mode, align_corners)
    if mode == "nearest":
        return _gather(x, _index(row, height, "round"), _index(column, width, "round"))
    top, left = _index(row, height, "floor"), _index(column, width, "floor")
    row_weight, column_weight = binary("sub", row, cast(top, x.dtype)), binary("sub", column, cast(left, x.dtype))
    bottom, right = binary("add", top, 1), binary("add", left, 1)
    result = None
    for rows, vertical in ((top, binary("sub", 1.0, row_weight)), (bottom, row_weight)):
        for columns, horizontal in ((left, binary("sub", 1.0, column_weight)), (right, column_weight)):
            weight = binary("mul", vertical, horizontal).unsqueeze(1)
            term = binary("mul", _gather(x, rows, columns), weight)
            result = term if result is None else binary("add", result, term)
    return result
