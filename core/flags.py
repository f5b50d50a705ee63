"""Global switches (``jt.flags``) and the ``jt.no_grad()`` / ``jt.enable_grad()`` contexts.

Every flag is listed in docs/env.md. Unknown flag names raise, so a typo is not
silently ignored.
"""
import functools
import os
import threading

from .errors import MetajitValueError


class _ThreadFlags(threading.local):
    no_grad = False


thread_flags = _ThreadFlags()  # this thread's flags; graph building reads ``no_grad`` here (no property call)


class _DeviceSwitch:
    """How ``jt.flags.use_cuda`` reads and selects the device: registered by the backend
    interface (`metajit.plugins`), which this foundation module cannot import."""

    is_cuda = staticmethod(lambda: False)
    select = None


device_switch = _DeviceSwitch()


def register_device_switch(is_cuda, select):
    """Called once by `metajit.plugins`: ``is_cuda()`` tells whether the current device is
    cuda, ``select(on)`` selects cuda (``on``) or leaves it for cpu."""
    device_switch.is_cuda, device_switch.select = staticmethod(is_cuda), staticmethod(select)


class Flags:
    """``jt.flags``: ``lazy_execution`` (1: realise on demand, 0: run every op at once
    for debugging), ``no_grad`` (True inside `no_grad`; per thread, so one thread's
    optimiser step never makes another thread's forward pass untrainable), ``num_threads``
    (threads a CPU kernel may use; ``METAJIT_NUM_THREADS``, default all cores),
    ``check_indices`` (1: index Vars computed on the device are checked at the next
    realisation; 0: not, for speed), and Jittor's ``use_cuda`` (reads whether the device
    is cuda; 1 selects it, 0 leaves it for cpu), ``auto_convert_64_to_32`` (1: ``jt.array``
    of float64/int64 numpy data gives float32/int32; default 0), ``log_silent`` (1: no
    compile progress lines), ``allow_tf32`` (1: float32 matrix products and convolutions
    on the cuda device may use TF32 tensor cores; default 0, strict float32), Jittor's
    ``use_tensorcore`` (the same on cuda), ``amp_reg`` (recorded; no effect on the cpu
    device) and ``compile_options`` (extra compiler flags for ``jt.code`` operators that
    give none, Jittor's ``{"FLAGS: -DX=1": 1}`` form or a list). Every flag is listed in
    docs/env.md.

    Example: ``jt.flags.auto_convert_64_to_32 = 1``."""

    __slots__ = ("lazy_execution", "num_threads", "check_indices", "auto_convert_64_to_32", "log_silent",
                 "amp_reg", "use_tensorcore", "allow_tf32", "compile_options", "_thread")
    NAMES = ("lazy_execution", "no_grad", "num_threads", "check_indices", "use_cuda", "auto_convert_64_to_32",
             "log_silent", "amp_reg", "use_tensorcore", "allow_tf32", "compile_options")

    def __init__(self):
        object.__setattr__(self, "_thread", thread_flags)
        for name, value in (("lazy_execution", 1), ("check_indices", 1), ("auto_convert_64_to_32", 0),
                            ("log_silent", 0), ("amp_reg", 0), ("use_tensorcore", 0), ("allow_tf32", 0),
                            ("compile_options", None)):
            object.__setattr__(self, name, value)
        threads = os.environ.get("METAJIT_NUM_THREADS")
        object.__setattr__(self, "num_threads", int(threads) if threads else (os.cpu_count() or 1))

    @property
    def no_grad(self):
        """Whether this thread is inside `no_grad`."""
        return self._thread.no_grad

    @property
    def use_cuda(self):
        """1 when the current device is cuda, else 0."""
        return int(device_switch.is_cuda())

    def __setattr__(self, name, value):
        if name not in Flags.NAMES:
            raise MetajitValueError(f"unknown flag {name!r}; flags are {', '.join(Flags.NAMES)}")
        if name == "no_grad":
            self._thread.no_grad = value
        elif name == "use_cuda":
            device_switch.select(bool(value))
        else:
            object.__setattr__(self, name, value)

    def __repr__(self):
        return "flags(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in Flags.NAMES) + ")"


flags = Flags()


class flag_scope:
    """Set flags for a block or a function, restoring them after (Jittor's ``jt.flag_scope``)::

        with jt.flag_scope(lazy_execution=0):
            ...
        @jt.flag_scope(check_indices=0)
        def fast(): ...

    Unknown flag names raise at once."""

    def __init__(self, **values):
        for name in values:
            if name not in Flags.NAMES:
                raise MetajitValueError(f"unknown flag {name!r}; flags are {', '.join(Flags.NAMES)}")
        self.values = values
        self.saved = []

    def __enter__(self):
        self.saved.append({name: getattr(flags, name) for name in self.values})
        for name, value in self.values.items():
            setattr(flags, name, value)
        return self

    def __exit__(self, *exc):
        for name, value in self.saved.pop().items():
            setattr(flags, name, value)
        return False

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with flag_scope(**self.values):
                return function(*args, **kwargs)
        return wrapper


class _GradMode:
    enabled_inside = None

    def __new__(cls, *arguments):
        if len(arguments) == 1 and callable(arguments[0]):  # (a mode argument is a bool)
            return cls()(arguments[0])  # a bare ``@jt.no_grad`` decorator, as torch's
        return super().__new__(cls)

    def __enter__(self):
        self._saved = flags.no_grad
        flags.no_grad = not self.enabled_inside
        return self

    def __exit__(self, *exc):
        flags.no_grad = self._saved
        return False

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with type(self)():
                return function(*args, **kwargs)
        return wrapper


class no_grad(_GradMode):
    """Context manager / decorator: Vars created inside do not track gradients.

    Example::

        with jt.no_grad():
            w -= lr * g      # not recorded for autodiff
    """

    enabled_inside = False


class enable_grad(_GradMode):
    """Context manager / decorator re-enabling gradient tracking inside `no_grad`."""

    enabled_inside = True


class inference_mode(_GradMode):
    """PyTorch's ``torch.inference_mode(mode=True)``: `no_grad` (metajit's no-gradient mode
    already skips what inference mode skips); ``mode=False`` tracks gradients inside, as
    torch's does."""

    def __init__(self, mode=True):
        self.mode = mode
        self.enabled_inside = not mode

    def __call__(self, function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with inference_mode(self.mode):
                return function(*args, **kwargs)
        return wrapper


class set_grad_enabled(_GradMode):
    """PyTorch's ``torch.set_grad_enabled(mode)``: turns gradient tracking on or off at
    once (in this thread), and as a ``with`` block or decorator restores it afterwards.

    Example: ``with jt.set_grad_enabled(phase == "train"): outputs = model(x)``.
    """

    def __init__(self, mode):
        self.enabled_inside = bool(mode)
        self._before = flags.no_grad
        flags.no_grad = not self.enabled_inside

    def __enter__(self):
        self._saved = self._before
        return self

    def __call__(self, function):
        flags.no_grad = self._before  # as a decorator it applies per call only

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(self.enabled_inside):
                return function(*args, **kwargs)
        return wrapper


def is_grad_enabled():
    """Whether this thread tracks gradients (False inside `no_grad`)."""
    return not flags.no_grad
