"""ResNet (He et al. 2015, torchvision's v1.5: the stride sits on the 3x3 convolution of a
bottleneck), ResNeXt and Wide ResNet, with torchvision's parameter names."""
from .. import init, nn
from ..errors import MetajitValueError
from .blocks import initialise, kaiming_fan_out
from .pretrained import model_function

__all__ = ["ResNet", "BasicBlock", "Bottleneck", "resnet18", "resnet34", "resnet50", "resnet101",
           "resnet152", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2",
           "wide_resnet101_2", "resnet26", "resnet38", "Resnet18", "Resnet26", "Resnet34", "Resnet38", "Resnet50",
           "Resnet101", "Resnet152", "Resnext50_32x4d", "Resnext101_32x8d", "Wide_resnet50_2", "Wide_resnet101_2"]


def conv3x3(in_channels, out_channels, stride=1, groups=1, dilation=1):
    """3x3 convolution without bias, padded by ``dilation`` (torchvision's helper)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride, dilation, dilation, groups, bias=False)


def conv1x1(in_channels, out_channels, stride=1):
    """1x1 convolution without bias (torchvision's helper)."""
    return nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        if groups != 1 or base_width != 64:
            raise MetajitValueError("BasicBlock supports only groups=1 and base_width=64")
        if dilation > 1:
            raise MetajitValueError("BasicBlock does not support dilation > 1")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def execute(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, grouped), 1x1 expand by 4, with a shortcut (ResNet-50 and up)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                 norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation)
        self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def execute(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + shortcut)


class ResNet(nn.Module):
    """A ResNet of ``block`` (`BasicBlock` or `Bottleneck`) with ``layers`` blocks per stage.

    Arguments as torchvision's: ``num_classes``, ``zero_init_residual`` (last BN of each
    block starts at 0), ``groups`` and ``width_per_group`` (ResNeXt, Wide ResNet),
    ``replace_stride_with_dilation`` (three booleans for stages 2-4), ``norm_layer``.

    Example: ``ResNet(BasicBlock, [2, 2, 2, 2], num_classes=10)``.
    """

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, groups=1, width_per_group=64,
                 replace_stride_with_dilation=None, norm_layer=None):
        super().__init__()
        self._norm_layer = norm_layer or nn.BatchNorm2d
        self.inplanes, self.dilation = 64, 1
        replace_stride_with_dilation = replace_stride_with_dilation or [False, False, False]
        if len(replace_stride_with_dilation) != 3:
            raise MetajitValueError("replace_stride_with_dilation should be None or a 3-element tuple, "
                                    f"got {replace_stride_with_dilation}")
        self.groups, self.base_width = groups, width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, 2, 3, bias=False)
        self.bn1 = self._norm_layer(self.inplanes)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], 2, replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], 2, replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], 2, replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        initialise(self, conv=kaiming_fan_out)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, Bottleneck):
                    init.zeros_(module.bn3.weight)
                elif isinstance(module, BasicBlock):
                    init.zeros_(module.bn2.weight)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       self._norm_layer(planes * block.expansion))
        stage = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width,
                       previous_dilation, self._norm_layer)]
        self.inplanes = planes * block.expansion
        stage += [block(self.inplanes, planes, groups=self.groups, base_width=self.base_width,
                        dilation=self.dilation, norm_layer=self._norm_layer) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def execute(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


# name -> (block, stage depths, extra constructor arguments, torchvision's checkpoint files)
_CONFIGS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2], {}, {"IMAGENET1K_V1": "resnet18-f37072fd.pth"}),
    "resnet34": (BasicBlock, [3, 4, 6, 3], {}, {"IMAGENET1K_V1": "resnet34-b627a593.pth"}),
    "resnet50": (Bottleneck, [3, 4, 6, 3], {}, {"IMAGENET1K_V1": "resnet50-0676ba61.pth",
                                                "IMAGENET1K_V2": "resnet50-11ad3fa6.pth"}),
    "resnet101": (Bottleneck, [3, 4, 23, 3], {}, {"IMAGENET1K_V1": "resnet101-63fe2227.pth",
                                                  "IMAGENET1K_V2": "resnet101-cd907fc2.pth"}),
    "resnet152": (Bottleneck, [3, 8, 36, 3], {}, {"IMAGENET1K_V1": "resnet152-394f9c45.pth",
                                                  "IMAGENET1K_V2": "resnet152-f82ba261.pth"}),
    "resnext50_32x4d": (Bottleneck, [3, 4, 6, 3], {"groups": 32, "width_per_group": 4},
                        {"IMAGENET1K_V1": "resnext50_32x4d-7cdf4587.pth",
                         "IMAGENET1K_V2": "resnext50_32x4d-1a0047aa.pth"}),
    "resnext101_32x8d": (Bottleneck, [3, 4, 23, 3], {"groups": 32, "width_per_group": 8},
                         {"IMAGENET1K_V1": "resnext101_32x8d-8ba56ff5.pth",
                          "IMAGENET1K_V2": "resnext101_32x8d-110c445d.pth"}),
    "resnext101_64x4d": (Bottleneck, [3, 4, 23, 3], {"groups": 64, "width_per_group": 4},
                         {"IMAGENET1K_V1": "resnext101_64x4d-173b62eb.pth"}),
    "wide_resnet50_2": (Bottleneck, [3, 4, 6, 3], {"width_per_group": 128},
                        {"IMAGENET1K_V1": "wide_resnet50_2-95faca4d.pth",
                         "IMAGENET1K_V2": "wide_resnet50_2-9ba9bcbe.pth"}),
    "wide_resnet101_2": (Bottleneck, [3, 4, 23, 3], {"width_per_group": 128},
                         {"IMAGENET1K_V1": "wide_resnet101_2-32ee1156.pth",
                          "IMAGENET1K_V2": "wide_resnet101_2-d733dc28.pth"}),
    # Jittor's shallower bottleneck networks (no torchvision checkpoint: weights= a path)
    "resnet26": (Bottleneck, [1, 2, 4, 1], {}, {}),
    "resnet38": (Bottleneck, [2, 3, 5, 2], {}, {}),
}


def _resnet(name):
    block, layers, defaults, files = _CONFIGS[name]
    return model_function(name, files, lambda **arguments: ResNet(block, layers, **arguments), defaults, "`ResNet`")


resnet18, resnet34, resnet50, resnet101, resnet152 = (
    _resnet(n) for n in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"))
resnext50_32x4d, resnext101_32x8d, resnext101_64x4d = (
    _resnet(n) for n in ("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"))
wide_resnet50_2, wide_resnet101_2 = _resnet("wide_resnet50_2"), _resnet("wide_resnet101_2")
resnet26, resnet38 = _resnet("resnet26"), _resnet("resnet38")
# Jittor's spellings (``from jittor.models import Resnet50``)
Resnet18, Resnet26, Resnet34, Resnet38, Resnet50 = resnet18, resnet26, resnet34, resnet38, resnet50
Resnet101, Resnet152, Resnext50_32x4d, Resnext101_32x8d = resnet101, resnet152, resnext50_32x4d, resnext101_32x8d
Wide_resnet50_2, Wide_resnet101_2 = wide_resnet50_2, wide_resnet101_2
