"""Convolutions from meta-ops: an im2col *gather* (one reindex, padding and dilation as
index arithmetic with overflow 0) followed by a matrix product, which backends that claim
``matmul`` run as BLAS. Gradients come from the same meta-ops (the gather's gradient is
the col2im scatter).

That composition is the meaning of the library ops ``conv2d`` (``conv2d_bias`` with the
bias added, ``conv2d_bias_relu`` / ``conv2d_bias_relu6`` with a ReLU / ReLU6 after it), ``conv2d_backward_data`` and
``conv2d_backward_weights``
(`metajit.library_ops`): on a device that claims them
(the cpu backend with oneDNN) a float32 convolution and its first-order gradients run
as library kernels; higher orders differentiate the composition."""
import math

from ..passes import autodiff, remat
from .. import creation, init
from ..errors import MetajitShapeError, MetajitValueError
from ..flags import enable_grad
from ..math_ops import binary, cast, register_inference_addition, relu
from ..shape_ops import concat_composed, register_inference_concat
from ..var import Var
from . import library
from .module import Module


def _pair(value, count=2):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * count


def _output_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-d convolution of ``x`` (N, C, H, W) with ``weight`` (OC, C/groups, KH, KW), as PyTorch."""
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    if x.ndim != 4 or weight.ndim != 4:
        raise MetajitShapeError(f"conv2d expects a 4-d input and weight, got {x.shape} and {weight.shape}")
    batch, channels, height, width = x.shape
    out_channels, group_channels, kernel_h, kernel_w = weight.shape
    if channels != group_channels * groups or out_channels % groups:
        raise MetajitShapeError(f"conv2d: input has {channels} channels but weight {weight.shape} "
                                f"with groups={groups} expects {group_channels * groups}")
    out_h = _output_size(height, kernel_h, stride[0], padding[0], dilation[0])
    out_w = _output_size(width, kernel_w, stride[1], padding[1], dilation[1])
    if out_h <= 0 or out_w <= 0:
        raise MetajitShapeError(f"conv2d: input {x.shape} is too small for kernel {weight.shape[2:]} "
                                f"with padding {padding} and dilation {dilation}")
    geometry = (stride, padding, dilation, groups)
    output_shape = (batch, out_channels, out_h, out_w)
    if bias is not None and bias.shape != (out_channels,):
        raise MetajitShapeError(f"conv2d: bias of shape {bias.shape} given for {out_channels} output channels")
    # a convolution over zero channels or of an empty batch is its composition (zeros plus
    # the bias) on every device: libraries reject empty operands
    library_ok = x.dtype == weight.dtype and 0 not in x.shape and 0 not in weight.shape
    if bias is not None and library_ok and bias.dtype == x.dtype and library.claimed("conv2d_bias", x.dtype):
        return library.apply("conv2d_bias", [x, weight, bias], geometry, output_shape)
    if library_ok and library.claimed("conv2d", x.dtype):
        result = library.apply("conv2d", [x, weight], geometry, output_shape)
    else:
        result = _conv2d_composed([x, weight], geometry)
    if bias is not None:
        result = binary("add", result, bias.reshape(1, out_channels, 1, 1))
    return result


def _conv2d_composed(inputs, geometry):
    """conv2d (no bias) as im2col gather + matmul: the meaning of library op ``conv2d``."""
    x, weight = inputs
    (stride, padding, dilation, groups) = geometry
    batch, _, _, _ = x.shape
    out_channels, group_channels, kernel_h, kernel_w = weight.shape
    out_h = _output_size(x.shape[2], kernel_h, stride[0], padding[0], dilation[0])
    out_w = _output_size(x.shape[3], kernel_w, stride[1], padding[1], dilation[1])
    # columns[n, g, oh, ow, c, kh, kw] = x[n, g*Cg + c, oh*s - p + kh*d, ow*s - p + kw*d]
    columns = x.reindex(
        [batch, groups, out_h, out_w, group_channels, kernel_h, kernel_w],
        ["i0", f"i1*{group_channels}+i4",
         f"i2*{stride[0]}-{padding[0]}+i5*{dilation[0]}", f"i3*{stride[1]}-{padding[1]}+i6*{dilation[1]}"])
    # batch and positions share one axis, so the forward product and both gradients
    # (d columns = d out @ kernels^T, d kernels = columns^T @ d out) are single-axis matmuls
    patch = group_channels * kernel_h * kernel_w
    columns = columns.permute(1, 0, 2, 3, 4, 5, 6).reshape(groups, batch * out_h * out_w, patch)
    kernels = weight.reshape(groups, out_channels // groups, patch).transpose(1, 2)
    result = columns @ kernels
    result = result.reshape(groups, batch, out_h, out_w, out_channels // groups)
    result = result.permute(1, 0, 4, 2, 3).reshape(batch, out_channels, out_h, out_w)
    return result


def _linear_gradient(inputs, attrs, wanted):
    """Gradient of conv2d with respect to operand ``wanted`` (0: input, 1: weight) for the
    output gradient in ``inputs``, through the composition (conv2d is linear in each
    operand, so the wanted operand's value never enters: a zeros placeholder stands in)."""
    *geometry, wanted_shape = attrs
    output_grad, other = inputs
    with enable_grad():
        placeholder = creation.zeros(wanted_shape, dtype=other.dtype)
        operands = [placeholder, other] if wanted == 0 else [other, placeholder]
        output = _conv2d_composed(operands, tuple(geometry))
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
    return binary("add", _conv2d_composed([x, weight], geometry), bias.reshape(1, bias.shape[0], 1, 1))


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
    return library.apply(name, [Var.from_node(i) for i in node.inputs], node.attrs[1], node.shape)


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
            return library.apply("conv2d_bias_add", [Var.from_node(i) for i in node.inputs] + [other],
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


library.register("conv2d", _conv2d_composed, _conv2d_gradients)
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


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-d convolution of ``x`` (N, C, L) with ``weight`` (OC, C/groups, K)."""
    result = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, _pair(stride, 1)[0]),
                    (0, _pair(padding, 1)[0]), (1, _pair(dilation, 1)[0]), groups)
    return result.squeeze(2)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, dilation=1):
    """Transposed 2-d convolution (``weight`` is (C, OC, KH, KW)), as a stride-1 convolution of
    the zero-dilated, padded input with the flipped, transposed kernel."""
    stride, padding = _pair(stride), _pair(padding)
    output_padding, dilation = _pair(output_padding), _pair(dilation)
    batch, channels, height, width = x.shape
    kernel_h, kernel_w = weight.shape[2:]
    grown_h, grown_w = (height - 1) * stride[0] + 1, (width - 1) * stride[1] + 1
    edge_h = dilation[0] * (kernel_h - 1) - padding[0]
    edge_w = dilation[1] * (kernel_w - 1) - padding[1]
    if edge_h < 0 or edge_w < 0:
        raise MetajitValueError("conv_transpose2d: padding larger than dilation * (kernel - 1) "
                                "is not supported")
    spread = x.reindex(
        [batch, channels, grown_h + 2 * edge_h + output_padding[0], grown_w + 2 * edge_w + output_padding[1]],
        ["i0", "i1", f"(i2-{edge_h})/{stride[0]}", f"(i3-{edge_w})/{stride[1]}"],
        overflow_conditions=[f"(i2-{edge_h})%{stride[0]}!=0", f"(i3-{edge_w})%{stride[1]}!=0",
                             f"i2<{edge_h}", f"i3<{edge_w}"])
    flipped = weight.flip((2, 3)).transpose(0, 1)
    return conv2d(spread, flipped, bias, 1, 0, dilation)


class _ConvNd(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                 bias, dims, transposed=False, output_padding=0):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise MetajitValueError(f"channels {in_channels} -> {out_channels} must be divisible by "
                                    f"groups={groups}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, dims)
        self.stride, self.padding = _pair(stride, dims), _pair(padding, dims)
        self.dilation, self.output_padding = _pair(dilation, dims), _pair(output_padding, dims)
        shape = ((in_channels, out_channels // groups) if transposed
                 else (out_channels, in_channels // groups)) + self.kernel_size
        self.weight = init.kaiming_uniform_(creation.empty(*shape), a=math.sqrt(5))
        if bias:
            fan_in = init.fan_in_and_fan_out(self.weight)[0]
            bound = 1 / math.sqrt(fan_in) if fan_in else 0
            self.bias = init.uniform_(creation.empty(out_channels), -bound, bound)
        else:
            self.bias = None

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class Conv2d(_ConvNd):
    """2-d convolution with stride, padding, dilation and groups (depthwise when groups = channels)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, 2)

    def execute(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


Conv = Conv2d


class Conv1d(_ConvNd):
    """1-d convolution with stride, padding, dilation and groups."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, 1)

    def execute(self, x):
        return conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-d convolution (groups = 1)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 bias=True, dilation=1):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, 1, bias, 2,
                         transposed=True, output_padding=output_padding)

    def execute(self, x):
        return conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                self.output_padding, self.dilation)
