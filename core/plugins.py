"""Backend registry: pluggy plugin manager, device listing and selection.

Built-in backends register directly; others come from the ``metajit.backends``
entry-point group unless ``METAJIT_DISABLE_PLUGIN_AUTOLOAD`` is set. A plugin that
fails to import, misspells a hook or lacks a required one is reported by name in
`devices` and the others keep working.
"""
import dataclasses
import importlib
import importlib.metadata
import os
import threading

import pluggy

from .ir import dtypes, opset
from . import flags as flag_settings, hookspec
from .errors import MetajitDeviceError

ENTRY_POINT_GROUP = "metajit.backends"
BUILTIN_BACKENDS = {"reference": "metajit.backends.reference"}
PREFERRED_DEFAULTS = ("cpu", "reference")
REQUIRED_HOOKS = ("describe", "unavailable_reason", "codegen", "compile", "launch",
                  "synchronize", "allocate", "free", "copy_from_host", "copy_to_host",
                  "copy_device_to_device")
OPTIONAL_HOOKS = ("lower_library_kernel", "launch_sequence", "compile_code", "memory_info", "collectives",
                  "buffer_view", "empty_cache")


@dataclasses.dataclass(frozen=True)
class FusionCosts:
    """The limits fusion trades recomputation against memory traffic with; a backend
    tunes them for its compiler and memory system (the defaults were measured with GCC).

    ``duplicate_max_kernels``: the most consumer kernels that may each recompute a cheap
    producer instead of reading it stored. ``chain_max_ops``: the longest chain of cheap
    ops over stored values that is recomputed by its consumers when that moves less
    memory. ``max_inlined_depth``: the deepest value tree inlined into one kernel (deeper
    nodes are stored). ``max_inlined_reads``: the most positions one kernel element may
    evaluate an inlined node at (a node read directly and through a shift, again and again,
    as a scan's steps are, is evaluated at a number of positions that doubles per step;
    beyond the limit it is stored). Example: ``FusionCosts(duplicate_max_kernels=8)`` for a GPU, where
    recomputing is cheaper than a round trip to memory. ``shared_reduction_loops``: the
    backend renders a kernel's plain reductions of one index, and the element-wise stores
    over its domain, in one loop nest (the cpu renderer's accumulators per store), so
    fusion gives such kernels several reductions reading one input and lets a reduction
    store an element-wise value it computes anyway; a backend that renders each store on
    its own would read the inputs once per store, gaining nothing.
    """

    duplicate_max_kernels: int = 4
    chain_max_ops: int = 3
    max_inlined_depth: int = 64
    max_inlined_reads: int = 4
    shared_reduction_loops: bool = False


@dataclasses.dataclass(frozen=True)
class BackendDescription:
    """What `metajit_backend_describe` returns; see that hook."""

    name: str
    device_kind: str
    dtypes: tuple = ("bool", "uint8", "int8", "int16", "int32", "int64",
                     "float16", "float32", "float64")
    native_ops: tuple = ()       # element-wise ops the backend renders; empty: all (`toolkit.decompose`)
    library_kernels: tuple = ()  # names, or (name, dtypes) pairs: see `claims`
    summary: str = ""
    fusion_costs: FusionCosts = FusionCosts()
    notice: str = ""  # what a user should know although the device works (shown by jt.devices())


def claims(library_kernels, name, dtype=None):
    """Whether ``library_kernels`` (a `BackendDescription` field) claims library op
    ``name`` for inputs of ``dtype`` (any dtype when None). Entries are a name (every
    dtype the backend computes in) or ``(name, dtypes)``, e.g. ``("conv2d", ("float16",
    "float32"))``."""
    for entry in library_kernels:
        if entry == name:
            return True
        if isinstance(entry, tuple) and entry[0] == name:
            return dtype is None or str(dtype) in entry[1]
    return False


@dataclasses.dataclass(frozen=True)
class KernelSource:
    """Generated code for one kernel: what codegen returns and compile consumes."""

    kernel: object
    language: str
    text: str
    entry_name: str
    options: tuple = ()


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """One row of ``jt.devices()``: a backend and whether it can run here."""

    name: str
    available: bool
    reason: str = ""
    description: BackendDescription = None

    def __str__(self):
        state = "available" if self.available else f"unavailable: {self.reason}"
        notice = self.description.notice if self.description is not None else ""
        return f"{self.name}: {state}" + (f" ({notice})" if notice else "")


def description_problem(description):
    """Why ``description`` (what a plugin's describe returned) is unusable, or None."""
    if not isinstance(description, BackendDescription):
        return f"invalid description: describe returned {type(description).__name__}, not a BackendDescription"
    known = {str(d) for d in dtypes.ALL_DTYPES}

    def unknown_dtypes(names):
        return [n for n in names if str(n) not in known]
    bad = unknown_dtypes(description.dtypes)
    for entry in description.library_kernels:
        if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
            bad += unknown_dtypes(entry[1])
        elif not isinstance(entry, str):
            return f"invalid description: library claim {entry!r} is neither a name nor (name, dtypes)"
    if bad:
        return f"invalid description: unknown dtype(s) {', '.join(map(repr, bad))}; known: {', '.join(sorted(known))}"
    unknown_ops = sorted(set(description.native_ops) - set(opset.ELEMENTWISE))
    if unknown_ops:
        return f"invalid description: unknown native op(s) {', '.join(unknown_ops)}"
    return None


class BackendHandle:
    """A device's hooks, resolved once; core's hot path calls these attributes directly.

    Attributes are the plugin's hook functions without the ``metajit_backend_``
    prefix (``allocate``, ``launch``...); the optional ones (``lower_library_kernel``,
    ``launch_sequence``, ``buffer_view`` ...) are None when the plugin has none;
    ``launch_sequence`` takes ``(launches, plan_key)`` whatever the plugin's own
    arguments, and also ``seconds`` where ``times_sequences`` says the plugin times
    launches itself (`profile_scope`).
    ``programs`` caches compiled programs by `Kernel` and ``sources`` the generated source
    each came from.
    """

    def __init__(self, name, description, functions):
        self.name = name
        self.description = description
        self.dtypes = frozenset(dtypes.as_dtype(d) for d in description.dtypes)  # the singletons: lookups hit by identity
        for hook in REQUIRED_HOOKS + OPTIONAL_HOOKS:
            setattr(self, hook, functions.get(hook))
        self.times_sequences = False
        self.programs = {}
        self.sources = {}

    def __repr__(self):
        return f"<metajit backend {self.name}>"


class _Registry:
    def __init__(self):
        self.manager = pluggy.PluginManager("metajit")
        self.manager.add_hookspecs(hookspec)
        self.load_errors = {}
        self.handles = {}
        self.infos = None
        for name, module in BUILTIN_BACKENDS.items():
            self.register(importlib.import_module(module), name)
        if not os.environ.get("METAJIT_DISABLE_PLUGIN_AUTOLOAD"):
            self._load_entry_points()

    def _load_entry_points(self):
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if self.manager.get_plugin(entry_point.name) is not None:
                continue
            try:
                plugin = entry_point.load()
            except Exception as error:  # a broken plugin must not break the others
                self.load_errors[entry_point.name] = (
                    f"plugin {entry_point.value!r} failed to load: {type(error).__name__}: {error}")
                continue
            self.register(plugin, entry_point.name)

    def register(self, plugin, name):
        try:
            self.manager.register(plugin, name=name)
            self.manager.check_pending()
        except pluggy.PluginValidationError as error:
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            self.load_errors[name] = f"invalid plugin: {error}"
            return
        missing = [h for h in REQUIRED_HOOKS if self._function(name, h) is None]
        if missing:
            self.manager.unregister(plugin)
            self.load_errors[name] = ("invalid plugin: missing required hooks "
                                      + ", ".join("metajit_backend_" + h for h in missing))
            return
        self.load_errors.pop(name, None)
        self.infos = None
        self.handles.pop(name, None)

    def _function(self, name, hook):
        caller = getattr(self.manager.hook, "metajit_backend_" + hook)
        for impl in caller.get_hookimpls():
            if impl.plugin_name == name:
                return impl.function
        return None

    def _argnames(self, name, hook):
        caller = getattr(self.manager.hook, "metajit_backend_" + hook)
        return next(impl.argnames for impl in caller.get_hookimpls() if impl.plugin_name == name)

    def device_infos(self):
        if self.infos is None:
            infos = {}
            for name, _ in self.manager.list_name_plugin():
                try:
                    description = self._function(name, "describe")()
                    reason = description_problem(description) or self._function(name, "unavailable_reason")()
                except Exception as error:
                    description, reason = None, f"backend raised {type(error).__name__}: {error}"
                infos[name] = DeviceInfo(name, reason is None, reason or "", description)
            for name, reason in self.load_errors.items():
                infos[name] = DeviceInfo(name, False, reason)
            self.infos = infos
        return self.infos

    def handle(self, name):
        handle = self.handles.get(name)
        if handle is not None:
            return handle
        with _creating:  # one handle per device: two would each move shared values to their own
            return self.handles.get(name) or self._new_handle(name)

    def _new_handle(self, name):
        infos = self.device_infos()
        info = infos.get(name)
        if info is None:
            raise MetajitDeviceError(
                f"unknown device {name!r}; installed devices: {', '.join(sorted(infos))}")
        if not info.available:
            raise MetajitDeviceError(f"device {name!r} is unavailable: {info.reason}")
        functions = {hook: self._function(name, hook) for hook in REQUIRED_HOOKS + OPTIONAL_HOOKS}
        sequence = functions["launch_sequence"]
        names = self._argnames(name, "launch_sequence") if sequence is not None else ()
        timed = "plan_key" in names and "seconds" in names
        if timed:  # (core passes seconds only while profiling)
            functions["launch_sequence"] = lambda launches, plan_key, seconds=None: sequence(launches, plan_key, seconds)
        elif sequence is not None and "plan_key" not in names:
            functions["launch_sequence"] = lambda launches, plan_key: sequence(launches)
        handle = self.handles[name] = BackendHandle(name, info.description, functions)
        handle.times_sequences = timed
        return handle


_registry = None
_current = None
_creating = threading.RLock()  # the registry, the device handles and the current device are made once


def registry():
    """The process-wide registry, created on first use."""
    global _registry
    if _registry is None:
        with _creating:
            if _registry is None:
                _registry = _Registry()
    return _registry


def register_backend(plugin, name):
    """Register a backend plugin object or module under ``name`` (as an entry point would).

    Example: ``jt.plugins.register_backend(my_backend_module, "mydev")``. Problems are
    reported by `devices`, like those of entry-point plugins.
    """
    registry().register(plugin, name)


def unregister_backend(name):
    """Remove the backend ``name``; switches back to the default device if it was current."""
    global _current
    reg = registry()
    plugin = reg.manager.get_plugin(name)
    if plugin is not None:
        reg.manager.unregister(plugin)
    reg.load_errors.pop(name, None)
    reg.handles.pop(name, None)
    reg.infos = None
    if _current is not None and _current.name == name:
        _current = None


def devices():
    """Every installed backend with its availability, e.g. ``[DeviceInfo('reference', True)]``.

    Unavailable ones carry the reason (``"cuda: no NVIDIA driver found"``).
    """
    return sorted(registry().device_infos().values(), key=lambda info: info.name)


def set_device(name):
    """Select the device new computations run on, e.g. ``jt.set_device("cpu")``.

    Raises `MetajitDeviceError` naming the valid devices for an unknown name, or the
    reason for an unavailable one.
    """
    global _current
    _current = registry().handle(name)


def current():
    """The `BackendHandle` of the device in use (``METAJIT_DEVICE``, else cpu, else reference)."""
    global _current
    if _current is None:
        with _creating:
            if _current is None:
                requested = os.environ.get("METAJIT_DEVICE")
                if requested:
                    _current = registry().handle(requested)
                else:
                    infos = registry().device_infos()
                    name = next(n for n in PREFERRED_DEFAULTS if n in infos and infos[n].available)
                    _current = registry().handle(name)
    return _current


def get_device():
    """The name of the device in use."""
    return current().name


def _select_cuda(on):
    """``jt.flags.use_cuda = on``: 1 selects the cuda device (a clear error when it is not
    usable here); 0 leaves cuda for cpu (reference without a compiler), other devices stay."""
    if on:
        info = {info.name: info for info in devices()}.get("cuda")
        if info is None or not info.available:
            reason = "no cuda backend is installed" if info is None else info.reason
            raise MetajitDeviceError(f"jt.flags.use_cuda = 1: the cuda device is not usable here ({reason}); "
                                     "jt.devices() lists the devices and why any is unavailable")
        set_device("cuda")
    elif get_device() == "cuda":
        available = {info.name for info in devices() if info.available}
        set_device("cpu" if "cpu" in available else "reference")


flag_settings.register_device_switch(lambda: get_device() == "cuda", _select_cuda)
