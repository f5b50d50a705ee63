"""Pieces several model families share: channel rounding, the conv-norm-activation block,
torchvision's checks of settings and strides, Inception's conv-bn-relu, the input transform
of Google's checkpoints, and weight initialisation by layer type (torchvision.ops' layers
are in `metajit.models.ops`)."""
from .. import init, nn
from ..errors import MetajitTypeError, MetajitValueError
from ..math_ops import binary
from ..creation import array


def make_divisible(value, divisor, min_value=None):
    """``value`` rounded to the nearest multiple of ``divisor`` (at least ``min_value``,
    default ``divisor``), rounded up when rounding down would lose more than 10%: the
    channel rule of MobileNet and MNASNet. Example: ``make_divisible(32 * 0.75, 8)`` is 24.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_norm_activation(in_channels, out_channels, kernel_size=3, stride=1, groups=1,
                         activation=nn.ReLU, norm_layer=nn.BatchNorm2d, momentum=None, dilation=1,
                         padding=None, bias=None):
    """``Sequential(Conv2d[, norm][, activation])``, children named ``0``, ``1``, ``2`` as
    torchvision's ``Conv2dNormActivation``: "same" padding ``(kernel_size - 1) // 2 *
    dilation`` unless ``padding`` is given, a conv bias only without a norm unless ``bias``
    says; ``activation=None`` or ``norm_layer=None`` leaves that layer out;
    ``norm_layer(out_channels)`` is called with ``momentum=`` only when one is given.
    Example: ``conv_norm_activation(3, 32, stride=2)``.
    """
    padding = (kernel_size - 1) // 2 * dilation if padding is None else padding
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                        bias=norm_layer is None if bias is None else bias)]
    if norm_layer is not None:
        layers.append(norm_layer(out_channels) if momentum is None else norm_layer(out_channels, momentum=momentum))
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


def check_setting(argument, setting, config_class, listed, advice):
    """Refuse a model's ``setting`` (constructor argument ``argument``) as torchvision does:
    `MetajitValueError` when it is empty, `MetajitTypeError` when it is not a list of
    ``config_class`` instances (``listed`` names them in the message, ``advice`` says where
    to get them). Example: ``check_setting("block_setting", setting, CNBlockConfig,
    "CNBlockConfig", "one per stage")``."""
    if not setting:
        raise MetajitValueError(f"The {argument} should not be empty: pass a list of {listed} ({advice})")
    if not isinstance(setting, (list, tuple)) or not all(isinstance(row, config_class) for row in setting):
        raise MetajitTypeError(f"The {argument} should be List[{listed}] ({advice})")


def check_stride(stride, family):
    """Refuse a ``family`` block's ``stride`` other than 1 or 2, as torchvision does."""
    if not 1 <= stride <= 2:
        raise MetajitValueError(f"illegal stride value {stride}: {family} blocks take stride 1 or 2")


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps 0.001) and ReLU, with children ``conv`` and
    ``bn``: the unit of GoogLeNet and Inception v3. Keyword arguments go to ``Conv2d``.

    Example: ``BasicConv2d(192, 64, kernel_size=1)``.
    """

    def __init__(self, in_channels, out_channels, **conv_arguments):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_arguments)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def execute(self, x):
        return nn.relu(self.bn(self.conv(x)))


# Google's GoogLeNet and Inception checkpoints expect inputs scaled to [-1, 1]; with
# ``transform_input`` the models take ImageNet-normalised input and convert it
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def imagenet_to_unit_range(x):
    """Map ImageNet-normalised images ``(x - mean) / std`` to ``(x_raw - 0.5) / 0.5`` per
    channel (the ``transform_input`` of GoogLeNet and Inception v3)."""
    scale = array([s / 0.5 for s in _IMAGENET_STD], dtype=x.dtype).reshape(1, 3, 1, 1)
    shift = array([(m - 0.5) / 0.5 for m in _IMAGENET_MEAN], dtype=x.dtype).reshape(1, 3, 1, 1)
    return binary("add", binary("mul", x, scale), shift)


def initialise(model, conv=None, linear=None, norm=True):
    """Initialise ``model``'s layers by type: ``conv(module)`` for every Conv2d,
    ``linear(module)`` for every Linear (None keeps the layer's default), and BatchNorm /
    GroupNorm weights to 1 and biases to 0 when ``norm``. Returns ``model``.

    Example: ``initialise(model, conv=lambda m: init.kaiming_normal_(m.weight))``.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and conv is not None:
            conv(module)
        elif isinstance(module, nn.Linear) and linear is not None:
            linear(module)
        elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)) and norm and module.weight is not None:
            init.ones_(module.weight)
            init.zeros_(module.bias)
    return model


def kaiming_fan_out(module):
    """He-normal weights for ReLU layers counted over the outputs, zero bias (ResNet, VGG,
    MobileNet, MNASNet convolutions)."""
    init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    if module.bias is not None:
        init.zeros_(module.bias)


def normal_linear(std):
    """A `initialise` rule: Linear weights N(0, ``std``), zero bias."""
    def rule(module):
        init.normal_(module.weight, 0.0, std)
        init.zeros_(module.bias)
    return rule
