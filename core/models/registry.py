"""torchvision's model registry and weights enums for ``metajit.models``: ``get_model``,
``list_models``, ``get_model_builder``, ``get_model_weights``, ``get_weight`` and one
``<Model>_Weights`` enum per model (``ResNet50_Weights.IMAGENET1K_V2``, ``.DEFAULT``).

A member names a checkpoint file; ``weights=`` with it loads that file from where
checkpoints are kept (`metajit.models.pretrained`: nothing is downloaded), and so does its
``get_state_dict()``. Example::

    from metajit.models import resnet50, ResNet50_Weights
    model = resnet50(weights=ResNet50_Weights.DEFAULT)   # resnet50-11ad3fa6.pth, local
    model = jt.models.get_model("resnet50", num_classes=10)
"""
import enum
import fnmatch

from ..errors import MetajitValueError

URL_ROOT = "https://download.pytorch.org/models/"
# model name -> torchvision's weights enum name, where it is not the model name capitalised
_ENUM_NAMES = {
    "alexnet": "AlexNet", "googlenet": "GoogLeNet", "inception_v3": "Inception_V3", "mobilenet_v2": "MobileNet_V2",
    "resnext50_32x4d": "ResNeXt50_32X4D", "resnext101_32x8d": "ResNeXt101_32X8D",
    "resnext101_64x4d": "ResNeXt101_64X4D", "wide_resnet50_2": "Wide_ResNet50_2",
    "wide_resnet101_2": "Wide_ResNet101_2", "mobilenet_v3_large": "MobileNet_V3_Large",
    "mobilenet_v3_small": "MobileNet_V3_Small", "convnext_tiny": "ConvNeXt_Tiny", "convnext_small": "ConvNeXt_Small",
    "convnext_base": "ConvNeXt_Base", "convnext_large": "ConvNeXt_Large",
}
# model name prefix -> enum name prefix, the rest of the name upper-cased (regnet_y_1_6gf -> RegNet_Y_1_6GF)
_ENUM_PREFIXES = {"resnet": "ResNet", "densenet": "DenseNet", "squeezenet": "SqueezeNet", "mnasnet": "MNASNet",
                  "vgg": "VGG", "shufflenet_v2_": "ShuffleNet_V2_", "efficientnet_": "EfficientNet_", "vit_": "ViT_",
                  "regnet_": "RegNet_"}
_builders = {}  # model name -> public model function
_enums = {}  # model name -> weights enum


class WeightsEnum(enum.Enum):
    """Base of the ``<Model>_Weights`` enums: each member's value is its checkpoint's file
    name (``resnet50-11ad3fa6.pth``); ``url`` is where torchvision publishes it."""

    @property
    def file_name(self):
        """torchvision's file name of the checkpoint."""
        return self.value

    @property
    def url(self):
        """Where torchvision publishes the checkpoint (not fetched: copy it by hand)."""
        return URL_ROOT + self.value

    def get_state_dict(self, progress=True, check_hash=False):
        """The checkpoint's state dict, read from where checkpoints are kept
        (`metajit.models.pretrained.checkpoint_directories`); a missing file raises
        `MetajitFileNotFoundError` naming it."""
        from ..serialization import load
        from .pretrained import weights_path
        return load(weights_path(_model_of(type(self)), {self.name: self.value}, weights=self.name))


def _model_of(weights_class):
    return next(name for name, found in _enums.items() if found is weights_class)


def enum_name(model_name):
    """torchvision's weights enum name of ``model_name`` (``"resnet50"`` -> ``"ResNet50_Weights"``)."""
    name = _ENUM_NAMES.get(model_name)
    if name is None:
        prefix = next(p for p in _ENUM_PREFIXES if model_name.startswith(p))
        name = _ENUM_PREFIXES[prefix] + model_name[len(prefix):].upper()
    return name + "_Weights"


def register(model_name, builder, files):
    """Record ``builder`` (a public model function) and make its weights enum from ``files``
    (weights name -> file name, torchvision's order: the latest ``IMAGENET1K_Vn`` is
    ``DEFAULT``); returns the enum, or None for a model without torchvision weights."""
    _builders[model_name] = builder
    if not files:
        return None
    members = dict(files)
    versions = [name for name in files if name.startswith("IMAGENET1K_V")]
    default = max(versions, key=lambda name: int(name.rsplit("_V", 1)[1])) if versions else next(iter(files))
    members["DEFAULT"] = files[default]  # an alias of that member (same value)
    weights = WeightsEnum(enum_name(model_name), members, module=__name__)
    _enums[model_name] = weights
    return weights


def weights_enums():
    """``{enum name: enum}`` of every registered model's weights (exported by the package)."""
    return {weights.__name__: weights for weights in _enums.values()}


def list_models(module=None, include=None, exclude=None):
    """The sorted names of the models, as torchvision's: only those of the package
    ``module`` (``metajit.models``; torchvision's detection and others have no
    counterpart here) when given, filtered by ``include`` / ``exclude`` glob
    patterns (a string or a list). Example: ``list_models(include="resnet*")``."""
    names = [name for name, builder in _builders.items()
             if module is None or builder.__module__.rsplit(".", 1)[0] == module.__name__]

    def patterns(value):
        return [value] if isinstance(value, str) else list(value or ())
    if include:
        names = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns(include))]
    for pattern in patterns(exclude):
        names = [n for n in names if not fnmatch.fnmatch(n, pattern)]
    return sorted(names)


def get_model_builder(name):
    """The model function of ``name`` (``"resnet50"``); `MetajitValueError` lists the names."""
    builder = _builders.get(name.lower())
    if builder is None:
        raise MetajitValueError(f"unknown model {name!r}; metajit.models has {list_models()}")
    return builder


def get_model(name, **config):
    """The model ``name`` built with ``config`` (``weights=``, ``num_classes=`` ...)."""
    return get_model_builder(name)(**config)


def get_model_weights(name):
    """The weights enum of a model, by name or model function (``get_model_weights("resnet50")``)."""
    model_name = name if isinstance(name, str) else getattr(name, "__name__", "")
    get_model_builder(model_name)
    if model_name not in _enums:
        raise MetajitValueError(f"{model_name}: torchvision publishes no weights for it")
    return _enums[model_name]


def get_weight(name):
    """The weights member named ``"ResNet50_Weights.IMAGENET1K_V2"``."""
    class_name, _, member = name.partition(".")
    found = {weights.__name__: weights for weights in _enums.values()}.get(class_name)
    if found is None or member not in found.__members__:
        raise MetajitValueError(f"unknown weights {name!r}; e.g. 'ResNet50_Weights.IMAGENET1K_V2'")
    return found[member]
