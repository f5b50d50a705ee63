"""Grouped stride-1 convolutions with at most 4 input channels per group (ResNeXt-50's
first stage) as a direct convolution (`grouped_conv.cpp`): oneDNN blocks channels by 8,
so with 4 per group its grouped convolution runs at a tenth of the CPU's peak; this
kernel keeps 4 output channels x 16 columns in registers (0.3-0.4 of torch's time on
ResNeXt's 4-channel groups). Forward only (``conv2d``, ``conv2d_bias``, ``conv2d_bias_relu(6)``);
results differ from oneDNN's by rounding (fused multiply-adds in another order)."""
import os
import struct

from .convolution import FORWARD, adds_residual, epilogue, is_unit_stride_float32

_DRIVER_PATH = os.path.join(os.path.dirname(__file__), "grouped_conv.cpp")
_PACK_PARAMETERS = struct.Struct("=14q")  # see grouped_conv.cpp for the order
MAX_GROUP_CHANNELS = 4  # input channels per group; more: oneDNN is faster


def program_for(call):
    """A `GroupedConvolutionProgram` for the library call ``call`` when it is a grouped
    float32 stride-1 undilated forward convolution with few channels per group adding no
    residual (oneDNN adds it as a post-op), else None."""
    groups = call.attrs[3]
    if groups == 1 or adds_residual(call) or not is_unit_stride_float32(call, FORWARD):
        return None
    out_channels, group_channels = call.inputs[1][1][:2]
    if group_channels > MAX_GROUP_CHANNELS or (out_channels // groups) % 4 or call.outputs[0][1][0] == 0:
        return None
    return GroupedConvolutionProgram(call)


class GroupedConvolutionProgram:
    """Runs one grouped convolution shape with `grouped_conv.cpp`."""

    def __init__(self, call):
        self.call = call
        (_, (n, c, h, w)), (_, (k, _, kh, kw)) = call.inputs[:2]
        _, (_, _, oh, ow) = call.outputs[0]
        padding, groups = call.attrs[1], call.attrs[3]
        has_bias, activation = epilogue(call)
        self.parameters = _PACK_PARAMETERS.pack(n, c, h, w, k, oh, ow, kh, kw, padding[0], padding[1], groups,
                                                int(has_bias), activation)

    def __call__(self, inputs, outputs, parameters):
        from metajit.backends import cpu
        cpu.compiler().run_driver(_DRIVER_PATH, inputs, outputs, self.parameters)

    def native_calls(self, inputs, outputs):
        """This call as a launch for the cpu backend's C launcher."""
        from metajit.backends import cpu
        return [(cpu.compiler().driver_address(_DRIVER_PATH), inputs, outputs, self.parameters)]
