"""What the cpu backend's convolution programs (`onednn`, `winograd`, `grouped_conv`) have
in common."""

FORWARD = ("conv2d", "conv2d_bias", "conv2d_bias_relu")  # the forward convolution library ops


def epilogue(call):
    """(adds a bias, applies a ReLU) as the forward convolution ``call`` writes its output."""
    return call.name in ("conv2d_bias", "conv2d_bias_relu"), call.name == "conv2d_bias_relu"


def is_unit_stride_float32(call, names):
    """Whether the library ``call`` is one of the convolutions ``names`` with stride 1,
    no dilation and float32 operands: the only kind the drivers compute."""
    stride, _, dilation = call.attrs[:3]
    return call.name in names and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) \
        and all(str(dtype) == "float32" for dtype, _ in call.inputs)
