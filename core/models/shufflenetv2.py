"""ShuffleNet V2 (Ma et al. 2018) at widths 0.5, 1.0, 1.5 and 2.0."""
from .. import nn
from ..errors import MetajitValueError
from ..shape_ops import concat
from .blocks import conv_norm_activation
from .pretrained import model_function

__all__ = ["ShuffleNetV2", "InvertedResidual", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
           "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"]


def _conv_bn(in_channels, out_channels, kernel_size=1, stride=1, groups=1, activation=nn.ReLU):
    return list(conv_norm_activation(in_channels, out_channels, kernel_size, stride, groups, activation))


channel_shuffle = nn.channel_shuffle  # torchvision's helper of this module


class InvertedResidual(nn.Module):
    """A ShuffleNet V2 unit: with stride 1, half the channels pass through and the other
    half go through 1x1, 3x3 depthwise, 1x1 (``branch2``); with stride 2 both halves are
    computed from the whole input (``branch1`` depthwise then 1x1). Then the two halves'
    channels are interleaved."""

    def __init__(self, inp, oup, stride):
        super().__init__()
        if not 1 <= stride <= 3:
            raise MetajitValueError("illegal stride value")
        self.stride = stride
        branch = oup // 2
        if stride == 1 and inp != branch * 2:
            raise MetajitValueError(f"Invalid combination of stride {stride}, inp {inp} and oup {oup} values. "
                                    "If stride == 1 then inp should be equal to oup // 2 << 1.")
        self.branch1 = nn.Sequential(
            *_conv_bn(inp, inp, 3, stride, inp, activation=None), *_conv_bn(inp, branch)) if stride > 1 \
            else nn.Sequential()
        self.branch2 = nn.Sequential(*_conv_bn(inp if stride > 1 else branch, branch),
                                     *_conv_bn(branch, branch, 3, stride, branch, activation=None),
                                     *_conv_bn(branch, branch))

    def execute(self, x):
        if self.stride == 1:
            kept, changed = x.chunk(2, 1)
            out = concat([kept, self.branch2(changed)], 1)
        else:
            out = concat([self.branch1(x), self.branch2(x)], 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNet V2 with ``stages_repeats`` units in stages 2-4 and ``stages_out_channels``
    (five widths: stem, three stages, last 1x1 convolution).

    Example: ``ShuffleNetV2([4, 8, 4], [24, 48, 96, 192, 1024], num_classes=10)``.
    """

    def __init__(self, stages_repeats, stages_out_channels, num_classes=1000, inverted_residual=InvertedResidual):
        super().__init__()
        if len(stages_repeats) != 3:
            raise MetajitValueError("expected stages_repeats as list of 3 positive ints")
        if len(stages_out_channels) != 5:
            raise MetajitValueError("expected stages_out_channels as list of 5 positive ints")
        self._stage_out_channels = list(stages_out_channels)
        channels = stages_out_channels[0]
        self.conv1 = nn.Sequential(*_conv_bn(3, channels, 3, 2))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        for stage, repeats, output in zip((2, 3, 4), stages_repeats, stages_out_channels[1:4]):
            units = [inverted_residual(channels, output, 2)]
            units += [inverted_residual(output, output, 1) for _ in range(repeats - 1)]
            setattr(self, f"stage{stage}", nn.Sequential(*units))
            channels = output
        self.conv5 = nn.Sequential(*_conv_bn(channels, stages_out_channels[-1]))
        self.fc = nn.Linear(stages_out_channels[-1], num_classes)

    def execute(self, x):
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(x.mean((2, 3)))


def _shufflenet(name, channels, file_name):
    return model_function(name, {"IMAGENET1K_V1": file_name}, ShuffleNetV2,
                          {"stages_repeats": [4, 8, 4], "stages_out_channels": channels}, "`ShuffleNetV2`")


shufflenet_v2_x0_5 = _shufflenet("shufflenet_v2_x0_5", [24, 48, 96, 192, 1024], "shufflenetv2_x0.5-f707e7126e.pth")
shufflenet_v2_x1_0 = _shufflenet("shufflenet_v2_x1_0", [24, 116, 232, 464, 1024], "shufflenetv2_x1-5666bf0f80.pth")
shufflenet_v2_x1_5 = _shufflenet("shufflenet_v2_x1_5", [24, 176, 352, 704, 1024], "shufflenetv2_x1_5-3c479a10.pth")
shufflenet_v2_x2_0 = _shufflenet("shufflenet_v2_x2_0", [24, 244, 488, 976, 2048], "shufflenetv2_x2_0-8be3c8ee.pth")
