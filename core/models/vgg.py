"""VGG 11/13/16/19 (Simonyan and Zisserman 2014), with or without batch normalisation."""
from .. import nn
from .blocks import initialise, kaiming_fan_out, normal_linear
from .pretrained import model_function

__all__ = ["VGG", "make_layers", "cfgs", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
           "vgg19", "vgg19_bn"]

# output channels of each 3x3 convolution, "M" a 2x2 max pooling: the paper's configurations
# A, B, D, E (VGG 11, 13, 16, 19), under torchvision's names
cfgs = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
_STAGES = {11: cfgs["A"], 13: cfgs["B"], 16: cfgs["D"], 19: cfgs["E"]}


def make_layers(cfg, batch_norm=False):
    """The ``features`` Sequential for a list of channel counts and ``"M"`` (max pooling):
    3x3 convolutions (with bias), optional BatchNorm, ReLU. Example: ``make_layers([64, "M"])``."""
    layers, channels = [], 3
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers.append(nn.Conv2d(channels, item, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU())
        channels = item
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """``features`` (see `make_layers`), a 7x7 adaptive average pool and three fully
    connected layers with ``dropout``.

    Example: ``VGG(make_layers([64, "M", 512, "M"]), num_classes=10)``.
    """

    def __init__(self, features, num_classes=1000, init_weights=True, dropout=0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(4096, num_classes))
        if init_weights:
            initialise(self, conv=kaiming_fan_out, linear=normal_linear(0.01))

    def execute(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


_FILES = {
    "vgg11": {"IMAGENET1K_V1": "vgg11-8a719046.pth"}, "vgg11_bn": {"IMAGENET1K_V1": "vgg11_bn-6002323d.pth"},
    "vgg13": {"IMAGENET1K_V1": "vgg13-19584684.pth"}, "vgg13_bn": {"IMAGENET1K_V1": "vgg13_bn-abd245e5.pth"},
    "vgg16": {"IMAGENET1K_V1": "vgg16-397923af.pth",
              "IMAGENET1K_FEATURES": "vgg16_features-amdegroot-88682ab5.pth"},
    "vgg16_bn": {"IMAGENET1K_V1": "vgg16_bn-6c64b313.pth"},
    "vgg19": {"IMAGENET1K_V1": "vgg19-dcbb9e9d.pth"}, "vgg19_bn": {"IMAGENET1K_V1": "vgg19_bn-c79401a0.pth"},
}


def _vgg(depth, batch_norm):
    name = f"vgg{depth}{'_bn' if batch_norm else ''}"
    return model_function(name, _FILES[name],
                          lambda **arguments: VGG(make_layers(_STAGES[depth], batch_norm), **arguments),
                          target="`VGG`")


vgg11, vgg11_bn, vgg13, vgg13_bn = _vgg(11, False), _vgg(11, True), _vgg(13, False), _vgg(13, True)
vgg16, vgg16_bn, vgg19, vgg19_bn = _vgg(16, False), _vgg(16, True), _vgg(19, False), _vgg(19, True)
