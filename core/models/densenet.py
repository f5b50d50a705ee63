"""DenseNet-BC 121/161/169/201 (Huang et al. 2016)."""
import collections
import re

from .. import init, nn
from ..nn.functional import dropout
from ..shape_ops import concat
from .blocks import initialise
from .pretrained import model_function, read_state

__all__ = ["DenseNet", "densenet121", "densenet161", "densenet169", "densenet201"]

# torchvision's published checkpoints name a dense layer's modules "norm.1", "conv.2", ...
_OLD_LAYER_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


class _DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv to ``bn_size * growth_rate`` channels, BN-ReLU-3x3 conv to
    ``growth_rate`` new channels, computed from all earlier features concatenated."""

    def __init__(self, num_input_features, growth_rate, bn_size, drop_rate):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def execute(self, features):
        joined = concat(features, 1) if isinstance(features, (list, tuple)) else features
        bottleneck = self.conv1(self.relu1(self.norm1(joined)))
        new = self.conv2(self.relu2(self.norm2(bottleneck)))
        return dropout(new, self.drop_rate, self.training) if self.drop_rate > 0 else new


class _DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers (``denselayer1``, ...); the output is the input and every
    layer's new features, concatenated."""

    def __init__(self, num_layers, num_input_features, bn_size, growth_rate, drop_rate):
        super().__init__()
        for index in range(num_layers):
            self[f"denselayer{index + 1}"] = _DenseLayer(num_input_features + index * growth_rate, growth_rate,
                                                         bn_size, drop_rate)

    def execute(self, x):
        # each layer's input is the previous one with its new features appended: two pieces
        # per concat (a lazy select and gather, fused into the readers) instead of one per
        # earlier layer; DenseNet-121's forward graph has 2300 nodes fewer
        joined = x
        for layer in self.values():
            joined = concat([joined, layer(joined)], 1)
        return joined


def _transition(num_input_features, num_output_features):
    return nn.Sequential(collections.OrderedDict([
        ("norm", nn.BatchNorm2d(num_input_features)), ("relu", nn.ReLU()),
        ("conv", nn.Conv2d(num_input_features, num_output_features, 1, bias=False)),
        ("pool", nn.AvgPool2d(2, 2))]))


class DenseNet(nn.Module):
    """DenseNet-BC: ``growth_rate`` new channels per layer, ``block_config`` layers per block,
    ``num_init_features`` stem channels, ``bn_size`` bottleneck factor, ``drop_rate``
    dropout after each layer. ``memory_efficient`` (checkpointing in torchvision) is
    accepted and has no effect. Checkpoints with torchvision's old key names
    (``denselayer1.norm.1.weight``) load as they are.

    Example: ``DenseNet(12, (6, 12, 24, 16), 64, num_classes=10)``.
    """

    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
                 drop_rate=0, num_classes=1000, memory_efficient=False):
        super().__init__()
        self.features = nn.Sequential(collections.OrderedDict([
            ("conv0", nn.Conv2d(3, num_init_features, 7, 2, 3, bias=False)),
            ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU()),
            ("pool0", nn.MaxPool2d(3, 2, 1))]))
        channels = num_init_features
        for index, num_layers in enumerate(block_config):
            setattr(self.features, f"denseblock{index + 1}",
                    _DenseBlock(num_layers, channels, bn_size, growth_rate, drop_rate))
            channels += num_layers * growth_rate
            if index != len(block_config) - 1:
                setattr(self.features, f"transition{index + 1}", _transition(channels, channels // 2))
                channels //= 2
        self.features.norm5 = nn.BatchNorm2d(channels)
        self.classifier = nn.Linear(channels, num_classes)
        initialise(self, conv=lambda m: init.kaiming_normal_(m.weight), linear=lambda m: init.zeros_(m.bias))

    def execute(self, x):
        return self.classifier(nn.relu(self.features(x)).mean((2, 3)))

    def load_state_dict(self, state, strict=True):
        """`Module.load_state_dict`, accepting torchvision's old dense-layer key names."""
        state = read_state(state)
        renamed = collections.OrderedDict()
        for key, value in state.items():
            old = _OLD_LAYER_KEY.match(key)
            renamed[old.group(1) + old.group(2) if old else key] = value
        return super().load_state_dict(renamed, strict)


_CONFIGS = {
    "densenet121": (32, (6, 12, 24, 16), 64, "densenet121-a639ec97.pth"),
    "densenet161": (48, (6, 12, 36, 24), 96, "densenet161-8d451a50.pth"),
    "densenet169": (32, (6, 12, 32, 32), 64, "densenet169-b2777c0a.pth"),
    "densenet201": (32, (6, 12, 48, 32), 64, "densenet201-c1103571.pth"),
}


def _densenet(name):
    growth_rate, block_config, num_init_features, file_name = _CONFIGS[name]
    return model_function(name, {"IMAGENET1K_V1": file_name}, DenseNet,
                          {"growth_rate": growth_rate, "block_config": block_config,
                           "num_init_features": num_init_features}, "`DenseNet`")


densenet121, densenet161 = _densenet("densenet121"), _densenet("densenet161")
densenet169, densenet201 = _densenet("densenet169"), _densenet("densenet201")
