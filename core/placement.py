"""PyTorch's ``.to(device, dtype)``, ``.cpu()`` and ``.cuda()`` on Vars and Modules.

metajit computes everything on the device in use (``jt.flags.use_cuda``,
``jt.set_device``) and moves values there itself, so a device argument is accepted when it
is the device in use or ``cpu`` (a value is always readable from the host) and refused
otherwise with how to select it; a dtype argument converts. Example::

    x = x.to(device)              # device = "cuda" if jt.flags.use_cuda else "cpu"
    model.to(torch.float64)       # floating-point parameters and buffers as float64
"""
from . import plugins
from .errors import MetajitDeviceError, MetajitValueError
from .ir import dtypes

DEVICE_NAMES = ("cpu", "cuda", "meta", "mps", "xpu")  # first parts of the device strings PyTorch takes


class memory_format:
    """PyTorch's memory formats (``jt.channels_last``, ``jt.contiguous_format``,
    ``jt.preserve_format``, ``jt.channels_last_3d``), accepted where torch takes them
    (``x.to``, ``x.contiguous``, ``model.to``, the factories) and changing nothing: a Var's
    values do not depend on a layout, which metajit's backends choose themselves (the cpu
    backend's convolutions use a blocked one)."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"jt.{self.name}"


contiguous_format, preserve_format, channels_last, channels_last_3d = (
    memory_format(name) for name in ("contiguous_format", "preserve_format", "channels_last", "channels_last_3d"))


class device(str):
    """PyTorch's ``torch.device`` (``jt.device``), also what ``x.device`` returns: a device
    string (``"cuda:0"``, ``"cpu"``) with torch's ``.type`` and ``.index``, named as torch's
    class, which `is_device` recognises, so ``x.to(x.device)`` and ``jt.zeros(2,
    device=jt.device("cpu"))`` work. An unknown kind raises; whether the device can be used
    is checked where it is (`check_device`). Example: ``jt.device("cuda", 0)`` is ``"cuda:0"``."""

    __slots__ = ()

    def __new__(cls, kind, index=None):
        if isinstance(kind, device) and index is None:
            return kind
        text = str(kind) if index is None else f"{kind}:{int(index)}"
        if text.split(":")[0] not in DEVICE_NAMES + tuple(info.name for info in plugins.devices()):
            raise MetajitDeviceError(f"unknown device {text!r}; use one of {', '.join(DEVICE_NAMES)} or an installed "
                                     f"metajit device")
        return super().__new__(cls, text)

    @property
    def type(self):
        """The kind of device: ``"cpu"``, ``"cuda"`` or a backend's name."""
        return self.split(":")[0]

    @property
    def index(self):
        """The device's index (0 on cuda), None for the host."""
        return int(self.split(":")[1]) if ":" in self else None


def is_device(argument):
    """Whether a ``to`` argument names a device (``"cuda:0"``, a ``torch.device``)."""
    if type(argument).__name__ == "device":
        return True
    return isinstance(argument, str) and argument.split(":")[0] in DEVICE_NAMES


def check_device(device):
    """Accept the device in use and ``cpu``; raise `MetajitDeviceError` for any other."""
    name = getattr(device, "type", None) or str(device).split(":")[0]
    if name in ("cpu", plugins.get_device()):
        return
    raise MetajitDeviceError(f"to({str(device)!r}): metajit runs every computation on the device in use "
                             f"({plugins.get_device()!r}) and moves values there itself; select {name!r} with "
                             f"jt.flags.use_cuda = 1 or jt.set_device({name!r}) instead")


def as_dtype(value):
    """A metajit dtype for a ``to`` argument: a name, a numpy, torch or metajit dtype."""
    if type(value).__module__ == "torch" and type(value).__name__ == "dtype":
        value = str(value).removeprefix("torch.")
    return dtypes.as_dtype(value)


def to_arguments(args, kwargs):
    """``(device or None, dtype or None)`` of PyTorch's ``to(device)``, ``to(dtype)``,
    ``to(device, dtype)``, ``to(other)`` (its dtype) and keyword forms; the device is
    checked (`check_device`); ``non_blocking``, ``copy`` and ``memory_format`` change nothing."""
    kwargs = dict(kwargs)
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    for accepted in ("non_blocking", "copy", "memory_format"):
        kwargs.pop(accepted, None)
    if kwargs:
        raise MetajitValueError(f"to() got unexpected arguments {sorted(kwargs)}")
    for argument in args:
        if hasattr(argument, "dtype") and hasattr(argument, "shape"):  # a Var or tensor: its dtype
            dtype = argument.dtype
        elif is_device(argument):
            device = argument
        else:
            dtype = argument
    if device is not None:
        check_device(device)
    return device, None if dtype is None else as_dtype(dtype)
