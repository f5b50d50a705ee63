"""Definitions the converter copies into its output when converted code needs them.

Each top-level definition here is real, tested code; the converter copies its source (and
the standard-library imports it uses) into the converted file, so the output runs on its
own. Two kinds:

* markers for what could not be converted: `_unconverted` (a stand-in that raises
  ``NotImplementedError`` naming the original construct when it is called or tested) and
  `_unconverted_method` (a tensor method metajit's Var lacks);
* torchvision's model-file helpers (`TORCHVISION` maps their torchvision names here):
  weights enums, ``register_model``, ``handle_legacy_interface``, ``_ovewrite_named_param``,
  ``_make_divisible``, ``Conv2dNormActivation`` (torchvision.ops' other layers are
  `metajit.models.ops`'). Weights are read from local files only.
"""
import dataclasses
import enum
import functools

import metajit as jt
from metajit import nn


class _UnconvertedMeta(type):
    """Type of the stand-ins `_unconverted` makes: calling one (or a subclass), testing
    ``isinstance`` against it or using it as a truth value raises; attributes and
    subscripts give further stand-ins, so module-level references stay harmless."""

    def _fail(cls, *args, **kwargs):
        raise NotImplementedError(f"{cls.construct} was not converted from PyTorch: {cls.reason}")

    __call__ = __instancecheck__ = __bool__ = __len__ = __iter__ = _fail

    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _unconverted(f"{cls.construct}.{name}", cls.reason)

    def __getitem__(cls, item):
        return cls


def _unconverted(construct, reason):
    """A stand-in for ``construct``, which the converter could not translate (``reason``)."""
    return _UnconvertedMeta("Unconverted", (), {"construct": construct, "reason": reason})


def _unconverted_method(receiver, name, reason):
    """``receiver.name``, unless ``receiver`` is a Var: then the PyTorch tensor method
    ``name`` has no metajit translation and this raises ``NotImplementedError``."""
    if isinstance(receiver, jt.Var):
        raise NotImplementedError(f"Tensor.{name}() was not converted from PyTorch: {reason}")
    return getattr(receiver, name)


def _log_api_usage_once(obj):
    """torchvision's usage logging: nothing to log here."""


def register_model(name=None):
    """torchvision's model registry decorator: returns the builder unchanged."""
    return lambda builder: builder


@dataclasses.dataclass
class Weights:
    """torchvision's weights record: checkpoint ``url``, preprocessing ``transforms`` and ``meta``."""

    url: str
    transforms: object
    meta: dict


class WeightsEnum(enum.Enum):
    """torchvision's weights enum. ``get_state_dict`` reads the checkpoint named by the
    url's file name from local files only (``metajit.models.pretrained``): nothing is
    downloaded."""

    @classmethod
    def verify(cls, obj):
        if obj is None or isinstance(obj, cls):
            return obj
        if isinstance(obj, str):
            return cls[obj.replace(cls.__name__ + ".", "")]
        raise TypeError(f"expected {cls.__name__}, got {type(obj).__name__}")

    url = property(lambda self: self.value.url)
    transforms = property(lambda self: self.value.transforms)
    meta = property(lambda self: self.value.meta)

    def get_state_dict(self, *args, **kwargs):
        from metajit.models.pretrained import weights_path
        files = {self.name: self.url.rsplit("/", 1)[-1]}
        return jt.load(weights_path(type(self).__name__, files, weights=self.name))


# the category names are not copied: the model functions only count them
_IMAGENET_CATEGORIES = [f"class {index}" for index in range(1000)]


def handle_legacy_interface(**legacy):
    """torchvision's adapter from ``pretrained=True`` to ``weights=<default weights>``."""
    def decorate(builder):
        @functools.wraps(builder)
        def build(*args, **kwargs):
            for weights_name, (pretrained_name, default) in legacy.items():
                if pretrained_name in kwargs:
                    chosen = default if kwargs.pop(pretrained_name) else None
                    kwargs.setdefault(weights_name, chosen(kwargs) if callable(chosen) else chosen)
            return builder(*args, **kwargs)
        return build
    return decorate


def _ovewrite_named_param(kwargs, param, new_value):
    """Set ``kwargs[param]``, refusing a different value the caller gave."""
    if kwargs.setdefault(param, new_value) != new_value:
        raise ValueError(f"The parameter '{param}' expected value {new_value} but got {kwargs[param]} instead.")


def _make_divisible(v, divisor, min_value=None):
    """``v`` rounded to a multiple of ``divisor``, never down by more than 10%."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * v else rounded


class Conv2dNormActivation(nn.Sequential):
    """torchvision's convolution, optional normalisation and optional activation, as children
    ``0``, ``1``, ``2``; "same" padding by default and a convolution bias only without a norm."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=None, groups=1,
                 norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU, dilation=1, inplace=True, bias=None):
        if padding is None:
            kernel, spacing = (v if isinstance(v, (tuple, list)) else (v, v) for v in (kernel_size, dilation))
            padding = tuple((k - 1) // 2 * d for k, d in zip(kernel, spacing))
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=dilation,
                            groups=groups, bias=norm_layer is None if bias is None else bias)]
        if norm_layer is not None:
            layers.append(norm_layer(out_channels))
        if activation_layer is not None:
            layers.append(activation_layer() if inplace is None else activation_layer(inplace=inplace))
        super().__init__(*layers)
        self.out_channels = out_channels


# torchvision's names (as imported by its model files) -> the definition above
TORCHVISION = {
    "torchvision.utils._log_api_usage_once": "_log_api_usage_once",
    "torchvision.models._api.register_model": "register_model",
    "torchvision.models._api.Weights": "Weights",
    "torchvision.models._api.WeightsEnum": "WeightsEnum",
    "torchvision.models._meta._IMAGENET_CATEGORIES": "_IMAGENET_CATEGORIES",
    "torchvision.models._utils.handle_legacy_interface": "handle_legacy_interface",
    "torchvision.models._utils._ovewrite_named_param": "_ovewrite_named_param",
    "torchvision.models._utils._make_divisible": "_make_divisible",
    "torchvision.ops.misc.Conv2dNormActivation": "Conv2dNormActivation",
    "torchvision.ops.Conv2dNormActivation": "Conv2dNormActivation",
}
