"""``unfold`` (im2col) and ``fold`` (col2im): sliding blocks of an image as columns and
back, as one `reindex` gather and one `reindex_reduce` scatter-add over the same index
map (each other's gradients), as ``torch.nn.functional.unfold`` / ``fold``.

Example::

    columns = F.unfold(x, kernel_size=3, padding=1)      # (N, C*9, H*W)
    back = F.fold(columns, (H, W), kernel_size=3, padding=1)  # each pixel times its block count
"""
from ..errors import MetajitShapeError
from ..math_ops import as_node, wrap
from ..shape_ops import reindex, reindex_reduce
from ..var import Var
from .conv import _output_size, _pair
from .module import functional_module


def _geometry(kernel_size, dilation, padding, stride):
    return tuple(_pair(v) for v in (kernel_size, dilation, padding, stride))


def _block_grid(op, size, kernel, dilation, padding, stride):
    """The number of block positions along each spatial dim, checked positive."""
    blocks = [_output_size(size[d], kernel[d], stride[d], padding[d], dilation[d]) for d in range(2)]
    if min(blocks) <= 0:
        raise MetajitShapeError(f"{op}: spatial size {tuple(size)} is too small for kernel {kernel} with "
                                f"padding {padding} and dilation {dilation}")
    return blocks


def _image_indices(kernel, dilation, padding, stride, blocks_w, batch_expr, column_expr, block_expr):
    """The image index expressions (n, c, h, w) of column entry ``(batch, column, block)``,
    where column = c * kh * kw + ki * kw + kj and block = bi * blocks_w + bj."""
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = kernel, dilation, padding, stride
    ki, kj = f"(({column_expr})/{kw})%{kh}", f"({column_expr})%{kw}"
    bi, bj = f"({block_expr})/{blocks_w}", f"({block_expr})%{blocks_w}"
    return [batch_expr, f"({column_expr})/{kh * kw}",
            f"{bi}*{sh}-{ph}+{ki}*{dh}", f"{bj}*{sw}-{pw}+{kj}*{dw}"]


def unfold(x, kernel_size, dilation=1, padding=0, stride=1):
    """Sliding ``kernel_size`` blocks of ``x`` (N, C, H, W) as columns: (N, C*kh*kw, L), L the
    number of blocks; padding reads zeros. Example: ``F.unfold(x, 2, stride=2)``."""
    x = x if isinstance(x, Var) else wrap(as_node(x))
    if x.ndim != 4:
        raise MetajitShapeError(f"unfold expects a 4-d (N, C, H, W) input, got shape {tuple(x.shape)}")
    kernel, dilation, padding, stride = _geometry(kernel_size, dilation, padding, stride)
    batch, channels = x.shape[:2]
    blocks_h, blocks_w = _block_grid("unfold", x.shape[2:], kernel, dilation, padding, stride)
    shape = (batch, channels * kernel[0] * kernel[1], blocks_h * blocks_w)
    return reindex(x, shape, _image_indices(kernel, dilation, padding, stride, blocks_w, "i0", "i1", "i2"))


def fold(x, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """The inverse arrangement of `unfold`: columns (N, C*kh*kw, L) summed into an image
    (N, C, *output_size), overlapping entries added (a 2-d input is one unbatched image).
    Example: ``F.fold(columns, (4, 4), 2, stride=2)``."""
    x = x if isinstance(x, Var) else wrap(as_node(x))
    if x.ndim == 2:
        return fold(x.unsqueeze(0), output_size, kernel_size, dilation, padding, stride)[0]
    kernel, dilation, padding, stride = _geometry(kernel_size, dilation, padding, stride)
    output_size = _pair(output_size)
    if x.ndim != 3 or x.shape[1] % (kernel[0] * kernel[1]):
        raise MetajitShapeError(f"fold expects (N, C*{kernel[0]}*{kernel[1]}, L) columns, got shape {tuple(x.shape)}")
    blocks_h, blocks_w = _block_grid("fold", output_size, kernel, dilation, padding, stride)
    if x.shape[2] != blocks_h * blocks_w:
        raise MetajitShapeError(f"fold: {x.shape[2]} blocks given, but output size {output_size} with kernel "
                                f"{kernel} has {blocks_h * blocks_w}")
    shape = (x.shape[0], x.shape[1] // (kernel[0] * kernel[1])) + output_size
    return reindex_reduce(x, "add", shape, _image_indices(kernel, dilation, padding, stride, blocks_w,
                                                          "i0", "i1", "i2"))


Unfold = functional_module("Unfold", unfold, ("kernel_size", "dilation", "padding", "stride"))
Fold = functional_module("Fold", fold, ("output_size", "kernel_size", "dilation", "padding", "stride"))
