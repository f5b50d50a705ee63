"""ConvNeXt (Liu et al. 2022) tiny, small, base and large: depthwise 7x7 blocks with a
channels-last LayerNorm and MLP, layer scale and stochastic depth, as torchvision builds them."""
import functools

from .. import init, nn
from ..creation import full
from .blocks import check_setting, conv_norm_activation, initialise
from .ops import LayerNorm2d, Permute, StochasticDepth
from .pretrained import model_function

__all__ = ["ConvNeXt", "convnext_tiny", "convnext_small", "convnext_base", "convnext_large"]


class CNBlock(nn.Module):
    """Depthwise 7x7 convolution, LayerNorm over the channels (``norm_layer``, default eps
    1e-6) and a 4x MLP with GELU, computed channels-last between two `Permute` and scaled by
    the learnt per-channel ``layer_scale``; added to the input after stochastic depth.

    Example: ``CNBlock(96, layer_scale=1e-6, stochastic_depth_prob=0.1)``.
    """

    def __init__(self, dim, layer_scale, stochastic_depth_prob, norm_layer=None):
        super().__init__()
        norm_layer = norm_layer or functools.partial(nn.LayerNorm, eps=1e-6)
        self.block = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute([0, 2, 3, 1]),
                                   norm_layer(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim),
                                   Permute([0, 3, 1, 2]))
        self.layer_scale = full((dim, 1, 1), float(layer_scale))
        self.stochastic_depth = StochasticDepth(stochastic_depth_prob, "row")

    def execute(self, x):
        return self.stochastic_depth(self.layer_scale * self.block(x)) + x


class CNBlockConfig:
    """A ConvNeXt stage (section 3 of the paper): ``num_layers`` blocks of ``input_channels``,
    then a 2x2 downsampling to ``out_channels`` (None: the last stage, no downsampling).

    Example: ``CNBlockConfig(96, 192, 3)``.
    """

    def __init__(self, input_channels, out_channels, num_layers):
        self.input_channels, self.out_channels, self.num_layers = input_channels, out_channels, num_layers

    def __repr__(self):
        return (f"{type(self).__name__}(input_channels={self.input_channels}, out_channels={self.out_channels}, "
                f"num_layers={self.num_layers})")


def _truncated_normal(module):
    init.trunc_normal_(module.weight, std=0.02)
    if module.bias is not None:
        init.zeros_(module.bias)


class ConvNeXt(nn.Module):
    """ConvNeXt over ``block_setting`` (a list of `CNBlockConfig`): a 4x4 stride-4 stem,
    the stages of ``block`` (default `CNBlock`) with 2x2 downsamplings between them, and a
    normalised linear classifier. ``stochastic_depth_prob`` grows linearly from 0 at the
    first block to its value at the last (0 for a single block); ``layer_scale`` starts
    every block's scale; ``norm_layer`` (default `LayerNorm2d`, eps 1e-6) normalises the
    stem, the downsamplings and the classifier (the blocks keep their own, as torchvision's).

    Example: ``ConvNeXt([CNBlockConfig(32, 64, 1), CNBlockConfig(64, None, 1)], num_classes=10)``.
    """

    def __init__(self, block_setting, stochastic_depth_prob=0.0, layer_scale=1e-6, num_classes=1000, block=None,
                 norm_layer=None):
        super().__init__()
        check_setting("block_setting", block_setting, CNBlockConfig, "CNBlockConfig",
                      "one per stage, e.g. CNBlockConfig(96, 192, 3)")
        block = block or CNBlock
        norm_layer = norm_layer or functools.partial(LayerNorm2d, eps=1e-6)
        layers = [conv_norm_activation(3, block_setting[0].input_channels, 4, 4, activation=None,
                                       norm_layer=norm_layer, padding=0, bias=True)]
        total_blocks = sum(stage.num_layers for stage in block_setting)
        block_index = 0
        for stage in block_setting:
            blocks = []
            for _ in range(stage.num_layers):
                probability = stochastic_depth_prob * block_index / max(total_blocks - 1.0, 1.0)
                blocks.append(block(stage.input_channels, layer_scale, probability))
                block_index += 1
            layers.append(nn.Sequential(*blocks))
            if stage.out_channels is not None:
                layers.append(nn.Sequential(norm_layer(stage.input_channels),
                                            nn.Conv2d(stage.input_channels, stage.out_channels, 2, 2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        last = block_setting[-1]
        channels = last.input_channels if last.out_channels is None else last.out_channels
        self.classifier = nn.Sequential(norm_layer(channels), nn.Flatten(1), nn.Linear(channels, num_classes))
        initialise(self, conv=_truncated_normal, linear=_truncated_normal, norm=False)

    def execute(self, x):
        return self.classifier(self.avgpool(self.features(x)))


# name -> (stages as (input channels, output channels, blocks), stochastic depth, files)
_CONFIGS = {
    "convnext_tiny": ([(96, 192, 3), (192, 384, 3), (384, 768, 9), (768, None, 3)], 0.1,
                      {"IMAGENET1K_V1": "convnext_tiny-983f1562.pth"}),
    "convnext_small": ([(96, 192, 3), (192, 384, 3), (384, 768, 27), (768, None, 3)], 0.4,
                       {"IMAGENET1K_V1": "convnext_small-0c510722.pth"}),
    "convnext_base": ([(128, 256, 3), (256, 512, 3), (512, 1024, 27), (1024, None, 3)], 0.5,
                      {"IMAGENET1K_V1": "convnext_base-6075fbad.pth"}),
    "convnext_large": ([(192, 384, 3), (384, 768, 3), (768, 1536, 27), (1536, None, 3)], 0.5,
                       {"IMAGENET1K_V1": "convnext_large-ea097f82.pth"}),
}


def _convnext(name):
    stages, depth_default, files = _CONFIGS[name]

    def construct(stochastic_depth_prob=depth_default, **arguments):
        return ConvNeXt([CNBlockConfig(*stage) for stage in stages], stochastic_depth_prob, **arguments)
    return model_function(name, files, construct, target=f"`ConvNeXt` (``stochastic_depth_prob`` defaults to "
                                                          f"{depth_default})")


convnext_tiny, convnext_small, convnext_base, convnext_large = (
    _convnext(f"convnext_{size}") for size in ("tiny", "small", "base", "large"))
