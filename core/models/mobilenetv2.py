"""MobileNetV2 (Sandler et al. 2018): inverted residuals with linear bottlenecks."""
from .. import nn
from ..errors import MetajitValueError
from .blocks import conv_norm_activation, initialise, kaiming_fan_out, make_divisible, normal_linear
from .pretrained import model_function

__all__ = ["MobileNetV2", "InvertedResidual", "mobilenet_v2"]


class InvertedResidual(nn.Module):
    """1x1 expansion by ``expand_ratio`` (skipped at 1), 3x3 depthwise, 1x1 linear
    projection (children ``conv.0``, ``conv.1``, ... as torchvision); a shortcut when the
    shape is kept."""

    def __init__(self, inp, oup, stride, expand_ratio, norm_layer=None):
        super().__init__()
        if stride not in (1, 2):
            raise MetajitValueError(f"stride should be 1 or 2 instead of {stride}")
        norm_layer = norm_layer or nn.BatchNorm2d
        hidden = int(round(inp * expand_ratio))
        self.stride, self.out_channels = stride, oup
        self.use_res_connect = stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(conv_norm_activation(inp, hidden, 1, activation=nn.ReLU6, norm_layer=norm_layer))
        layers += [conv_norm_activation(hidden, hidden, 3, stride, hidden, nn.ReLU6, norm_layer),
                   nn.Conv2d(hidden, oup, 1, bias=False), norm_layer(oup)]
        self.conv = nn.Sequential(*layers)

    def execute(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


# expansion t, output channels c, repeats n, first stride s
_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
            [6, 320, 1, 1]]


class MobileNetV2(nn.Module):
    """MobileNetV2 with torchvision's arguments: ``width_mult`` scales every width (rounded
    to ``round_nearest``), ``inverted_residual_setting`` replaces the (t, c, n, s) table,
    ``block`` and ``norm_layer`` replace the layer classes, ``dropout`` before the classifier.

    Example: ``MobileNetV2(width_mult=0.5, num_classes=10)``.
    """

    def __init__(self, num_classes=1000, width_mult=1.0, inverted_residual_setting=None, round_nearest=8,
                 block=None, norm_layer=None, dropout=0.2):
        super().__init__()
        block, norm_layer = block or InvertedResidual, norm_layer or nn.BatchNorm2d
        setting = _SETTING if inverted_residual_setting is None else inverted_residual_setting
        if not setting or any(len(row) != 4 for row in setting):
            raise MetajitValueError(f"inverted_residual_setting should be a non-empty list of 4-element lists, "
                                    f"got {setting}")
        channels = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features = [conv_norm_activation(3, channels, 3, 2, activation=nn.ReLU6, norm_layer=norm_layer)]
        for expansion, width, repeats, first_stride in setting:
            output = make_divisible(width * width_mult, round_nearest)
            for index in range(repeats):
                features.append(block(channels, output, first_stride if index == 0 else 1, expansion,
                                      norm_layer=norm_layer))
                channels = output
        features.append(conv_norm_activation(channels, self.last_channel, 1, activation=nn.ReLU6,
                                             norm_layer=norm_layer))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.last_channel, num_classes))
        initialise(self, conv=kaiming_fan_out, linear=normal_linear(0.01))

    def execute(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


mobilenet_v2 = model_function("mobilenet_v2", {"IMAGENET1K_V1": "mobilenet_v2-b0353104.pth",
                                               "IMAGENET1K_V2": "mobilenet_v2-7ebf99e0.pth"},
                              MobileNetV2, target="`MobileNetV2`")
