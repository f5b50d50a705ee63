"""MNASNet B1 (Tan et al. 2018) at depth multipliers 0.5, 0.75, 1.0 and 1.3."""
from .. import init, nn
from ..errors import MetajitValueError
from .blocks import conv_norm_activation, initialise, make_divisible
from .pretrained import model_function, read_state

__all__ = ["MNASNet", "mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"]

# TensorFlow's batch-norm decay 0.9997 as a PyTorch momentum
_BN_MOMENTUM = 1 - 0.9997


def _conv_bn(in_channels, out_channels, kernel_size=1, stride=1, groups=1, activation=nn.ReLU):
    return list(conv_norm_activation(in_channels, out_channels, kernel_size, stride, groups, activation,
                                     momentum=_BN_MOMENTUM))


class _InvertedResidual(nn.Module):
    """1x1 expansion, depthwise ``kernel_size`` convolution, 1x1 projection, all in one flat
    ``layers`` Sequential; a shortcut when the shape is kept."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, expansion_factor):
        super().__init__()
        if stride not in (1, 2) or kernel_size not in (3, 5):
            raise MetajitValueError(f"MNASNet blocks need stride 1 or 2 and kernel 3 or 5, got {stride}, "
                                    f"{kernel_size}")
        middle = in_channels * expansion_factor
        self.apply_residual = in_channels == out_channels and stride == 1
        self.layers = nn.Sequential(*_conv_bn(in_channels, middle),
                                    *_conv_bn(middle, middle, kernel_size, stride, middle),
                                    *_conv_bn(middle, out_channels, activation=None))

    def execute(self, x):
        return self.layers(x) + x if self.apply_residual else self.layers(x)


def _stack(in_channels, out_channels, kernel_size, stride, expansion_factor, repeats):
    return nn.Sequential(*[_InvertedResidual(in_channels if index == 0 else out_channels, out_channels,
                                             kernel_size, stride if index == 0 else 1, expansion_factor)
                           for index in range(repeats)])


def _depths(alpha):
    return [make_divisible(depth * alpha, 8) for depth in (32, 16, 24, 40, 80, 96, 192, 320)]


def _stem(first, second, third):
    """The stem's three convolutions (regular, depthwise, 1x1) and the first stack."""
    return (_conv_bn(3, first, 3, 2) + _conv_bn(first, first, 3, 1, first)
            + _conv_bn(first, second, activation=None) + [_stack(second, third, 3, 2, 3, 3)])


class MNASNet(nn.Module):
    """MNASNet B1 with depth multiplier ``alpha``; ``dropout`` before the classifier.

    Checkpoints saved before torchvision scaled the stem (version 1: a 32/16-channel stem
    whatever ``alpha``, e.g. ``mnasnet0.5_top1_67.823-3ffadce67e.pth``) load too: the stem
    is rebuilt to their shapes. Example: ``MNASNet(0.5, num_classes=10)``.
    """

    def __init__(self, alpha, num_classes=1000, dropout=0.2):
        super().__init__()
        if alpha <= 0.0:
            raise MetajitValueError(f"alpha should be greater than 0.0 instead of {alpha}")
        self.alpha, self.num_classes = alpha, num_classes
        depths = _depths(alpha)
        self.layers = nn.Sequential(
            *_stem(depths[0], depths[1], depths[2]),
            _stack(depths[2], depths[3], 5, 2, 3, 3), _stack(depths[3], depths[4], 5, 2, 6, 3),
            _stack(depths[4], depths[5], 3, 1, 6, 2), _stack(depths[5], depths[6], 5, 2, 6, 4),
            _stack(depths[6], depths[7], 3, 1, 6, 1),
            *_conv_bn(depths[7], 1280))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))
        initialise(self, conv=lambda m: init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu"),
                   linear=self._initialise_linear)

    @staticmethod
    def _initialise_linear(module):
        init.kaiming_uniform_(module.weight, mode="fan_out", nonlinearity="sigmoid")
        init.zeros_(module.bias)

    def execute(self, x):
        return self.classifier(self.layers(x).mean((2, 3)))

    def load_state_dict(self, state, strict=True):
        """`Module.load_state_dict`, first giving the model the version-1 stem when ``state``
        has one (see the class docstring)."""
        state = read_state(state)
        stem = state.get("layers.0.weight")
        if stem is not None and tuple(stem.shape)[0] == 32 and self.layers[0].weight.shape[0] != 32:
            for index, layer in enumerate(_stem(32, 16, _depths(self.alpha)[2])):
                setattr(self.layers, str(index), layer)
        return super().load_state_dict(state, strict)


def _mnasnet(name, alpha, file_name):
    return model_function(name, {"IMAGENET1K_V1": file_name}, MNASNet, {"alpha": alpha}, "`MNASNet`")


mnasnet0_5 = _mnasnet("mnasnet0_5", 0.5, "mnasnet0.5_top1_67.823-3ffadce67e.pth")
mnasnet0_75 = _mnasnet("mnasnet0_75", 0.75, "mnasnet0_75-7090bc5f.pth")
mnasnet1_0 = _mnasnet("mnasnet1_0", 1.0, "mnasnet1.0_top1_73.512-f206786ef8.pth")
mnasnet1_3 = _mnasnet("mnasnet1_3", 1.3, "mnasnet1_3-a4c69d6f.pth")
