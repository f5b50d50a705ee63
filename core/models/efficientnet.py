"""EfficientNet B0-B7 (Tan & Le 2019) and EfficientNetV2 S/M/L (Tan & Le 2021): MBConv and
FusedMBConv blocks with SiLU, squeeze-and-excitation and stochastic depth, as torchvision
builds them."""
import copy
import functools
import math

from .. import init, nn
from ..errors import MetajitValueError
from .blocks import check_setting, check_stride, conv_norm_activation, initialise, kaiming_fan_out, make_divisible
from .ops import SqueezeExcitation, StochasticDepth
from .pretrained import model_function

__all__ = ["EfficientNet", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
           "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_s",
           "efficientnet_v2_m", "efficientnet_v2_l"]


class _MBConvConfig:
    """A stage of ``num_layers`` blocks of class ``block``: expansion ratio, kernel, first
    stride, input and output channels."""

    def __init__(self, expand_ratio, kernel, stride, input_channels, out_channels, num_layers, block):
        self.expand_ratio, self.kernel, self.stride = expand_ratio, kernel, stride
        self.input_channels, self.out_channels, self.num_layers, self.block = (input_channels, out_channels,
                                                                                num_layers, block)

    @staticmethod
    def adjust_channels(channels, width_mult, min_value=None):
        """``channels * width_mult`` rounded by `make_divisible` to a multiple of 8."""
        return make_divisible(channels * width_mult, 8, min_value)

    def __repr__(self):
        return (f"{type(self).__name__}(expand_ratio={self.expand_ratio}, kernel={self.kernel}, stride={self.stride}, "
                f"input_channels={self.input_channels}, out_channels={self.out_channels}, "
                f"num_layers={self.num_layers}, block={self.block.__name__})")


class MBConvConfig(_MBConvConfig):
    """An MBConv stage (table 1 of the EfficientNet paper), channels scaled by ``width_mult``
    and rounded to multiples of 8, the depth by ``depth_mult`` rounded up.

    Example: ``MBConvConfig(6, 3, 2, 16, 24, 2, width_mult=1.1, depth_mult=1.2)``.
    """

    def __init__(self, expand_ratio, kernel, stride, input_channels, out_channels, num_layers, width_mult=1.0,
                 depth_mult=1.0, block=None):
        super().__init__(expand_ratio, kernel, stride, self.adjust_channels(input_channels, width_mult),
                         self.adjust_channels(out_channels, width_mult), self.adjust_depth(num_layers, depth_mult),
                         block or MBConv)

    @staticmethod
    def adjust_depth(num_layers, depth_mult):
        """``num_layers * depth_mult`` rounded up."""
        return int(math.ceil(num_layers * depth_mult))


class FusedMBConvConfig(_MBConvConfig):
    """A FusedMBConv stage (table 4 of the EfficientNetV2 paper), channels as given.

    Example: ``FusedMBConvConfig(4, 3, 2, 24, 48, 4)``.
    """

    def __init__(self, expand_ratio, kernel, stride, input_channels, out_channels, num_layers, block=None):
        super().__init__(expand_ratio, kernel, stride, input_channels, out_channels, num_layers, block or FusedMBConv)


class _Residual(nn.Module):
    """``block`` (``layers`` in a Sequential) with a shortcut after stochastic depth when
    ``cnf`` keeps the shape: the frame of both EfficientNet blocks."""

    def __init__(self, cnf, stochastic_depth_prob, layers):
        super().__init__()
        self.use_res_connect = cnf.stride == 1 and cnf.input_channels == cnf.out_channels
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")
        self.out_channels = cnf.out_channels

    def execute(self, x):
        result = self.block(x)
        return self.stochastic_depth(result) + x if self.use_res_connect else result


class MBConv(_Residual):
    """1x1 expansion (skipped at ratio 1), depthwise convolution, squeeze-and-excitation
    (``se_layer``, squeezing to a quarter of the input channels), 1x1 linear projection.

    Example: ``MBConv(MBConvConfig(6, 3, 2, 16, 24, 1), 0.1, nn.BatchNorm2d)``.
    """

    def __init__(self, cnf, stochastic_depth_prob, norm_layer, se_layer=SqueezeExcitation):
        check_stride(cnf.stride, "EfficientNet")
        expanded = cnf.adjust_channels(cnf.input_channels, cnf.expand_ratio)
        layers = []
        if expanded != cnf.input_channels:
            layers.append(conv_norm_activation(cnf.input_channels, expanded, 1, activation=nn.SiLU,
                                               norm_layer=norm_layer))
        layers += [conv_norm_activation(expanded, expanded, cnf.kernel, cnf.stride, expanded, nn.SiLU, norm_layer),
                   se_layer(expanded, max(1, cnf.input_channels // 4), activation=nn.SiLU),
                   conv_norm_activation(expanded, cnf.out_channels, 1, activation=None, norm_layer=norm_layer)]
        super().__init__(cnf, stochastic_depth_prob, layers)


class FusedMBConv(_Residual):
    """Expansion and spatial convolution fused into one ``kernel`` convolution, then a 1x1
    linear projection; a single convolution at expansion ratio 1.

    Example: ``FusedMBConv(FusedMBConvConfig(4, 3, 2, 24, 48, 1), 0.1, nn.BatchNorm2d)``.
    """

    def __init__(self, cnf, stochastic_depth_prob, norm_layer):
        check_stride(cnf.stride, "EfficientNet")
        expanded = cnf.adjust_channels(cnf.input_channels, cnf.expand_ratio)
        if expanded != cnf.input_channels:
            layers = [conv_norm_activation(cnf.input_channels, expanded, cnf.kernel, cnf.stride, activation=nn.SiLU,
                                           norm_layer=norm_layer),
                      conv_norm_activation(expanded, cnf.out_channels, 1, activation=None, norm_layer=norm_layer)]
        else:
            layers = [conv_norm_activation(cnf.input_channels, cnf.out_channels, cnf.kernel, cnf.stride,
                                           activation=nn.SiLU, norm_layer=norm_layer)]
        super().__init__(cnf, stochastic_depth_prob, layers)


def _uniform_by_outputs(module):
    bound = 1.0 / math.sqrt(module.out_features)
    init.uniform_(module.weight, -bound, bound)
    init.zeros_(module.bias)


class EfficientNet(nn.Module):
    """EfficientNet (V1 and V2) over ``inverted_residual_setting``, a list of `MBConvConfig` /
    `FusedMBConvConfig` stages; ``dropout`` before the classifier; ``stochastic_depth_prob``
    grows linearly from 0 over the blocks (block ``i`` of ``n`` drops with
    ``stochastic_depth_prob * i / n``); ``norm_layer`` (default BatchNorm2d);
    ``last_channel`` features before the classifier (default 4x the last stage's).

    Example: ``EfficientNet(efficientnet_config("efficientnet_b0")[0], dropout=0.2, num_classes=10)``.
    """

    def __init__(self, inverted_residual_setting, dropout, stochastic_depth_prob=0.2, num_classes=1000,
                 norm_layer=None, last_channel=None):
        super().__init__()
        check_setting("inverted_residual_setting", inverted_residual_setting, _MBConvConfig, "MBConvConfig",
                      "MBConvConfig / FusedMBConvConfig stages; see efficientnet_config")
        norm_layer = norm_layer or nn.BatchNorm2d
        layers = [conv_norm_activation(3, inverted_residual_setting[0].input_channels, 3, 2, activation=nn.SiLU,
                                       norm_layer=norm_layer)]
        total_blocks = sum(stage.num_layers for stage in inverted_residual_setting)
        block_index = 0
        for stage_config in inverted_residual_setting:
            stage = []
            for _ in range(stage_config.num_layers):
                block_config = copy.copy(stage_config)
                if stage:  # the stage's later blocks keep its width and resolution
                    block_config.input_channels, block_config.stride = block_config.out_channels, 1
                probability = stochastic_depth_prob * float(block_index) / total_blocks
                stage.append(block_config.block(block_config, probability, norm_layer))
                block_index += 1
            layers.append(nn.Sequential(*stage))
        last_input = inverted_residual_setting[-1].out_channels
        last_output = 4 * last_input if last_channel is None else last_channel
        layers.append(conv_norm_activation(last_input, last_output, 1, activation=nn.SiLU, norm_layer=norm_layer))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_output, num_classes))
        initialise(self, conv=kaiming_fan_out, linear=_uniform_by_outputs)

    def execute(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


# expansion, kernel, stride, input, output, layers (B0, scaled by width and depth for B1-B7)
_V1 = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
       (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
# the same, fused (FusedMBConv) or not, for EfficientNetV2
_V2 = {
    "efficientnet_v2_s": [(True, 1, 3, 1, 24, 24, 2), (True, 4, 3, 2, 24, 48, 4), (True, 4, 3, 2, 48, 64, 4),
                          (False, 4, 3, 2, 64, 128, 6), (False, 6, 3, 1, 128, 160, 9),
                          (False, 6, 3, 2, 160, 256, 15)],
    "efficientnet_v2_m": [(True, 1, 3, 1, 24, 24, 3), (True, 4, 3, 2, 24, 48, 5), (True, 4, 3, 2, 48, 80, 5),
                          (False, 4, 3, 2, 80, 160, 7), (False, 6, 3, 1, 160, 176, 14),
                          (False, 6, 3, 2, 176, 304, 18), (False, 6, 3, 1, 304, 512, 5)],
    "efficientnet_v2_l": [(True, 1, 3, 1, 32, 32, 4), (True, 4, 3, 2, 32, 64, 7), (True, 4, 3, 2, 64, 96, 7),
                          (False, 4, 3, 2, 96, 192, 10), (False, 6, 3, 1, 192, 224, 19),
                          (False, 6, 3, 2, 224, 384, 25), (False, 6, 3, 1, 384, 640, 7)],
}
# torchvision's BatchNorm for B5-B7 (ported TensorFlow weights) and for V2
_NORM_B5_B7 = functools.partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
_NORM_V2 = functools.partial(nn.BatchNorm2d, eps=1e-03)
# name -> (width multiplier, depth multiplier, dropout, norm layer; files)
_CONFIGS = {
    "efficientnet_b0": (1.0, 1.0, 0.2, None, {"IMAGENET1K_V1": "efficientnet_b0_rwightman-7f5810bc.pth"}),
    "efficientnet_b1": (1.0, 1.1, 0.2, None, {"IMAGENET1K_V1": "efficientnet_b1_rwightman-bac287d4.pth",
                                              "IMAGENET1K_V2": "efficientnet_b1-c27df63c.pth"}),
    "efficientnet_b2": (1.1, 1.2, 0.3, None, {"IMAGENET1K_V1": "efficientnet_b2_rwightman-c35c1473.pth"}),
    "efficientnet_b3": (1.2, 1.4, 0.3, None, {"IMAGENET1K_V1": "efficientnet_b3_rwightman-b3899882.pth"}),
    "efficientnet_b4": (1.4, 1.8, 0.4, None, {"IMAGENET1K_V1": "efficientnet_b4_rwightman-23ab8bcd.pth"}),
    "efficientnet_b5": (1.6, 2.2, 0.4, _NORM_B5_B7, {"IMAGENET1K_V1": "efficientnet_b5_lukemelas-1a07897c.pth"}),
    "efficientnet_b6": (1.8, 2.6, 0.5, _NORM_B5_B7, {"IMAGENET1K_V1": "efficientnet_b6_lukemelas-24a108a5.pth"}),
    "efficientnet_b7": (2.0, 3.1, 0.5, _NORM_B5_B7, {"IMAGENET1K_V1": "efficientnet_b7_lukemelas-c5b4e57e.pth"}),
    "efficientnet_v2_s": (None, None, 0.2, _NORM_V2, {"IMAGENET1K_V1": "efficientnet_v2_s-dd5fe13b.pth"}),
    "efficientnet_v2_m": (None, None, 0.3, _NORM_V2, {"IMAGENET1K_V1": "efficientnet_v2_m-dc08266a.pth"}),
    "efficientnet_v2_l": (None, None, 0.4, _NORM_V2, {"IMAGENET1K_V1": "efficientnet_v2_l-59c71312.pth"}),
}


def efficientnet_config(arch):
    """(inverted_residual_setting, last_channel) of torchvision's ``arch``
    (``"efficientnet_b0"`` ... ``"efficientnet_b7"``, ``"efficientnet_v2_s/m/l"``).

    Example: ``setting, last_channel = efficientnet_config("efficientnet_v2_s")``.
    """
    if arch not in _CONFIGS:
        raise MetajitValueError(f"Unsupported model type {arch!r}: use one of {list(_CONFIGS)}")
    if arch in _V2:
        return [(FusedMBConvConfig if fused else MBConvConfig)(*row) for fused, *row in _V2[arch]], 1280
    width_mult, depth_mult = _CONFIGS[arch][:2]
    return [MBConvConfig(*row, width_mult=width_mult, depth_mult=depth_mult) for row in _V1], None


def _efficientnet(name):
    dropout_default, norm_layer, files = _CONFIGS[name][2:]
    defaults = {"last_channel": efficientnet_config(name)[1]}
    if norm_layer is not None:
        defaults["norm_layer"] = norm_layer

    def construct(dropout=dropout_default, **arguments):
        return EfficientNet(efficientnet_config(name)[0], dropout, **arguments)
    return model_function(name, files, construct, defaults, "`EfficientNet` (``dropout`` defaults to "
                                                            f"{dropout_default})")


efficientnet_b0, efficientnet_b1, efficientnet_b2, efficientnet_b3 = (
    _efficientnet(f"efficientnet_b{index}") for index in range(4))
efficientnet_b4, efficientnet_b5, efficientnet_b6, efficientnet_b7 = (
    _efficientnet(f"efficientnet_b{index}") for index in range(4, 8))
efficientnet_v2_s, efficientnet_v2_m, efficientnet_v2_l = (
    _efficientnet(f"efficientnet_v2_{size}") for size in "sml")
