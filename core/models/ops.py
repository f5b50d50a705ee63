"""torchvision.ops' layers that the model zoo builds with: stochastic depth, squeeze-and-
excitation, ``Permute`` and the channels-first ``LayerNorm2d`` (composed from `metajit.nn`).

    from metajit.models.ops import SqueezeExcitation, StochasticDepth
    se = SqueezeExcitation(64, 16)            # fc1 / fc2 as torchvision's, so its weights load
    drop = StochasticDepth(0.1, "row")        # identity in eval mode
"""
from .. import nn
from ..creation import rand
from ..errors import MetajitValueError
from ..math_ops import binary, cast

__all__ = ["stochastic_depth", "StochasticDepth", "SqueezeExcitation", "Permute", "LayerNorm2d", "MLP"]


def _check_stochastic_depth(p, mode):
    if not 0.0 <= p <= 1.0:
        raise MetajitValueError(f"stochastic depth: drop probability has to be between 0 and 1, but got {p}")
    if mode not in ("batch", "row"):
        raise MetajitValueError(f"stochastic depth: mode has to be either 'batch' or 'row', but got {mode!r}")


def stochastic_depth(input, p, mode, training=True):
    """torchvision's ``stochastic_depth`` (Huang et al. 2016): while ``training``, zero
    ``input`` with probability ``p`` and scale what survives by ``1 / (1 - p)``, for each
    row of the batch (``mode="row"``) or for the whole batch at once (``"batch"``); the
    input itself otherwise. The draws come from metajit's generator, so `metajit.seed` /
    ``jt.set_global_seed`` repeat them. Example: ``stochastic_depth(x, 0.2, "row")``.
    """
    _check_stochastic_depth(p, mode)
    if not training or p == 0.0:
        return input
    survival = 1.0 - p
    size = [input.shape[0]] + [1] * (input.ndim - 1) if mode == "row" else [1] * input.ndim
    noise = cast(binary("lt", rand(*size), survival), input.dtype)
    if survival > 0.0:
        noise = binary("div", noise, survival)
    return binary("mul", input, noise)


class StochasticDepth(nn.Module):
    """`stochastic_depth` as a layer (torchvision.ops.StochasticDepth): active in training
    mode only; ``p`` and ``mode`` are checked when it is built.

    Example: ``StochasticDepth(0.2, "row")``.
    """

    def __init__(self, p, mode):
        super().__init__()
        _check_stochastic_depth(p, mode)
        self.p, self.mode = p, mode

    def execute(self, input):
        return stochastic_depth(input, self.p, self.mode, self.training)

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode}"


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2017) as torchvision.ops': the input scaled per
    channel by ``scale_activation(fc2(activation(fc1(avgpool(x)))))``, ``fc1`` / ``fc2``
    being 1x1 convolutions with bias through ``squeeze_channels``.

    Example: ``SqueezeExcitation(96, 24, scale_activation=nn.Hardsigmoid)`` (MobileNetV3's).
    """

    def __init__(self, input_channels, squeeze_channels, activation=nn.ReLU, scale_activation=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.activation = activation()
        self.scale_activation = scale_activation()

    def _scale(self, input):
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(input)))))

    def execute(self, input):
        return binary("mul", self._scale(input), input)


class Permute(nn.Module):
    """Its input with the dimensions reordered to ``dims`` (torchvision.ops.Permute).

    Example: ``Permute([0, 2, 3, 1])`` turns NCHW into NHWC.
    """

    def __init__(self, dims):
        super().__init__()
        self.dims = list(dims)

    def execute(self, x):
        return x.permute(*self.dims)

    def extra_repr(self):
        return f"dims={self.dims}"


class LayerNorm2d(nn.LayerNorm):
    """`metajit.nn.LayerNorm` over the channels of an NCHW input (ConvNeXt's ``LayerNorm2d``):
    the channels moved last, normalised, and moved back.

    Example: ``LayerNorm2d(96, eps=1e-6)``.
    """

    def execute(self, x):
        return super().execute(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class MLP(nn.Sequential):
    """torchvision.ops' ``MLP``: ``Linear`` (then ``norm_layer``, ``activation_layer`` and
    ``Dropout``) for each of ``hidden_channels`` but the last, then ``Linear`` and ``Dropout``;
    children numbered as torchvision's. Example: ``MLP(768, [3072, 768], activation_layer=nn.GELU)``."""

    def __init__(self, in_channels, hidden_channels, norm_layer=None, activation_layer=nn.ReLU, inplace=None,
                 bias=True, dropout=0.0):
        layers, width = [], in_channels
        for hidden in hidden_channels[:-1]:
            layers.append(nn.Linear(width, hidden, bias=bias))
            if norm_layer is not None:
                layers.append(norm_layer(hidden))
            layers += [activation_layer(), nn.Dropout(dropout)]
            width = hidden
        layers += [nn.Linear(width, hidden_channels[-1], bias=bias), nn.Dropout(dropout)]
        super().__init__(*layers)
