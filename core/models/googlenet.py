"""GoogLeNet (Inception v1, Szegedy et al. 2014) with batch normalisation, as torchvision."""
import collections

from .. import init, nn
from ..errors import MetajitValueError
from ..nn.pooling import adaptive_avg_pool2d
from ..shape_ops import concat
from .blocks import BasicConv2d, imagenet_to_unit_range, initialise
from .pretrained import auxiliary_model_function

__all__ = ["GoogLeNet", "GoogLeNetOutputs", "googlenet"]

GoogLeNetOutputs = collections.namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


class Inception(nn.Module):
    """Four parallel branches concatenated: 1x1; 1x1 then 3x3; 1x1 then 3x3 (torchvision's
    3x3 where the paper has 5x5); 3x3 max pooling then 1x1."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, conv_block=None):
        super().__init__()
        conv = conv_block or BasicConv2d
        self.branch1 = conv(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(conv(in_channels, ch3x3red, kernel_size=1),
                                     conv(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(conv(in_channels, ch5x5red, kernel_size=1),
                                     conv(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                     conv(in_channels, pool_proj, kernel_size=1))

    def execute(self, x):
        return concat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4x4 adaptive average pool, 1x1 conv to 128, two linear layers."""

    def __init__(self, in_channels, num_classes, conv_block=None, dropout=0.7):
        super().__init__()
        conv = conv_block or BasicConv2d
        self.conv = conv(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(dropout)

    def execute(self, x):
        x = self.conv(adaptive_avg_pool2d(x, (4, 4))).flatten(1)
        return self.fc2(self.dropout(nn.relu(self.fc1(x))))


# in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool projection
_BLOCKS = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """GoogLeNet with torchvision's arguments: ``aux_logits`` (two auxiliary classifiers,
    whose outputs come back as `GoogLeNetOutputs` in training mode), ``transform_input``
    (see `blocks.imagenet_to_unit_range`), ``init_weights`` (truncated normal, std 0.01;
    None means True, as torchvision), ``blocks`` (the classes of the stem's conv unit, the
    inception block and the auxiliary classifier, as torchvision's), ``dropout``,
    ``dropout_aux``.

    Example: ``GoogLeNet(num_classes=10, aux_logits=False)``.
    """

    def __init__(self, num_classes=1000, aux_logits=True, transform_input=False, init_weights=None,
                 blocks=None, dropout=0.2, dropout_aux=0.7):
        super().__init__()
        blocks = blocks or [BasicConv2d, Inception, InceptionAux]
        if len(blocks) != 3:
            raise MetajitValueError(f"blocks should have 3 classes (conv, inception, auxiliary), got {len(blocks)}")
        conv, inception, auxiliary = blocks
        self.aux_logits, self.transform_input = aux_logits, transform_input
        self.conv1 = conv(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = conv(64, 64, kernel_size=1)
        self.conv3 = conv(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        for name in ("3a", "3b"):
            setattr(self, f"inception{name}", inception(*_BLOCKS[name]))
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        for name in ("4a", "4b", "4c", "4d", "4e"):
            setattr(self, f"inception{name}", inception(*_BLOCKS[name]))
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        for name in ("5a", "5b"):
            setattr(self, f"inception{name}", inception(*_BLOCKS[name]))
        if aux_logits:
            self.aux1 = auxiliary(512, num_classes, dropout=dropout_aux)
            self.aux2 = auxiliary(528, num_classes, dropout=dropout_aux)
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        if init_weights is None or init_weights:
            initialise(self, conv=_truncated_normal, linear=_truncated_normal)

    def drop_auxiliary(self):
        """Remove the auxiliary classifiers (after loading a checkpoint that has them)."""
        self.aux_logits, self.aux1, self.aux2 = False, None, None

    def execute(self, x):
        if self.transform_input:
            x = imagenet_to_unit_range(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        auxiliary = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if auxiliary else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if auxiliary else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        x = self.fc(self.dropout(self.avgpool(x).flatten(1)))
        return GoogLeNetOutputs(x, aux2, aux1) if self.training and self.aux_logits else x


def _truncated_normal(module):
    init.trunc_normal_(module.weight, 0.0, 0.01, -2, 2)


googlenet = auxiliary_model_function("googlenet", {"IMAGENET1K_V1": "googlenet-1378be20.pth"}, GoogLeNet, False)
