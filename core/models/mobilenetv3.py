"""MobileNetV3 (Howard et al. 2019), large and small: inverted residuals with
squeeze-and-excitation (hard-sigmoid scale) and hard-swish, as torchvision builds them."""
import functools

from .. import nn
from ..errors import MetajitValueError
from .blocks import (check_setting, check_stride, conv_norm_activation, initialise, kaiming_fan_out, make_divisible,
                     normal_linear)
from .ops import SqueezeExcitation
from .pretrained import model_function

__all__ = ["MobileNetV3", "mobilenet_v3_large", "mobilenet_v3_small"]


class InvertedResidualConfig:
    """One row of the MobileNetV3 paper's tables 1 and 2: channels (scaled by ``width_mult``
    and rounded to multiples of 8), ``kernel``, ``use_se``, ``activation`` (``"HS"``:
    hard-swish, ``"RE"``: ReLU), ``stride`` and ``dilation``.

    Example: ``InvertedResidualConfig(16, 3, 64, 24, False, "RE", 2, 1, width_mult=1.0)``.
    """

    def __init__(self, input_channels, kernel, expanded_channels, out_channels, use_se, activation, stride,
                 dilation, width_mult):
        self.input_channels = self.adjust_channels(input_channels, width_mult)
        self.kernel = kernel
        self.expanded_channels = self.adjust_channels(expanded_channels, width_mult)
        self.out_channels = self.adjust_channels(out_channels, width_mult)
        self.use_se, self.use_hs = use_se, activation == "HS"
        self.stride, self.dilation = stride, dilation

    @staticmethod
    def adjust_channels(channels, width_mult):
        """``channels * width_mult`` rounded by `make_divisible` to a multiple of 8."""
        return make_divisible(channels * width_mult, 8)


class InvertedResidual(nn.Module):
    """1x1 expansion (skipped when it would keep the width), depthwise convolution (dilated
    instead of strided when ``cnf.dilation > 1``), optional ``se_layer``, 1x1 linear
    projection, in ``block``; a shortcut when the shape is kept.

    Example: ``InvertedResidual(InvertedResidualConfig(16, 3, 64, 24, False, "RE", 2, 1, 1.0), nn.BatchNorm2d)``.
    """

    def __init__(self, cnf, norm_layer, se_layer=functools.partial(SqueezeExcitation,
                                                                   scale_activation=nn.Hardsigmoid)):
        super().__init__()
        check_stride(cnf.stride, "MobileNetV3")
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        activation = nn.Hardswish if cnf.use_hs else nn.ReLU
        layers = []
        if cnf.expanded_channels != cnf.input_channels:
            layers.append(conv_norm_activation(cnf.input_channels, cnf.expanded_channels, 1, activation=activation,
                                               norm_layer=norm_layer))
        layers.append(conv_norm_activation(cnf.expanded_channels, cnf.expanded_channels, cnf.kernel,
                                           1 if cnf.dilation > 1 else cnf.stride, cnf.expanded_channels, activation,
                                           norm_layer, dilation=cnf.dilation))
        if cnf.use_se:
            layers.append(se_layer(cnf.expanded_channels, make_divisible(cnf.expanded_channels // 4, 8)))
        layers.append(conv_norm_activation(cnf.expanded_channels, cnf.out_channels, 1, activation=None,
                                           norm_layer=norm_layer))
        self.block = nn.Sequential(*layers)
        self.out_channels = cnf.out_channels
        self._is_cn = cnf.stride > 1

    def execute(self, x):
        return self.block(x) + x if self.use_res_connect else self.block(x)


class MobileNetV3(nn.Module):
    """MobileNetV3 over ``inverted_residual_setting`` (a list of `InvertedResidualConfig`,
    e.g. from `mobilenet_v3_config`), with ``last_channel`` features before the classifier,
    ``block`` and ``norm_layer`` replacing the layer classes (default BatchNorm2d with eps
    0.001 and momentum 0.01, as torchvision) and ``dropout`` in the classifier.

    Example: ``MobileNetV3(*mobilenet_v3_config("mobilenet_v3_small", width_mult=0.5), num_classes=10)``.
    """

    def __init__(self, inverted_residual_setting, last_channel, num_classes=1000, block=None, norm_layer=None,
                 dropout=0.2):
        super().__init__()
        check_setting("inverted_residual_setting", inverted_residual_setting, InvertedResidualConfig,
                      "InvertedResidualConfig", "see mobilenet_v3_config")
        block = block or InvertedResidual
        norm_layer = norm_layer or functools.partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        layers = [conv_norm_activation(3, inverted_residual_setting[0].input_channels, 3, 2,
                                       activation=nn.Hardswish, norm_layer=norm_layer)]
        layers += [block(row, norm_layer) for row in inverted_residual_setting]
        last_input = inverted_residual_setting[-1].out_channels
        layers.append(conv_norm_activation(last_input, 6 * last_input, 1, activation=nn.Hardswish,
                                           norm_layer=norm_layer))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(6 * last_input, last_channel), nn.Hardswish(), nn.Dropout(dropout),
                                        nn.Linear(last_channel, num_classes))
        initialise(self, conv=kaiming_fan_out, linear=normal_linear(0.01))

    def execute(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


# input, kernel, expanded, output, squeeze-and-excitation, activation, stride
_LARGE = [(16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2), (24, 3, 72, 24, False, "RE", 1),
          (24, 5, 72, 40, True, "RE", 2), (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
          (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
          (80, 3, 184, 80, False, "HS", 1), (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1)]
_SMALL = [(16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2), (24, 3, 88, 24, False, "RE", 1),
          (24, 5, 96, 40, True, "HS", 2), (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
          (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1)]
# body rows, then the last stage's (input, expanded) of its first block, its width and
# the expansion of its other two blocks, and the last channel
_ARCHITECTURES = {"mobilenet_v3_large": (_LARGE, 112, 672, 160, 960, 1280),
                  "mobilenet_v3_small": (_SMALL, 48, 288, 96, 576, 1024)}


def mobilenet_v3_config(arch, width_mult=1.0, reduced_tail=False, dilated=False):
    """(inverted_residual_setting, last_channel) of ``arch`` (``"mobilenet_v3_large"`` or
    ``"mobilenet_v3_small"``) as torchvision's table: ``width_mult`` scales the channels,
    ``reduced_tail`` halves the last stage's channels and ``last_channel``, ``dilated``
    dilates the last stage by 2 instead of striding.

    Example: ``MobileNetV3(*mobilenet_v3_config("mobilenet_v3_large", reduced_tail=True))``.
    """
    if arch not in _ARCHITECTURES:
        raise MetajitValueError(f"Unsupported model type {arch!r}: use one of {list(_ARCHITECTURES)}")
    body, first_input, first_expanded, width, expanded, last_channel = _ARCHITECTURES[arch]
    divider, dilation = (2 if reduced_tail else 1), (2 if dilated else 1)
    width, expanded = width // divider, expanded // divider
    tail = [(first_input, 5, first_expanded, width, True, "HS", 2)] + [(width, 5, expanded, width, True, "HS", 1)] * 2
    setting = [InvertedResidualConfig(*row, 1, width_mult) for row in body]
    setting += [InvertedResidualConfig(*row, dilation, width_mult) for row in tail]
    return setting, InvertedResidualConfig.adjust_channels(last_channel // divider, width_mult)


def _mobilenet_v3(arch, files):
    def construct(width_mult=1.0, reduced_tail=False, dilated=False, **arguments):
        return MobileNetV3(*mobilenet_v3_config(arch, width_mult, reduced_tail, dilated), **arguments)
    return model_function(arch, files, construct,
                          target="`MobileNetV3` (``width_mult``, ``reduced_tail`` and ``dilated`` to "
                                 "`mobilenet_v3_config`)")


mobilenet_v3_large = _mobilenet_v3("mobilenet_v3_large", {"IMAGENET1K_V1": "mobilenet_v3_large-8738ca79.pth",
                                                          "IMAGENET1K_V2": "mobilenet_v3_large-5c1a4163.pth"})
mobilenet_v3_small = _mobilenet_v3("mobilenet_v3_small", {"IMAGENET1K_V1": "mobilenet_v3_small-047dcff4.pth"})
