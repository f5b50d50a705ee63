"""SqueezeNet 1.0 and 1.1 (Iandola et al. 2016): Fire modules, a convolutional classifier."""
from .. import init, nn
from ..errors import MetajitValueError
from ..shape_ops import concat
from .pretrained import model_function

__all__ = ["SqueezeNet", "Fire", "squeezenet1_0", "squeezenet1_1"]


class Fire(nn.Module):
    """A 1x1 squeeze, then 1x1 and 3x3 expansions whose outputs are concatenated."""

    def __init__(self, inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, 1)
        self.squeeze_activation = nn.ReLU()
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, 1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, 3, padding=1)
        self.expand3x3_activation = nn.ReLU()

    def execute(self, x):
        x = self.squeeze_activation(self.squeeze(x))
        return concat([self.expand1x1_activation(self.expand1x1(x)),
                       self.expand3x3_activation(self.expand3x3(x))], 1)


def _pool():
    return nn.MaxPool2d(3, 2, ceil_mode=True)


def _features(version):
    if version == "1_0":
        return [nn.Conv2d(3, 96, 7, 2), nn.ReLU(), _pool(),
                Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), _pool(),
                Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256), _pool(), Fire(512, 64, 256, 256)]
    if version == "1_1":
        return [nn.Conv2d(3, 64, 3, 2), nn.ReLU(), _pool(),
                Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), _pool(),
                Fire(128, 32, 128, 128), Fire(256, 32, 128, 128), _pool(),
                Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256),
                Fire(512, 64, 256, 256)]
    raise MetajitValueError(f"Unsupported SqueezeNet version {version}: 1_0 or 1_1 expected")


class SqueezeNet(nn.Module):
    """SqueezeNet ``version`` "1_0" or "1_1"; the classifier is dropout, a 1x1 convolution
    to ``num_classes``, ReLU and global average pooling.

    Example: ``SqueezeNet("1_1", num_classes=10)``.
    """

    def __init__(self, version="1_0", num_classes=1000, dropout=0.5):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(*_features(version))
        final_conv = nn.Conv2d(512, num_classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), final_conv, nn.ReLU(), nn.AdaptiveAvgPool2d((1, 1)))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                if module is final_conv:
                    init.normal_(module.weight, 0.0, 0.01)
                else:
                    init.kaiming_uniform_(module.weight)
                init.zeros_(module.bias)

    def execute(self, x):
        return self.classifier(self.features(x)).flatten(1)


squeezenet1_0 = model_function("squeezenet1_0", {"IMAGENET1K_V1": "squeezenet1_0-b66bff10.pth"},
                               SqueezeNet, {"version": "1_0"}, "`SqueezeNet`")
squeezenet1_1 = model_function("squeezenet1_1", {"IMAGENET1K_V1": "squeezenet1_1-b8a52dc0.pth"},
                               SqueezeNet, {"version": "1_1"}, "`SqueezeNet`")
