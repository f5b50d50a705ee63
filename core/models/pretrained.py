"""Pretrained weights from local files: ``metajit.models`` never downloads.

``pretrained=True`` or ``weights=`` names a checkpoint; it is read from a path given
directly, or by torchvision's file name (``resnet18-f37072fd.pth``) from
``$METAJIT_WEIGHTS_DIR`` and then from torch hub's checkpoint directory
(``$TORCH_HOME/hub/checkpoints``, by default ``~/.cache/torch/hub/checkpoints``), where
torchvision keeps the files it downloaded. A missing file raises
`MetajitFileNotFoundError` naming the file and where to put it.
"""
import os

from ..errors import MetajitFileNotFoundError, MetajitValueError
from ..serialization import load
from . import registry

WEIGHTS_DIR_VARIABLE = "METAJIT_WEIGHTS_DIR"


def checkpoint_directories():
    """The directories searched for checkpoint files, in order: ``$METAJIT_WEIGHTS_DIR``
    when set, then torch hub's ``checkpoints`` directory (``$TORCH_HOME``, else
    ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``, followed by ``hub/checkpoints``)."""
    directories = []
    if os.environ.get(WEIGHTS_DIR_VARIABLE):
        directories.append(os.environ[WEIGHTS_DIR_VARIABLE])
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(cache, "torch")
    directories.append(os.path.join(torch_home, "hub", "checkpoints"))
    return directories


def _check_weights_class(model_name, class_name, weights):
    """Raise `MetajitValueError` when ``class_name`` (torchvision's ``ResNet50_Weights``)
    names the weights of a model other than ``model_name``."""
    if class_name and class_name.lower().removesuffix("_weights") != model_name:
        raise MetajitValueError(f"{model_name}: weights {weights} are another model's ({class_name}); "
                                f"pass {model_name}'s own weights or a checkpoint path")


def _file_name(model_name, files, weights):
    """(weights name, torchvision file name) that ``weights`` asks for, or (None, a path).
    ``True`` (``pretrained=True``) is torchvision's ``IMAGENET1K_V1``, ``"DEFAULT"`` its
    latest ImageNet version (``IMAGENET1K_V2`` where there is one; the first weights where
    there is no ``IMAGENET1K_Vn``)."""
    if weights is True or weights == "DEFAULT":
        if not files:
            raise MetajitValueError(f"{model_name}: torchvision publishes no pretrained weights for it; pass "
                                    f"weights='/path/to/checkpoint.pth'")
        if weights is True:
            if "IMAGENET1K_V1" not in files:  # as torchvision's pretrained=True (regnet_y_128gf)
                raise MetajitValueError(f"{model_name}: pretrained=True means IMAGENET1K_V1 weights, which "
                                        f"torchvision does not publish for it; pass weights= one of {list(files)}")
            return "IMAGENET1K_V1", files["IMAGENET1K_V1"]
        versions = [name for name in files if name.startswith("IMAGENET1K_V")]
        if not versions:
            return next(iter(files.items()))
        latest = max(versions, key=lambda name: int(name.rsplit("_V", 1)[1]))
        return latest, files[latest]
    if hasattr(weights, "url"):  # a torchvision weights enum member
        _check_weights_class(model_name, type(weights).__name__, weights)
        return weights.name, weights.url.rsplit("/", 1)[-1]
    text = os.fspath(weights)
    if os.path.isfile(text):
        return None, text
    class_name, _, choice = text.rpartition(".")  # "IMAGENET1K_V2" or "ResNet50_Weights.IMAGENET1K_V2"
    if class_name.endswith("_Weights"):
        _check_weights_class(model_name, class_name, text)
        if choice == "DEFAULT":
            return _file_name(model_name, files, choice)
    if choice in files:
        return choice, files[choice]
    if os.sep in text:
        raise MetajitFileNotFoundError(f"{model_name}: weights file {text!r} does not exist")
    if text.endswith((".pth", ".pt", ".pkl")):
        return "a checkpoint file", text  # a bare file name: looked up where checkpoints are kept
    raise MetajitValueError(f"{model_name}: unknown weights {text!r}; use a file path or one of "
                            f"{['DEFAULT'] + list(files)}")


def weights_path(model_name, files, pretrained=False, weights=None):
    """The checkpoint file that ``pretrained`` / ``weights`` ask for, or None when neither does.

    ``files`` maps weights names to torchvision's file names in torchvision's order (e.g.
    ``{"IMAGENET1K_V1": "resnet50-0676ba61.pth", "IMAGENET1K_V2": "resnet50-11ad3fa6.pth"}``):
    ``pretrained=True`` takes ``IMAGENET1K_V1``, ``"DEFAULT"`` the latest ``IMAGENET1K_Vn``
    (else the first), as torchvision does.
    ``weights`` may be a path, a bare file name (looked up in `checkpoint_directories`),
    ``True``, ``"DEFAULT"``, a name from ``files`` (also as
    ``"ResNet50_Weights.IMAGENET1K_V2"`` or ``"ResNet50_Weights.DEFAULT"``) or a
    torchvision weights enum member; another model's weights raise `MetajitValueError`. Example:
    ``weights_path("resnet18", files, pretrained=True)`` gives
    ``~/.cache/torch/hub/checkpoints/resnet18-f37072fd.pth`` if that file is there.
    """
    if weights is None or weights is False:
        if not pretrained:
            return None
        weights = True
    name, file_name = _file_name(model_name, files, weights)
    if name is None:
        return file_name
    directories = checkpoint_directories()
    for directory in directories:
        candidate = os.path.join(directory, file_name)
        if os.path.isfile(candidate):
            return candidate
    raise MetajitFileNotFoundError(
        f"{model_name}: pretrained weights {file_name!r} ({name}) not found in "
        f"{', '.join(directories)}. metajit never downloads weights: copy torchvision's file "
        f"{file_name} into {directories[-1]} (where torchvision caches it) or into a directory "
        f"named by ${WEIGHTS_DIR_VARIABLE}, or pass weights='/path/to/{file_name}'")


def read_state(state):
    """``state`` itself, or the checkpoint it names when it is a path (for models whose
    ``load_state_dict`` adapts old checkpoints before loading)."""
    if isinstance(state, (str, bytes)) or hasattr(state, "__fspath__"):
        return load(state)
    return state


def fix_arguments(model_name, arguments, reason="pretrained weights need", **required):
    """Set the constructor ``arguments`` that pretrained weights (or the model's definition:
    ``reason``) require (e.g. ``num_classes=1000``), raising `MetajitValueError` if the
    caller asked for another value."""
    for key, value in required.items():
        if arguments.get(key, value) != value:
            raise MetajitValueError(f"{model_name}: {reason} {key}={value!r}, got {arguments[key]!r}")
        arguments[key] = value


def is_published(path, files):
    """Whether the checkpoint ``path`` is one of torchvision's files (``files``' values, by
    name) rather than the caller's own."""
    return path is not None and os.path.basename(path) in files.values()


def build(model_name, files, construct, pretrained, weights, arguments, weights_arguments=None):
    """``construct(**arguments)``, loaded strictly from the checkpoint that ``pretrained`` /
    ``weights`` name (torchvision's own file: then ``num_classes`` must be 1000, and the
    arguments ``weights_arguments[weights name]`` those weights were trained with, such as a
    ViT's ``image_size``; any other path is the caller's checkpoint, loaded as it is). The
    shared body of most model functions, e.g. ``build("resnet18", FILES, make, pretrained,
    weights, kwargs)``."""
    path = weights_path(model_name, files, pretrained, weights)
    if is_published(path, files):
        fix_arguments(model_name, arguments, num_classes=1000)
        chosen = next(name for name, file_name in files.items() if file_name == os.path.basename(path))
        fix_arguments(model_name, arguments, f"its {chosen} weights need",
                      **(weights_arguments or {}).get(chosen, {}))
    model = construct(**arguments)
    if path is not None:
        model.load_state_dict(load(path))
    return model


def model_function(name, files, construct, defaults=None, target="the model class", weights_arguments=None):
    """A public model function ``name(pretrained=False, weights=None, progress=True, **kwargs)``
    calling ``construct(**defaults, **kwargs)`` through `build` (a keyword argument that
    contradicts ``defaults``, as ``resnext50_32x4d(groups=16)``, raises `MetajitValueError`;
    ``weights_arguments``: see `build`; ``progress`` is torchvision's download bar: nothing
    is downloaded), documented with its checkpoint files.
    Example: ``resnet18 = model_function("resnet18", FILES, make_resnet18)``."""
    def model(pretrained=False, weights=None, progress=True, **kwargs):
        fix_arguments(name, kwargs, f"{name} is defined with", **(defaults or {}))
        return build(name, files, construct, pretrained, weights, kwargs, weights_arguments)
    model.__name__ = model.__qualname__ = name
    model.__module__ = construct.__module__
    registry.register(name, model, files)
    checkpoints = ", ".join(files.values()) or "a path: torchvision has none"
    model.__doc__ = (f"{name} with torchvision's architecture and parameter names. ``pretrained=True`` or "
                     f"``weights=`` loads a local checkpoint ({checkpoints}; see "
                     f"`metajit.models.pretrained`); other keyword arguments go to {target}.\n\n"
                     f"Example: ``jt.models.{name}(num_classes=10)``.")
    return model


def auxiliary_model_function(name, files, model_class, aux_default):
    """`model_function` for GoogLeNet and Inception v3, whose checkpoints include auxiliary
    classifiers and expect inputs in [-1, 1]: with torchvision's weights, ``transform_input``
    defaults to True and the model is built with its auxiliary heads to load them, then drops them
    (``model.drop_auxiliary()``) unless ``aux_logits`` (default ``aux_default``) asks to
    keep them, as torchvision does (``progress`` as in `model_function`)."""
    def model(pretrained=False, weights=None, progress=True, **kwargs):
        path = weights_path(name, files, pretrained, weights)
        if not is_published(path, files):  # none, or the caller's own checkpoint: loaded as it is
            built = model_class(**kwargs)
            if path is not None:
                built.load_state_dict(load(path))
            return built
        keep_auxiliary = kwargs.get("aux_logits", aux_default)
        kwargs.setdefault("transform_input", True)
        kwargs.update(aux_logits=True, init_weights=False)
        fix_arguments(name, kwargs, num_classes=1000)
        built = model_class(**kwargs)
        built.load_state_dict(load(path))
        if not keep_auxiliary:
            built.drop_auxiliary()
        return built
    model.__name__ = model.__qualname__ = name
    model.__module__ = model_class.__module__
    registry.register(name, model, files)
    model.__doc__ = (f"{name} with torchvision's architecture and parameter names. ``pretrained=True`` or "
                     f"``weights=`` loads a local checkpoint ({', '.join(files.values())}; see "
                     f"`metajit.models.pretrained`) with ``transform_input=True`` by default and the "
                     f"auxiliary classifiers kept only if ``aux_logits=True``; other keyword arguments go "
                     f"to `{model_class.__name__}`.\n\nExample: ``jt.models.{name}(aux_logits=False)``.")
    return model
