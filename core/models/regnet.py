"""RegNetX and RegNetY (Radosavovic et al. 2020): stage widths and depths from the quantised
linear width rule, residual bottleneck blocks with group convolutions (and
squeeze-and-excitation for Y), as torchvision builds them."""
import collections
import math

import numpy as np

from .. import nn
from ..errors import MetajitValueError
from .blocks import conv_norm_activation, initialise, kaiming_fan_out, make_divisible, normal_linear
from .ops import SqueezeExcitation
from .pretrained import model_function

__all__ = ["RegNet", "regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf",
           "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf",
           "regnet_x_3_2gf", "regnet_x_8gf", "regnet_x_16gf", "regnet_x_32gf"]


class SimpleStemIN(nn.Sequential):
    """The ImageNet stem: 3x3 stride-2 convolution, norm, activation (children ``0``-``2``).

    Example: ``SimpleStemIN(3, 32, nn.BatchNorm2d, nn.ReLU)``.
    """

    def __init__(self, width_in, width_out, norm_layer, activation_layer):
        super().__init__(*conv_norm_activation(width_in, width_out, 3, 2, activation=activation_layer,
                                               norm_layer=norm_layer))


class BottleneckTransform(nn.Sequential):
    """1x1 (``a``), grouped 3x3 carrying the stride (``b``), squeeze-and-excitation when
    ``se_ratio`` (``se``, squeezing to ``se_ratio * width_in``), linear 1x1 (``c``).

    Example: ``BottleneckTransform(32, 48, 2, nn.BatchNorm2d, nn.ReLU, 8, 1.0, 0.25)``.
    """

    def __init__(self, width_in, width_out, stride, norm_layer, activation_layer, group_width, bottleneck_multiplier,
                 se_ratio):
        bottleneck = int(round(width_out * bottleneck_multiplier))
        layers = collections.OrderedDict()
        layers["a"] = conv_norm_activation(width_in, bottleneck, 1, activation=activation_layer, norm_layer=norm_layer)
        layers["b"] = conv_norm_activation(bottleneck, bottleneck, 3, stride, bottleneck // group_width,
                                           activation_layer, norm_layer)
        if se_ratio:
            layers["se"] = SqueezeExcitation(bottleneck, int(round(se_ratio * width_in)), activation=activation_layer)
        layers["c"] = conv_norm_activation(bottleneck, width_out, 1, activation=None, norm_layer=norm_layer)
        super().__init__(layers)


class ResBottleneckBlock(nn.Module):
    """``activation(x + f(x))``, the shortcut projected (``proj``: strided 1x1 and norm) when
    the width or resolution changes; ``f`` is a `BottleneckTransform`.

    Example: ``ResBottleneckBlock(32, 48, 2, nn.BatchNorm2d, nn.ReLU, group_width=8)``.
    """

    def __init__(self, width_in, width_out, stride, norm_layer, activation_layer, group_width=1,
                 bottleneck_multiplier=1.0, se_ratio=None):
        super().__init__()
        projected = width_in != width_out or stride != 1
        self.proj = (conv_norm_activation(width_in, width_out, 1, stride, activation=None, norm_layer=norm_layer)
                     if projected else None)
        self.f = BottleneckTransform(width_in, width_out, stride, norm_layer, activation_layer, group_width,
                                     bottleneck_multiplier, se_ratio)
        self.activation = activation_layer()

    def execute(self, x):
        shortcut = x if self.proj is None else self.proj(x)
        return self.activation(shortcut + self.f(x))


class AnyStage(nn.Sequential):
    """A stage of ``depth`` blocks of one output width, children named
    ``block{stage_index}-{i}`` as torchvision's; the first carries ``stride``.

    Example: ``AnyStage(32, 48, 2, 1, ResBottleneckBlock, nn.BatchNorm2d, nn.ReLU, 8, 1.0, stage_index=1)``.
    """

    def __init__(self, width_in, width_out, stride, depth, block_constructor, norm_layer, activation_layer,
                 group_width, bottleneck_multiplier, se_ratio=None, stage_index=0):
        super().__init__()
        for index in range(depth):
            self.add_module(f"block{stage_index}-{index}", block_constructor(
                width_in if index == 0 else width_out, width_out, stride if index == 0 else 1, norm_layer,
                activation_layer, group_width, bottleneck_multiplier, se_ratio))


class BlockParams:
    """Per-stage ``depths``, ``widths``, ``group_widths``, ``bottleneck_multipliers`` and
    ``strides`` of a RegNet, and its ``se_ratio`` (None: no squeeze-and-excitation).

    Example: ``BlockParams.from_init_params(depth=16, w_0=48, w_a=27.89, w_m=2.09, group_width=8, se_ratio=0.25)``
    (RegNetY-400MF's).
    """

    def __init__(self, depths, widths, group_widths, bottleneck_multipliers, strides, se_ratio=None):
        self.depths, self.widths, self.group_widths = depths, widths, group_widths
        self.bottleneck_multipliers, self.strides, self.se_ratio = bottleneck_multipliers, strides, se_ratio

    @classmethod
    def from_init_params(cls, depth, w_0, w_a, w_m, group_width, bottleneck_multiplier=1.0, se_ratio=None):
        """The stages of the RegNet design rule: block ``j`` of ``depth`` has width
        ``w_0 * w_m ** round(log((w_0 + j * w_a) / w_0) / log(w_m))`` rounded to a multiple of
        8, consecutive blocks of one width form a stage (stride 2 each), and each stage's
        width is adjusted so its bottleneck splits into groups of ``group_width``. Computed in
        float32, as torchvision's torch arithmetic, so the widths match its own exactly."""
        if w_a < 0 or w_0 <= 0 or w_m <= 1 or w_0 % 8 != 0:
            raise MetajitValueError(f"Invalid RegNet settings w_0={w_0}, w_a={w_a}, w_m={w_m}: need w_a >= 0, "
                                    f"w_0 > 0 and a multiple of 8, w_m > 1")
        float32 = np.float32
        continuous = np.arange(depth).astype(float32) * float32(w_a) + float32(w_0)
        capacity = np.round(np.log(continuous / float32(w_0)) / float32(math.log(w_m)))
        block_widths = (np.round(float32(w_0) * np.power(float32(w_m), capacity) / float32(8)) * 8).astype(int)
        starts = [index for index in range(depth) if index == 0 or block_widths[index] != block_widths[index - 1]]
        stage_widths = [int(block_widths[start]) for start in starts]
        stage_depths = [end - start for start, end in zip(starts, starts[1:] + [depth])]
        stages = len(stage_widths)
        bottleneck_multipliers = [bottleneck_multiplier] * stages
        stage_widths, group_widths = cls._adjust_widths_groups_compatibilty(
            stage_widths, bottleneck_multipliers, [group_width] * stages)
        return cls(stage_depths, stage_widths, group_widths, bottleneck_multipliers, [2] * stages, se_ratio)

    def _get_expanded_params(self):
        return zip(self.widths, self.strides, self.depths, self.group_widths, self.bottleneck_multipliers)

    @staticmethod
    def _adjust_widths_groups_compatibilty(stage_widths, bottleneck_ratios, group_widths):
        """Stage widths whose bottleneck width is a multiple of its group width (the group
        width capped by the bottleneck width), and those group widths."""
        bottlenecks = [int(width * ratio) for width, ratio in zip(stage_widths, bottleneck_ratios)]
        group_widths = [min(group, bottleneck) for group, bottleneck in zip(group_widths, bottlenecks)]
        bottlenecks = [make_divisible(bottleneck, group) for bottleneck, group in zip(bottlenecks, group_widths)]
        return [int(bottleneck / ratio) for bottleneck, ratio in zip(bottlenecks, bottleneck_ratios)], group_widths


class RegNet(nn.Module):
    """A RegNet of the stages ``block_params`` describes (`BlockParams`), after a ``stem_type``
    stem (default `SimpleStemIN`) of ``stem_width``; ``block_type`` (default
    `ResBottleneckBlock`), ``norm_layer`` (default BatchNorm2d) and ``activation`` (default
    ReLU) are called as torchvision calls them.

    Example: ``RegNet(BlockParams.from_init_params(4, 16, 8.0, 2.0, 8), num_classes=10)``.
    """

    def __init__(self, block_params, num_classes=1000, stem_width=32, stem_type=None, block_type=None,
                 norm_layer=None, activation=None):
        super().__init__()
        stem_type, block_type = stem_type or SimpleStemIN, block_type or ResBottleneckBlock
        norm_layer, activation = norm_layer or nn.BatchNorm2d, activation or nn.ReLU
        self.stem = stem_type(3, stem_width, norm_layer, activation)
        width = stem_width
        stages = collections.OrderedDict()
        for index, (width_out, stride, depth, group_width, multiplier) in enumerate(
                block_params._get_expanded_params(), start=1):
            stages[f"block{index}"] = AnyStage(width, width_out, stride, depth, block_type, norm_layer, activation,
                                               group_width, multiplier, block_params.se_ratio, index)
            width = width_out
        self.trunk_output = nn.Sequential(stages)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width, num_classes)
        initialise(self, conv=kaiming_fan_out, linear=normal_linear(0.01))

    def execute(self, x):
        return self.fc(self.avgpool(self.trunk_output(self.stem(x))).flatten(1))


# name -> (from_init_params arguments, files)
_CONFIGS = {
    "regnet_y_400mf": ((16, 48, 27.89, 2.09, 8, 0.25), {"IMAGENET1K_V1": "regnet_y_400mf-c65dace8.pth",
                                                       "IMAGENET1K_V2": "regnet_y_400mf-e6988f5f.pth"}),
    "regnet_y_800mf": ((14, 56, 38.84, 2.4, 16, 0.25), {"IMAGENET1K_V1": "regnet_y_800mf-1b27b58c.pth",
                                                       "IMAGENET1K_V2": "regnet_y_800mf-58fc7688.pth"}),
    "regnet_y_1_6gf": ((27, 48, 20.71, 2.65, 24, 0.25), {"IMAGENET1K_V1": "regnet_y_1_6gf-b11a554e.pth",
                                                        "IMAGENET1K_V2": "regnet_y_1_6gf-0d7bc02a.pth"}),
    "regnet_y_3_2gf": ((21, 80, 42.63, 2.66, 24, 0.25), {"IMAGENET1K_V1": "regnet_y_3_2gf-b5a9779c.pth",
                                                        "IMAGENET1K_V2": "regnet_y_3_2gf-9180c971.pth"}),
    "regnet_y_8gf": ((17, 192, 76.82, 2.19, 56, 0.25), {"IMAGENET1K_V1": "regnet_y_8gf-d0d0e4a8.pth",
                                                       "IMAGENET1K_V2": "regnet_y_8gf-dc2b1b54.pth"}),
    "regnet_y_16gf": ((18, 200, 106.23, 2.48, 112, 0.25), {
        "IMAGENET1K_V1": "regnet_y_16gf-9e6ed7dd.pth", "IMAGENET1K_V2": "regnet_y_16gf-3e4a00f9.pth",
        "IMAGENET1K_SWAG_E2E_V1": "regnet_y_16gf_swag-43afe44d.pth",
        "IMAGENET1K_SWAG_LINEAR_V1": "regnet_y_16gf_lc_swag-f3ec0043.pth"}),
    "regnet_y_32gf": ((20, 232, 115.89, 2.53, 232, 0.25), {
        "IMAGENET1K_V1": "regnet_y_32gf-4dee3f7a.pth", "IMAGENET1K_V2": "regnet_y_32gf-8db6d4b5.pth",
        "IMAGENET1K_SWAG_E2E_V1": "regnet_y_32gf_swag-04fdfa75.pth",
        "IMAGENET1K_SWAG_LINEAR_V1": "regnet_y_32gf_lc_swag-e1583746.pth"}),
    "regnet_y_128gf": ((27, 456, 160.83, 2.52, 264, 0.25), {
        "IMAGENET1K_SWAG_E2E_V1": "regnet_y_128gf_swag-c8ce3e52.pth",
        "IMAGENET1K_SWAG_LINEAR_V1": "regnet_y_128gf_lc_swag-cbe8ce12.pth"}),
    "regnet_x_400mf": ((22, 24, 24.48, 2.54, 16), {"IMAGENET1K_V1": "regnet_x_400mf-adf1edd5.pth",
                                                  "IMAGENET1K_V2": "regnet_x_400mf-62229a5f.pth"}),
    "regnet_x_800mf": ((16, 56, 35.73, 2.28, 16), {"IMAGENET1K_V1": "regnet_x_800mf-ad17e45c.pth",
                                                  "IMAGENET1K_V2": "regnet_x_800mf-94a99ebd.pth"}),
    "regnet_x_1_6gf": ((18, 80, 34.01, 2.25, 24), {"IMAGENET1K_V1": "regnet_x_1_6gf-e3633e7f.pth",
                                                  "IMAGENET1K_V2": "regnet_x_1_6gf-a12f2b72.pth"}),
    "regnet_x_3_2gf": ((25, 88, 26.31, 2.25, 48), {"IMAGENET1K_V1": "regnet_x_3_2gf-f342aeae.pth",
                                                  "IMAGENET1K_V2": "regnet_x_3_2gf-7071aa85.pth"}),
    "regnet_x_8gf": ((23, 80, 49.56, 2.88, 120), {"IMAGENET1K_V1": "regnet_x_8gf-03ceed89.pth",
                                                 "IMAGENET1K_V2": "regnet_x_8gf-2b70d774.pth"}),
    "regnet_x_16gf": ((22, 216, 55.59, 2.1, 128), {"IMAGENET1K_V1": "regnet_x_16gf-2007eb11.pth",
                                                  "IMAGENET1K_V2": "regnet_x_16gf-ba3796d7.pth"}),
    "regnet_x_32gf": ((23, 320, 69.86, 2.0, 168), {"IMAGENET1K_V1": "regnet_x_32gf-9d47f8d0.pth",
                                                  "IMAGENET1K_V2": "regnet_x_32gf-6eb8fdc6.pth"}),
}


def regnet_block_params(name):
    """The `BlockParams` of torchvision's RegNet ``name`` (``"regnet_y_400mf"`` ...).

    Example: ``RegNet(regnet_block_params("regnet_x_400mf"), stem_width=16)``.
    """
    if name not in _CONFIGS:
        raise MetajitValueError(f"Unsupported model type {name!r}: use one of {list(_CONFIGS)}")
    depth, w_0, w_a, w_m, group_width, *se_ratio = _CONFIGS[name][0]
    return BlockParams.from_init_params(depth, w_0, w_a, w_m, group_width, se_ratio=(se_ratio or [None])[0])


def _regnet(name):
    return model_function(name, _CONFIGS[name][1],
                          lambda **arguments: RegNet(regnet_block_params(name), **arguments), target="`RegNet`")


(regnet_y_400mf, regnet_y_800mf, regnet_y_1_6gf, regnet_y_3_2gf, regnet_y_8gf, regnet_y_16gf, regnet_y_32gf,
 regnet_y_128gf) = (_regnet(f"regnet_y_{size}") for size in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf",
                                                               "32gf", "128gf"))
(regnet_x_400mf, regnet_x_800mf, regnet_x_1_6gf, regnet_x_3_2gf, regnet_x_8gf, regnet_x_16gf, regnet_x_32gf) = (
    _regnet(f"regnet_x_{size}") for size in ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf"))
