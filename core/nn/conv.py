"""Convolutions from meta-ops: an im2col *gather* (one reindex, padding and dilation as
index arithmetic with overflow 0) followed by a matrix product, which backends that claim
``matmul`` run as BLAS. Gradients come from the same meta-ops (the gather's gradient is
the col2im scatter). 1-d convolutions are 2-d ones over a unit height; 3-d ones and all
transposed convolutions (a zero-spreading reindex, then a convolution) are compositions.

That composition is the meaning of the library ops ``conv2d`` (``conv2d_bias`` with the
bias added, ``conv2d_bias_relu`` / ``conv2d_bias_relu6`` with a ReLU / ReLU6 after it), ``conv2d_backward_data`` and
``conv2d_backward_weights``
(`metajit.library_ops`): on a device that claims them
(the cpu backend with oneDNN) a float32 convolution and its first-order gradients run
as library kernels; higher orders differentiate the composition."""
import functools
import math

from ..passes import autodiff, remat
from .. import creation, init
from ..errors import MetajitShapeError, MetajitValueError
from ..flags import enable_grad
from ..math_ops import binary, cast, register_inference_addition, relu
from ..shape_ops import concat_composed, pad, register_inference_concat
from ..var import Var
from . import library
from .module import Module, state_entries


def _pair(value, count=2):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * count


def _output_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def accepts_unbatched(spatial):
    """Decorator: a convolution or pooling of an (N, C, *spatial) input also takes an
    unbatched (C, *spatial) one, as PyTorch's (run as a batch of one, every result
    squeezed again); other ranks raise. Example: ``@accepts_unbatched(3)`` on ``conv3d``."""
    def decorate(function):
        @functools.wraps(function)
        def batched(x, *args, **kwargs):
            if x.ndim == spatial + 1:
                result = function(x.unsqueeze(0), *args, **kwargs)
                return tuple(r.squeeze(0) for r in result) if isinstance(result, tuple) else result.squeeze(0)
            if x.ndim != spatial + 2:
                raise MetajitShapeError(f"{function.__name__} expects an (N, C, {_DIMS[spatial]}) or unbatched "
                                        f"(C, {_DIMS[spatial]}) input, got shape {tuple(x.shape)}")
            return function(x, *args, **kwargs)
        return batched
    return decorate


_DIMS = {1: "L", 2: "H, W", 3: "D, H, W"}


def unit_height(x, name):
    """(N, C, L) or (C, L) ``x`` as (N, C, 1, L) or (C, 1, L): 1-d convolutions and poolings
    run as 2-d ones over a unit height (squeeze dim -2 afterwards).
    Example: ``conv2d(unit_height(x, "conv1d"), weight.unsqueeze(2)).squeeze(-2)``."""
    if x.ndim not in (2, 3):
        raise MetajitShapeError(f"{name} expects an (N, C, L) or unbatched (C, L) input, got shape {tuple(x.shape)}")
    return x.unsqueeze(-2)


def _single(value):
    return _pair(value, 1)[0]


def padding_pairs(padding, kernel, stride, dilation, name):
    """(left, right) padding per spatial axis for PyTorch's ``padding``: sizes, ``"valid"``
    (none) or ``"same"`` (the output as long as the input; stride 1; an odd total pads
    one more on the right, as PyTorch). Example: ``padding_pairs("same", (4,), (1,), (1,),
    "conv1d")`` is ``((1, 2),)``."""
    if not isinstance(padding, str):
        return tuple((p, p) for p in _pair(padding, len(kernel)))
    if padding == "valid":
        return ((0, 0),) * len(kernel)
    if padding != "same":
        raise MetajitValueError(f"{name}: padding must be 'same', 'valid' or sizes, got {padding!r}")
    if any(s != 1 for s in stride):
        raise MetajitValueError(f"{name}: padding='same' needs stride 1, got stride {tuple(stride)}; "
                                "give the padding as sizes")
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple((total // 2, total - total // 2) for total in totals)


def pad_spatial(x, pairs, mode="constant"):
    """``x`` padded on its trailing ``len(pairs)`` dims by ``(left, right)`` pairs, in
    `metajit.shape_ops.pad`'s ``mode``. Example: ``pad_spatial(x, ((1, 1), (0, 2)))``."""
    return pad(x, [size for pair in reversed(pairs) for size in pair], mode)


_GEOMETRIES = {}  # checked geometries by operand shapes and arguments (a model asks the same each call)


def _convolution_geometry(x, weight, bias, stride, padding, dilation, groups, name):
    """Checks a convolution's operands; returns ``x`` (padded on the right where
    ``padding="same"`` pads more there), the geometry ``(stride, padding, dilation,
    groups)`` and the output shape."""
    try:
        key = (x._node.shape, weight._node.shape, None if bias is None else bias._node.shape, stride, padding,
               dilation, groups, name)
        found = _GEOMETRIES.get(key)
    except (TypeError, AttributeError):  # a list among the arguments, an operand that is no Var
        key = found = None
    if found is None:
        found = _checked_geometry(tuple(x.shape), tuple(weight.shape), None if bias is None else tuple(bias.shape),
                                  stride, padding, dilation, groups, name)
        if key is not None and len(_GEOMETRIES) < 4096:
            _GEOMETRIES[key] = found
    extra_padding, geometry, output_shape = found
    if extra_padding is not None:
        x = pad_spatial(x, extra_padding)
    return x, geometry, output_shape


def _checked_geometry(x_shape, weight_shape, bias_shape, stride, padding, dilation, groups, name):
    """`_convolution_geometry` on shapes: ``(right padding pairs to add to x or None,
    geometry, output shape)``; raises for operands that do not fit."""
    spatial = len(x_shape) - 2
    if len(weight_shape) != len(x_shape):
        raise MetajitShapeError(f"{name} expects a {len(x_shape)}-d weight (out_channels, in_channels / groups, "
                                f"{_DIMS[spatial]}), got shape {weight_shape}")
    stride, dilation, kernel = _pair(stride, spatial), _pair(dilation, spatial), weight_shape[2:]
    pairs = padding_pairs(padding, kernel, stride, dilation, name)
    extra_padding = None
    if any(right != left for left, right in pairs):
        extra_padding = [(0, right - left) for left, right in pairs]
        x_shape = x_shape[:2] + tuple(size + right - left for size, (left, right) in zip(x_shape[2:], pairs))
    padding = tuple(left for left, _ in pairs)
    batch, channels = x_shape[:2]
    out_channels, group_channels = weight_shape[:2]
    if channels != group_channels * groups or out_channels % groups:
        raise MetajitShapeError(f"{name}: input has {channels} channels but weight {weight_shape} "
                                f"with groups={groups} expects {group_channels * groups}")
    sizes = tuple(_output_size(x_shape[2 + a], kernel[a], stride[a], padding[a], dilation[a]) for a in range(spatial))
    if min(sizes) <= 0:
        raise MetajitShapeError(f"{name}: input {x_shape} is too small for kernel {kernel} "
                                f"with padding {padding} and dilation {dilation}")
    if bias_shape is not None and bias_shape != (out_channels,):
        raise MetajitShapeError(f"{name}: bias of shape {bias_shape} given for {out_channels} output channels")
    return extra_padding, (stride, padding, dilation, groups), (batch, out_channels) + sizes


@accepts_unbatched(2)
def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d convolution of ``x`` (N, C, H, W) with ``weight`` (OC, C/groups, KH, KW), as
    PyTorch (``padding``: sizes, ``"same"`` or ``"valid"``). Example: ``F.conv2d(x, w, b, padding=1)``."""
    x, geometry, output_shape = _convolution_geometry(x, weight, bias, stride, padding, dilation, groups, "conv2d")
    # a convolution over zero channels or of an empty batch is its composition (zeros plus
    # the bias) on every device: libraries reject empty operands
    library_ok = x.dtype == weight.dtype and 0 not in x.shape and 0 not in weight.shape
    if bias is not None and library_ok and bias.dtype == x.dtype and library.claimed("conv2d_bias", x.dtype):
        return library.apply("conv2d_bias", [x, weight, bias], geometry, output_shape)
    if library_ok and library.claimed("conv2d", x.dtype):
        result = library.apply("conv2d", [x, weight], geometry, output_shape)
    else:
        result = _conv_composed([x, weight], geometry)
    if bias is not None:
        result = binary("add", result, bias.reshape(1, -1, 1, 1))
    return result


@accepts_unbatched(3)
def conv3d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """3-d convolution of ``x`` (N, C, D, H, W) with ``weight`` (OC, C/groups, KD, KH, KW), as
    PyTorch (the composition of `conv2d`: a gather and a matrix product).
    Example: ``F.conv3d(volume, w, padding="same")``."""
    x, geometry, _ = _convolution_geometry(x, weight, bias, stride, padding, dilation, groups, "conv3d")
    result = _conv_composed([x, weight], geometry)
    return result if bias is None else binary("add", result, bias.reshape(1, -1, 1, 1, 1))


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-d convolution of ``x`` (N, C, L) with ``weight`` (OC, C/groups, K): `conv2d` over a
    unit height. Example: ``F.conv1d(signal, w, padding="same")``."""
    height_padding = padding if isinstance(padding, str) else (0, _single(padding))
    return conv2d(unit_height(x, "conv1d"), weight.unsqueeze(2), bias, (1, _single(stride)), height_padding,
                  (1, _single(dilation)), groups).squeeze(-2)


def _conv_composed(inputs, geometry):
    """A convolution (no bias) over ``len(stride)`` spatial dims as an im2col gather and a
    matrix product: the meaning of library op ``conv2d``."""
    x, weight = inputs
    (stride, padding, dilation, groups) = geometry
    spatial, batch = len(stride), x.shape[0]
    out_channels, group_channels, kernel = weight.shape[0], weight.shape[1], tuple(weight.shape[2:])
    sizes = [_output_size(x.shape[2 + a], kernel[a], stride[a], padding[a], dilation[a]) for a in range(spatial)]
    # columns[n, g, *o, c, *k] = x[n, g*Cg + c, o*s - p + k*d ...]
    channel = 2 + spatial
    columns = x.reindex(
        [batch, groups] + sizes + [group_channels] + list(kernel),
        ["i0", f"i1*{group_channels}+i{channel}"]
        + [f"i{2 + a}*{stride[a]}-{padding[a]}+i{channel + 1 + a}*{dilation[a]}" for a in range(spatial)])
    # batch and positions share one axis, so the forward product and both gradients
    # (d columns = d out @ kernels^T, d kernels = columns^T @ d out) are single-axis matmuls
    patch, positions = group_channels * math.prod(kernel), math.prod(sizes)
    columns = columns.permute((1, 0) + tuple(range(2, columns.ndim))).reshape(groups, batch * positions, patch)
    kernels = weight.reshape(groups, out_channels // groups, patch).transpose(1, 2)
    result = (columns @ kernels).reshape([groups, batch] + sizes + [out_channels // groups])
    result = result.permute((1, 0, channel) + tuple(range(2, channel)))
    return result.reshape([batch, out_channels] + sizes)


def _linear_gradient(inputs, attrs, wanted):
    """Gradient of conv2d with respect to operand ``wanted`` (0: input, 1: weight) for the
    output gradient in ``inputs``, through the composition (conv2d is linear in each
    operand, so the wanted operand's value never enters: a zeros placeholder stands in)."""
    *geometry, wanted_shape = attrs
    output_grad, other = inputs
    with enable_grad():
        placeholder = creation.zeros(wanted_shape, dtype=other.dtype)
        operands = [placeholder, other] if wanted == 0 else [other, placeholder]
        output = _conv_composed(operands, tuple(geometry))
        grads = autodiff.backward_pass(output._node, output_grad._node, [placeholder._node],
                                       [output_grad._node, other._node])
    found = grads.get(id(placeholder._node))
    return Var.from_node(found) if found is not None else creation.zeros(wanted_shape, dtype=other.dtype)


def _conv2d_gradients(node, output_grad):
    """First-order gradients of a ``conv2d`` library node as backward library ops."""
    x, weight = node.inputs[:2]
    geometry = node.attrs[1]
    if not library.claimed("conv2d_backward_data", output_grad.dtype) \
            or not library.claimed("conv2d_backward_weights", output_grad.dtype):
        return None
    x_again = remat.recomputed(x) or x  # the forward's input need not be kept for the weight gradient
    return [library.apply("conv2d_backward_data", [output_grad, Var.from_node(weight)],
                              geometry + (x.shape,), x.shape),
            library.apply("conv2d_backward_weights", [Var.from_node(x_again), output_grad],
                              geometry + (weight.shape,), weight.shape)]


def _conv2d_bias_composed(inputs, geometry):
    """conv2d with a per-channel bias: the meaning of library op ``conv2d_bias``."""
    x, weight, bias = inputs
    return binary("add", _conv_composed([x, weight], geometry), bias.reshape(1, bias.shape[0], 1, 1))


def _conv2d_bias_gradients(node, output_grad):
    """First-order gradients of a ``conv2d_bias`` node: the convolution's, and the output
    gradient summed over batch and positions for the bias."""
    grads = _conv2d_gradients(node, output_grad)
    if grads is None:
        return None
    return grads + [output_grad.sum((0, 2, 3))]


def _conv2d_bias_relu_composed(inputs, geometry):
    """relu(conv2d_bias): the meaning of library op ``conv2d_bias_relu``."""
    return relu(_conv2d_bias_composed(inputs, geometry))


def _conv2d_bias_relu6_composed(inputs, geometry):
    """min(relu(conv2d_bias), 6): the meaning of library op ``conv2d_bias_relu6``."""
    return binary("minimum", relu(_conv2d_bias_composed(inputs, geometry)), 6.0)


def _conv2d_bias_relu_gradients(node, output_grad):
    """``conv2d_bias``'s gradients of the output gradient where the output is positive."""
    positive = cast(binary("gt", Var.from_node(node), 0.0), output_grad.dtype)
    return _conv2d_bias_gradients(node, binary("mul", output_grad, positive))


def _conv2d_bias_relu6_gradients(node, output_grad):
    """``conv2d_bias``'s gradients of the output gradient where the output is strictly
    between 0 and 6 (PyTorch's ReLU6)."""
    out = Var.from_node(node)
    inside = binary("mul", cast(binary("gt", out, 0.0), output_grad.dtype),
                    cast(binary("lt", out, 6.0), output_grad.dtype))
    return _conv2d_bias_gradients(node, binary("mul", output_grad, inside))


def relu_folded(x):
    """Inference (no gradients tracked) on a pending biased convolution's output (a
    BatchNorm folded into it included): the convolution again with the ReLU as its
    post-op, as ONNX runtimes fuse them (the activations are written once, not written,
    read and written again); None when ``x`` is something else or the device does not
    claim ``conv2d_bias_relu``. (A convolution output that something else reads too is
    then computed twice, once with the ReLU: torchvision's models never do that.)"""
    return _with_activation(x, "conv2d_bias_relu")


def relu6_folded(x):
    """`relu_folded` for ReLU6 (``conv2d_bias_relu6``: MobileNetV2's activation)."""
    return _with_activation(x, "conv2d_bias_relu6")


def _with_activation(x, name):
    node = library.pending_for_inference(x, ("conv2d_bias", "conv2d_bias_add"))
    if node is not None and node.attrs[0] == "conv2d_bias_add":
        name = name.replace("conv2d_bias", "conv2d_bias_add")
    if node is None or not library.claimed(name, node.dtype):
        return None
    return library.apply(name, node.inputs, node.attrs[1], node.shape)


def residual_folded(a, b):
    """Inference (no gradients tracked): ``a + b`` where one is a pending biased
    convolution's output (a folded BatchNorm's included) and the other a Var of its shape
    and dtype, as that convolution with the addition as its post-op (``conv2d_bias_add``:
    the sum written once, as onnxruntime fuses a Conv with the Add after it; a ReLU after
    it folds in too, `relu_folded`). None otherwise: the caller adds."""
    for convolved, other in ((a, b), (b, a)):
        node = library.pending_for_inference(convolved, ("conv2d_bias",))
        if node is not None and isinstance(other, Var) and other._node is not node \
                and other._node.shape == node.shape and other.dtype == node.dtype \
                and library.claimed("conv2d_bias_add", node.dtype):
            return library.apply("conv2d_bias_add", list(node.inputs) + [other],
                                 node.attrs[1], node.shape)
    return None


_JOINED = ("conv2d", "conv2d_bias", "conv2d_bias_relu", "conv2d_bias_relu6", "conv2d_bias_add",
           "conv2d_bias_add_relu", "max_pool2d", "avg_pool2d")  # library ops whose outputs `concat_folded` joins


def concat_folded(values, axis):
    """Inference (no gradients tracked): the channel concatenation of pending outputs of
    convolutions and poolings (GoogLeNet's, Inception's and SqueezeNet's modules) as the
    library op ``concat``, which a device runs as a library kernel (in the blocked layout
    its convolutions hand over: no copy back to NCHW and forth); None for anything else
    (the caller's select over reindexed inputs: it fuses into other consumers)."""
    if axis != 1 or values[0].ndim != 4 or not library.claimed("concat", values[0].dtype):
        return None
    if any(library.pending_for_inference(v, _JOINED) is None for v in values):
        return None
    shape = list(values[0].shape)
    shape[1] = sum(v.shape[1] for v in values)
    return library.apply("concat", values, (axis,), tuple(shape))


def _concat_composed(inputs, attrs):
    """The meaning of library op ``concat``: `metajit.shape_ops.concat` along ``attrs[0]``."""
    return concat_composed(inputs, attrs[0])


def _conv2d_bias_add_composed(inputs, geometry):
    """conv2d_bias plus a value of its output's shape: the meaning of ``conv2d_bias_add``."""
    return binary("add", _conv2d_bias_composed(inputs[:3], geometry), inputs[3])


def _conv2d_bias_add_relu_composed(inputs, geometry):
    """relu(conv2d_bias_add): the meaning of library op ``conv2d_bias_add_relu``."""
    return relu(_conv2d_bias_add_composed(inputs, geometry))


def _conv2d_bias_add_gradients(node, output_grad):
    """``conv2d_bias``'s gradients, and the output gradient itself for the added value."""
    grads = _conv2d_bias_gradients(node, output_grad)
    return None if grads is None else grads + [output_grad]


def _conv2d_bias_add_relu_gradients(node, output_grad):
    """``conv2d_bias_add``'s gradients of the output gradient where the output is positive."""
    positive = cast(binary("gt", Var.from_node(node), 0.0), output_grad.dtype)
    return _conv2d_bias_add_gradients(node, binary("mul", output_grad, positive))


library.register("conv2d", _conv_composed, _conv2d_gradients)
library.register("conv2d_bias", _conv2d_bias_composed, _conv2d_bias_gradients)
library.register("conv2d_bias_relu", _conv2d_bias_relu_composed, _conv2d_bias_relu_gradients)
library.register("conv2d_bias_relu6", _conv2d_bias_relu6_composed, _conv2d_bias_relu6_gradients)
library.register("conv2d_bias_add", _conv2d_bias_add_composed, _conv2d_bias_add_gradients)
library.register("conv2d_bias_add_relu", _conv2d_bias_add_relu_composed, _conv2d_bias_add_relu_gradients)
register_inference_addition(residual_folded)
library.register("concat", _concat_composed)
register_inference_concat(concat_folded)
library.register("conv2d_backward_data", lambda inputs, attrs: _linear_gradient(inputs, attrs, 0))
library.register("conv2d_backward_weights",
                     lambda inputs, attrs: _linear_gradient(inputs[::-1], attrs, 1))


def _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, convolution, name):
    """A transposed convolution (``weight`` (C, OC/groups, *kernel)) as a stride-1
    ``convolution`` of the zero-dilated, padded input (one reindex; a padding past
    ``dilation * (kernel - 1)`` crops it) with the flipped, transposed kernel."""
    spatial = x.ndim - 2
    stride, padding, output_padding, dilation = (_pair(v, spatial) for v in (stride, padding, output_padding,
                                                                             dilation))
    if weight.ndim != x.ndim or x.shape[1] != weight.shape[0] or weight.shape[0] % groups:
        raise MetajitShapeError(f"{name}: input {tuple(x.shape)} and weight {tuple(weight.shape)} (in_channels, "
                                f"out_channels / groups, {_DIMS[spatial]}) do not fit with groups={groups}")
    kernel = tuple(weight.shape[2:])
    edges = [d * (k - 1) - p for k, d, p in zip(kernel, dilation, padding)]
    sizes = [(n - 1) * s + 1 + 2 * e + o for n, s, e, o in zip(x.shape[2:], stride, edges, output_padding)]
    if any(size <= d * (k - 1) for size, d, k in zip(sizes, dilation, kernel)):
        raise MetajitShapeError(f"{name}: padding {padding} leaves no output for input {tuple(x.shape)} and "
                                f"kernel {kernel}")
    offsets = [f"i{2 + a}-{e}" if e >= 0 else f"i{2 + a}+{-e}" for a, e in enumerate(edges)]
    spread = x.reindex(
        list(x.shape[:2]) + sizes, ["i0", "i1"] + [f"({o})/{s}" for o, s in zip(offsets, stride)],
        overflow_conditions=[f"({o})%{s}!=0" for o, s in zip(offsets, stride) if s > 1]
        + [f"i{2 + a}<{e}" for a, e in enumerate(edges) if e > 0])
    in_channels, group_out = weight.shape[:2]
    flipped = weight.reshape((groups, in_channels // groups, group_out) + kernel).transpose(1, 2)
    flipped = flipped.reshape((groups * group_out, in_channels // groups) + kernel).flip(tuple(range(2, x.ndim)))
    return convolution(spread, flipped, bias, 1, 0, dilation, groups)


@accepts_unbatched(2)
def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 2-d convolution of ``x`` (N, C, H, W) with ``weight`` (C, OC/groups, KH, KW),
    as PyTorch (the gradient of `conv2d` with respect to its input).
    Example: ``F.conv_transpose2d(x, w, stride=2, padding=1, output_padding=1)``."""
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, conv2d,
                           "conv_transpose2d")


@accepts_unbatched(3)
def conv_transpose3d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 3-d convolution of ``x`` (N, C, D, H, W) with ``weight`` (C, OC/groups, KD, KH,
    KW), as PyTorch. Example: ``F.conv_transpose3d(volume, w, stride=2)``."""
    return _conv_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation, conv3d,
                           "conv_transpose3d")


def conv_transpose1d(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 1-d convolution of ``x`` (N, C, L) with ``weight`` (C, OC/groups, K):
    `conv_transpose2d` over a unit height. Example: ``F.conv_transpose1d(signal, w, stride=2)``."""
    return conv_transpose2d(unit_height(x, "conv_transpose1d"), weight.unsqueeze(2), bias, (1, _single(stride)),
                            (0, _single(padding)), (0, _single(output_padding)), groups,
                            (1, _single(dilation))).squeeze(-2)


_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """What the convolution modules share: arguments, PyTorch's initialisation and
    ``padding_mode`` (the input padded by `pad_spatial` before a convolution without
    padding). Subclasses set ``dims`` and ``convolution`` (the functional form)."""

    dims, transposed = 2, False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, output_padding=0):
        super().__init__()
        name, dims = type(self).__name__, self.dims
        if in_channels % groups or out_channels % groups:
            raise MetajitValueError(f"{name}: channels {in_channels} -> {out_channels} must be divisible by "
                                    f"groups={groups}")
        if padding_mode not in _PADDING_MODES or self.transposed and padding_mode != "zeros":
            raise MetajitValueError(f"{name}: padding_mode must be one of "
                                    f"{_PADDING_MODES[:1] if self.transposed else _PADDING_MODES}, "
                                    f"got {padding_mode!r}")
        if self.transposed and isinstance(padding, str):
            raise MetajitValueError(f"{name}: padding must be sizes, got {padding!r}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = _pair(kernel_size, dims), _pair(stride, dims)
        self.dilation, self.output_padding = _pair(dilation, dims), _pair(output_padding, dims)
        self.padding = padding if isinstance(padding, str) else _pair(padding, dims)
        self.padding_mode = padding_mode
        self._padding_pairs = padding_pairs(self.padding, self.kernel_size, self.stride, self.dilation, name)
        shape = ((in_channels, out_channels // groups) if self.transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = creation.empty(*shape)
        self.bias = creation.empty(out_channels) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the parameters again, as at construction (`init.fan_in_uniform_`)."""
        init.fan_in_uniform_(self.weight, self.bias)

    def extra_repr(self):
        """PyTorch's summary: sizes and stride, then only the settings that differ from the
        defaults (``bias=False`` included)."""
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        unset = {"padding": (0,) * self.dims, "dilation": (1,) * self.dims, "output_padding": (0,) * self.dims,
                 "groups": 1}
        text += "".join(f", {name}={getattr(self, name)}" for name, default in unset.items()
                        if getattr(self, name) != default)
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class _Convolution(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode)

    def execute(self, x):
        padding = self.padding
        if self.padding_mode != "zeros":
            x, padding = pad_spatial(x, self._padding_pairs, self.padding_mode), 0
        weight, bias = state_entries(self, "_parameters", ("weight", "bias"))
        return self.convolution(x, weight, bias, self.stride, padding, self.dilation, self.groups)


class Conv1d(_Convolution):
    """1-d convolution with stride, padding (sizes, ``"same"``, ``"valid"``; ``padding_mode``
    zeros, reflect, replicate or circular), dilation and groups, as ``torch.nn.Conv1d``.
    Example: ``nn.Conv1d(16, 32, 3, padding="same", padding_mode="reflect")``."""

    dims, convolution = 1, staticmethod(conv1d)


class Conv2d(_Convolution):
    """2-d convolution with stride, padding (sizes, ``"same"``, ``"valid"``; ``padding_mode``),
    dilation and groups (depthwise when groups = channels), as ``torch.nn.Conv2d``.
    Example: ``nn.Conv2d(3, 64, 3, padding=1)``."""

    dims, convolution = 2, staticmethod(conv2d)


Conv = Conv2d


class Conv3d(_Convolution):
    """3-d convolution with stride, padding (sizes, ``"same"``, ``"valid"``; ``padding_mode``),
    dilation and groups, as ``torch.nn.Conv3d``. Example: ``nn.Conv3d(1, 8, 3, padding=1)``."""

    dims, convolution = 3, staticmethod(conv3d)


class _TransposedConvolution(_ConvNd):
    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding)

    def execute(self, x, output_size=None):
        output_padding = self.output_padding if output_size is None else self._output_padding(x, output_size)
        return self.convolution(x, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                                self.dilation)

    def _output_padding(self, x, output_size):
        """The output padding making the output ``output_size`` (its last ``dims`` entries), as
        PyTorch's ``forward(x, output_size)``."""
        wanted, extra = tuple(output_size)[-self.dims:], []
        for a in range(self.dims):
            smallest = ((x.shape[x.ndim - self.dims + a] - 1) * self.stride[a] - 2 * self.padding[a]
                        + self.dilation[a] * (self.kernel_size[a] - 1) + 1)
            extra.append(wanted[a] - smallest)
            if not 0 <= extra[-1] < self.stride[a]:
                raise MetajitShapeError(f"{type(self).__name__}: output_size {tuple(output_size)} cannot come from "
                                        f"input {tuple(x.shape)}; dim {a} can be {smallest} to "
                                        f"{smallest + self.stride[a] - 1}")
        return tuple(extra)


class ConvTranspose1d(_TransposedConvolution):
    """Transposed 1-d convolution (stride, padding, output_padding, groups, dilation), as
    ``torch.nn.ConvTranspose1d``; ``forward(x, output_size=None)``.
    Example: ``nn.ConvTranspose1d(32, 16, 4, stride=2, padding=1)``."""

    dims, convolution = 1, staticmethod(conv_transpose1d)


class ConvTranspose2d(_TransposedConvolution):
    """Transposed 2-d convolution (stride, padding, output_padding, groups, dilation), as
    ``torch.nn.ConvTranspose2d``; ``forward(x, output_size=None)``.
    Example: ``nn.ConvTranspose2d(64, 32, 2, stride=2)``."""

    dims, convolution = 2, staticmethod(conv_transpose2d)


class ConvTranspose3d(_TransposedConvolution):
    """Transposed 3-d convolution (stride, padding, output_padding, groups, dilation), as
    ``torch.nn.ConvTranspose3d``; ``forward(x, output_size=None)``.
    Example: ``nn.ConvTranspose3d(8, 4, 2, stride=2)``."""

    dims, convolution = 3, staticmethod(conv_transpose3d)
