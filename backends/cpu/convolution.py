"""What the cpu backend's convolution programs (`onednn`, `winograd`, `grouped_conv`) have
in common."""

# the forward convolution library ops
FORWARD = ("conv2d", "conv2d_bias", "conv2d_bias_relu", "conv2d_bias_relu6", "conv2d_bias_add", "conv2d_bias_add_relu")
RELU, RELU6 = 1, 2  # the activation codes the drivers take (0: none)
_ACTIVATIONS = {"conv2d_bias_relu": RELU, "conv2d_bias_relu6": RELU6, "conv2d_bias_add_relu": RELU}


def epilogue(call):
    """(adds a bias, activation code: 0, `RELU` or `RELU6`) as the forward convolution
    ``call`` writes its output."""
    return call.name in FORWARD and call.name != "conv2d", _ACTIVATIONS.get(call.name, 0)


def adds_residual(call):
    """Whether the forward convolution ``call`` adds its fourth input (a value of the
    output's shape) before its activation (``conv2d_bias_add``, ``conv2d_bias_add_relu``)."""
    return call.name.startswith("conv2d_bias_add")


def is_unit_stride_float32(call, names):
    """Whether the library ``call`` is one of the convolutions ``names`` with stride 1,
    no dilation and float32 operands: the only kind the drivers compute."""
    stride, _, dilation = call.attrs[:3]
    return call.name in names and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1) \
        and all(str(dtype) == "float32" for dtype, _ in call.inputs)
