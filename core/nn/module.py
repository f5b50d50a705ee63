"""`Module`: the base of layers and models (Jittor's ``execute``, PyTorch's ``forward``),
and the containers `Sequential`, `ModuleList`, `ModuleDict`, `ParameterList`."""
import collections
import functools
import inspect

from .. import creation, gradients, placement
from ..errors import MetajitShapeError, MetajitValueError
from ..ir import dtypes
from ..flags import thread_flags
from ..var import Var
from .backward_hooks import call_with_backward_hooks

LoadResult = collections.namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])
_changes = [0]  # attribute assignments, deletions and mode switches of any Module so far


def changes():
    """How many times any Module's attributes or training mode were set so far: a
    compiled call (`metajit.compile`) traced when this was different is traced again."""
    return _changes[0]


def Parameter(data, requires_grad=True):
    """PyTorch spelling: a trainable Var (a Var is already a parameter when set on a Module)."""
    var = data if isinstance(data, Var) else Var(data)
    var.requires_grad = requires_grad
    return var


class Module:
    """Base class: define ``execute`` (Jittor) or ``forward`` (PyTorch) and call the module.

    Vars assigned as attributes are parameters, Modules are children, and
    `register_buffer` adds non-trainable state (saved in ``state_dict``)::

        class Net(jt.nn.Module):
            def __init__(self):
                self.fc = jt.nn.Linear(4, 2)     # super().__init__() optional, as in Jittor
            def execute(self, x):
                return self.fc(x).relu()
    """

    def __new__(cls, *args, **kwargs):
        # the tables exist before any __init__ runs: as in Jittor, a subclass need not call
        # super().__init__() (PyTorch code that does keeps working)
        module = super().__new__(cls)
        object.__setattr__(module, "_parameters", collections.OrderedDict())
        object.__setattr__(module, "_buffers", collections.OrderedDict())
        object.__setattr__(module, "_modules", collections.OrderedDict())
        object.__setattr__(module, "training", True)
        return module

    # names of state entries a checkpoint may lack (see `load_state_dict`)
    optional_state = ()

    def __init__(self):
        """Nothing to set up (see ``__new__``); kept so ``super().__init__()`` works."""

    def __init_subclass__(cls, **kwargs):
        # metajit's layers take PyTorch's factory arguments (nn.Linear(3, 4, device="cpu",
        # dtype=jt.float64)) unless their constructor names them or takes any keyword
        super().__init_subclass__(**kwargs)
        initialiser = cls.__dict__.get("__init__")
        if initialiser is not None and cls.__module__.startswith("metajit.") and _without_placement(initialiser):
            cls.__init__ = _taking_placement(initialiser)

    def __setattr__(self, name, value):
        _changes[0] += 1
        if isinstance(getattr(type(self), name, None), property):  # a parametrized tensor's setter
            object.__setattr__(self, name, value)
            return
        if isinstance(value, Var):
            table = "_buffers" if name in self.__dict__.get("_buffer_names", ()) else "_parameters"
        else:
            table = "_modules" if isinstance(value, Module) else None
        for other in ("_parameters", "_buffers", "_modules"):
            if other != table:
                self.__dict__.get(other, {}).pop(name, None)
        if table is None:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)  # a plain value set before (None) would hide the new entry
        if table == "_parameters" and value.requires_grad:
            gradients.track_grad(value)
        getattr(self, table)[name] = value  # a replaced entry keeps its place (a Sequential's order)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            found = self.__dict__.get(table, {})
            if name in found:
                return found[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        _changes[0] += 1
        for table in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__.get(table, {}):
                del self.__dict__[table][name]
                if table == "_buffers":  # a Var set under this name later is a parameter again
                    self.__dict__.get("_buffer_names", set()).discard(name)
                    self.__dict__.get("_non_persistent", set()).discard(name)
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, value, persistent=True):
        """Add non-trainable state (e.g. BatchNorm running stats); saved when ``persistent``."""
        names = self.__dict__.setdefault("_buffer_names", set())
        names.add(name)
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)
        if isinstance(value, Var):
            value.stop_grad()
        self.__setattr__(name, value)

    def register_parameter(self, name, value):
        """Add a parameter explicitly (same as assigning a Var attribute)."""
        self.__setattr__(name, value)

    def add_module(self, name, module):
        """Add child ``module`` (a Module or None) as ``name``, PyTorch's spelling of
        ``setattr(self, name, module)``. Example: ``features.add_module("norm5", BatchNorm2d(8))``."""
        if module is not None and not isinstance(module, Module):
            raise MetajitValueError(f"add_module({name!r}, ...) takes a Module or None, got {type(module).__name__}")
        setattr(self, name, module)

    def __call__(self, *args, **kwargs):
        hooks = self.__dict__.get("_hooks")
        if not hooks:
            return self.execute(*args, **kwargs)
        for hook in list(hooks["forward_pre"].values()):
            changed = hook(self, args, kwargs)
            if changed is not None:
                args, kwargs = changed
        if (hooks["backward_pre"] or hooks["backward"]) and not thread_flags.no_grad:
            output = call_with_backward_hooks(self, list(hooks["backward_pre"].values()),
                                              list(hooks["backward"].values()), args,
                                              lambda *inputs: self.execute(*inputs, **kwargs))
        else:
            output = self.execute(*args, **kwargs)
        for hook in list(hooks["forward"].values()):
            changed = hook(self, args, kwargs, output)
            if changed is not None:
                output = changed
        return output

    def _add_hook(self, kind, hook, prepend=False):
        _changes[0] += 1  # a compiled call traced without it traces again
        hooks = self.__dict__.setdefault("_hooks", {kind: {} for kind in
                                                    ("forward_pre", "forward", "backward_pre", "backward")})
        handle = RemovableHandle(hooks[kind])
        hooks[kind][handle.id] = hook
        if prepend:
            for key in [key for key in hooks[kind] if key != handle.id]:
                hooks[kind][key] = hooks[kind].pop(key)  # (moved behind the new hook)
        return handle

    def register_forward_pre_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args)`` before each forward; a value it returns (a tuple, or a
        single input) replaces the positional inputs. With ``with_kwargs``, PyTorch's
        ``hook(module, args, kwargs)`` returning None or ``(args, kwargs)``; ``prepend``: run
        before the hooks added earlier. Returns a handle whose ``remove()`` takes the hook
        away. Example: ``layer.register_forward_pre_hook(lambda m, a: (a[0] * 2,))``."""
        if not with_kwargs:
            plain = hook

            def hook(module, args, kwargs):
                changed = plain(module, args)
                return None if changed is None else (changed if isinstance(changed, tuple) else (changed,), kwargs)
        return self._add_hook("forward_pre", hook, prepend)

    def register_forward_hook(self, hook, *, prepend=False, with_kwargs=False):
        """Call ``hook(module, args, output)`` after each forward (with ``with_kwargs``,
        ``hook(module, args, kwargs, output)``); a value it returns replaces the output;
        ``prepend``: run before the hooks added earlier. Returns a handle whose ``remove()``
        takes the hook away. Example:
        ``model.layer4.register_forward_hook(lambda m, a, out: features.append(out))``."""
        if not with_kwargs:
            plain = hook

            def hook(module, args, kwargs, output):
                return plain(module, args, output)
        return self._add_hook("forward", hook, prepend)

    def register_full_backward_hook(self, hook):
        """Call ``hook(module, grad_input, grad_output)`` in each backward pass through this
        module: tuples of the gradients of its positional inputs (from this module's use of
        them; None for a non-Var or one needing no gradient) and of its outputs. A tuple it
        returns replaces ``grad_input``. Returns a handle whose ``remove()`` takes the hook
        away. Example (Grad-CAM): ``layer.register_full_backward_hook(lambda m, gi, go: grads.append(go[0]))``."""
        return self._add_hook("backward", hook)

    register_backward_hook = register_full_backward_hook

    def register_full_backward_pre_hook(self, hook):
        """Call ``hook(module, grad_output)`` in each backward pass, when this module's output
        gradients are known and before its own backward; a tuple it returns replaces them.
        Returns a handle whose ``remove()`` takes the hook away."""
        return self._add_hook("backward_pre", hook)

    def execute(self, *args, **kwargs):
        """The computation (Jittor's name); defaults to ``forward`` when a subclass defines it."""
        if type(self).forward is Module.forward:
            raise MetajitValueError(f"{type(self).__name__} defines neither execute() nor forward()")
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        """The computation (PyTorch's name); same as `execute`."""
        return self.execute(*args, **kwargs)

    def named_modules(self, prefix=""):
        """``(name, module)`` for this module and every descendant, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        """This module and every descendant."""
        return [m for _, m in self.named_modules()]

    def named_children(self):
        """``(name, module)`` of the direct children."""
        return list(self._modules.items())

    def children(self):
        """The direct child modules."""
        return list(self._modules.values())

    def _named(self, table, prefix, recurse, remove_duplicate=True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in module.__dict__[table].items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """``(dotted name, Var)`` of every parameter (shared ones once, unless
        ``remove_duplicate=False``)."""
        return list(self._named("_parameters", prefix, recurse, remove_duplicate))

    def parameters(self, recurse=True):
        """Every parameter Var."""
        return [v for _, v in self.named_parameters(recurse=recurse)]

    def named_buffers(self, prefix="", recurse=True):
        """``(dotted name, Var)`` of every buffer."""
        return list(self._named("_buffers", prefix, recurse))

    def buffers(self, recurse=True):
        """Every buffer Var."""
        return [v for _, v in self.named_buffers(recurse=recurse)]

    def get_submodule(self, target):
        """The descendant named by the dotted path ``target`` (``"layer1.0.conv1"``; ``""`` is
        self); raises AttributeError naming the missing part."""
        module = self
        for part in target.split(".") if target else ():
            if part not in module._modules:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (in {target!r})")
            module = module._modules[part]
        return module

    def _get_state(self, target, table, what):
        owner, _, name = target.rpartition(".")
        module = self.get_submodule(owner)
        if name not in module.__dict__[table]:
            raise AttributeError(f"{type(module).__name__} has no {what} {name!r} (in {target!r})")
        return module.__dict__[table][name]

    def get_parameter(self, target):
        """The parameter named by the dotted path ``target`` (``"fc.weight"``)."""
        return self._get_state(target, "_parameters", "parameter")

    def get_buffer(self, target):
        """The buffer named by the dotted path ``target`` (``"bn1.running_mean"``)."""
        return self._get_state(target, "_buffers", "buffer")

    def to(self, *args, **kwargs):
        """PyTorch's ``module.to(device)``, ``to(dtype)``, ``to(device, dtype)`` or
        ``to(tensor)``: floating-point parameters and buffers take ``dtype`` in place (the
        same Vars, so an optimiser holding them keeps working); returns self.

        A device must be the one in use or ``"cpu"`` (`metajit.placement`): metajit runs
        every computation on the device in use and moves values there itself, so naming
        another raises `MetajitDeviceError` saying how to select it.
        """
        _, dtype = placement.to_arguments(args, kwargs)
        return self if dtype is None else self._cast_floats(dtype)

    def cpu(self):
        """PyTorch's ``module.cpu()`` (see `to`); returns self."""
        return self.to("cpu")

    def cuda(self, device=None):
        """PyTorch's ``module.cuda()``: allowed while the cuda device is in use (see `to`;
        metajit uses one device, so ``device`` changes nothing)."""
        return self.to("cuda")

    def float(self):
        """Floating-point parameters and buffers as float32; returns self."""
        return self._cast_floats(dtypes.float32)

    def double(self):
        """Floating-point parameters and buffers as float64; returns self."""
        return self._cast_floats(dtypes.float64)

    def half(self):
        """Floating-point parameters and buffers as float16; returns self."""
        return self._cast_floats(dtypes.float16)

    float32, float64, float16 = float, double, half  # Jittor's names

    def _cast_floats(self, dtype):
        if not dtypes.is_float(dtype):
            raise MetajitValueError(f"Module.to() takes a floating-point dtype, got {dtype}")
        for module in self.modules():
            for table in ("_parameters", "_buffers"):
                for value in module.__dict__[table].values():
                    if value is not None and dtypes.is_float(value.dtype) and value.dtype != dtype:
                        value._hold(value, dtype)
        return self

    def train(self, mode=True):
        """Set training mode (dropout active, batch statistics) here and below; returns self."""
        _changes[0] += 1
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        """Evaluation mode; returns self."""
        return self.train(False)

    def is_training(self):
        """Jittor spelling of ``training``."""
        return self.training

    def apply(self, function):
        """Call ``function(module)`` on every descendant then on self (PyTorch order); returns self."""
        for child in self.children():
            child.apply(function)
        function(self)
        return self

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` on every parameter; returns self."""
        for parameter in self.parameters():
            parameter.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none=True):
        """Clear ``.grad`` of every parameter: None, or zeros with ``set_to_none=False``
        (see `metajit.gradients.zero_grads`)."""
        gradients.zero_grads(self.parameters(), set_to_none)

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """Ordered ``{dotted name: Var}`` of parameters and persistent buffers, names after
        ``prefix``, added to ``destination`` when given (``keep_vars`` is PyTorch's: the
        entries are the Vars either way)."""
        state = collections.OrderedDict() if destination is None else destination
        for module_prefix, module in self.named_modules(prefix.rstrip(".")):
            skip = module.__dict__.get("_non_persistent", set())
            for table in ("_parameters", "_buffers"):
                for name, value in module.__dict__[table].items():
                    if value is not None and name not in skip:
                        state[f"{module_prefix}.{name}" if module_prefix else name] = value
        return state

    def load_state_dict(self, state, strict=True, assign=False):
        """Copy values from ``state`` (Vars, numpy arrays, torch tensors, or a path to a file
        written by ``jt.save`` / ``torch.save``) into the parameters and buffers.

        Shapes must match. With ``strict`` (default) missing or unexpected keys raise
        `MetajitValueError` listing them; otherwise they are returned as
        ``(missing_keys, unexpected_keys)``. Entries a module lists in ``optional_state``
        (BatchNorm's ``num_batches_tracked``, absent from old PyTorch checkpoints) may be
        missing: they keep their value. ``assign`` is PyTorch's: the model's Vars take the
        values either way.
        """
        if isinstance(state, (str, bytes)) or hasattr(state, "__fspath__"):
            from ..serialization import load
            state = load(state)
        own = self.state_dict()
        optional = {f"{prefix}.{name}" if prefix else name
                    for prefix, module in self.named_modules() for name in type(module).optional_state}
        missing = [k for k in own if k not in state and k not in optional]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise MetajitValueError(
                f"load_state_dict: missing keys {missing} and unexpected keys {unexpected}; "
                "pass strict=False to load the matching ones")
        mismatched = []
        for name, target in own.items():
            if name not in state:
                continue
            value = creation.as_numpy(state[name])
            if tuple(value.shape) != tuple(target.shape):
                mismatched.append(f"{name}: checkpoint {tuple(value.shape)} vs model {target.shape}")
                continue
            target.assign(value)
        if mismatched:
            raise MetajitShapeError("load_state_dict: shape mismatch for " + "; ".join(mismatched))
        return LoadResult(missing, unexpected)

    def load_parameters(self, state, strict=True):
        """Jittor's name for `load_state_dict`."""
        return self.load_state_dict(state, strict)

    def extra_repr(self):
        """Layer settings shown by ``repr``; overridden by layers."""
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, child in self._modules.items():
            child_text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_text}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"


def state_entries(module, table, names):
    """``[getattr(module, name) for name in names]``, read from ``module``'s ``table``
    (``"_parameters"`` or ``"_buffers"``) where the entry is: a layer reading its state at
    every call skips the failed attribute lookup that reaches `Module.__getattr__` (~1 µs
    a read, a fifth of a batch-1 mobilenet_v2's graph building). Example::

        weight, bias = state_entries(self, "_parameters", ("weight", "bias"))
    """
    found = module.__dict__[table]
    return [found[name] if name in found else getattr(module, name) for name in names]


def _without_placement(initialiser):
    """Whether a constructor takes neither ``device`` nor ``dtype`` nor ``**kwargs``."""
    parameters = inspect.signature(initialiser).parameters.values()
    return not any(p.name in ("device", "dtype") or p.kind is p.VAR_KEYWORD for p in parameters)


def _taking_placement(initialiser):
    """A layer's ``initialiser`` also taking PyTorch's factory arguments ``device`` and
    ``dtype``: the layer is built, then its floating-point parameters and buffers are
    converted to ``dtype`` and ``device`` is checked, as `Module.to` does."""
    @functools.wraps(initialiser)
    def __init__(self, *args, device=None, dtype=None, **kwargs):
        initialiser(self, *args, **kwargs)
        if device is not None or dtype is not None:
            self.to(device=device, dtype=dtype)
    return __init__


def functional_module(name, function, settings=(), doc=None):
    """A Module class calling ``function(*inputs, **settings)``, as PyTorch's activation and
    loss modules: positional constructor arguments fill ``settings`` in order (e.g.
    ``LeakyReLU(0.2)``, ``MultiMarginLoss(2, 0.5)``), and each setting is an attribute
    (``criterion.reduction``, ``act.negative_slope``; a Var one, a loss's class ``weight``,
    a buffer) holding the given value or ``function``'s default, read at each call.
    PyTorch's ``inplace`` is accepted and ignored (metajit never overwrites its input)."""
    defaults = {key: parameter.default for key, parameter in inspect.signature(function).parameters.items()
                if parameter.default is not inspect.Parameter.empty}

    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        if len(args) > len(settings):
            raise MetajitValueError(f"{name} takes at most {len(settings)} positional arguments "
                                    f"({', '.join(settings)}), got {len(args)}")
        kwargs.pop("inplace", None)
        unknown = sorted(set(kwargs) - set(settings) - set(defaults))
        if unknown:
            raise MetajitValueError(f"{name} got unexpected arguments {unknown}")
        values = {key: defaults[key] for key in settings if key in defaults}
        values.update(zip(settings, args))
        values.update(kwargs)
        self._setting_names = tuple(values)
        for key, value in values.items():
            if isinstance(value, Var):
                self.register_buffer(key, value)
            else:
                setattr(self, key, value)

    def execute(self, *inputs):
        return function(*inputs, **{key: getattr(self, key) for key in self._setting_names})

    def extra_repr(self):
        return ", ".join(f"{key}={getattr(self, key)}" for key in self._setting_names
                         if not isinstance(getattr(self, key), Var))

    return type(name, (Module,), {"__init__": __init__, "execute": execute, "extra_repr": extra_repr,
                                  "__doc__": doc or f"Module form of ``{function.__name__}``."})


class RemovableHandle:
    """What ``register_forward_hook`` returns: ``remove()`` takes the hook away."""

    _next_id = [0]

    def __init__(self, hooks):
        self.hooks = hooks
        self.id = RemovableHandle._next_id[0]
        RemovableHandle._next_id[0] += 1

    def remove(self):
        """Take the hook away (again: nothing)."""
        _changes[0] += 1
        self.hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.remove()


class _ModuleSequence:
    """List behaviour over a module's numbered children, shared by `Sequential` and
    `ModuleList` (as PyTorch's): indexing (a slice gives the same kind of container),
    assignment, deletion and insertion, the children renumbered ``0 .. n-1`` after a
    deletion or an insertion. Each container defines ``_of(named_layers)``, its own kind
    built from ``(name, layer)`` pairs (a slice)."""

    def _name_at(self, index):
        names = list(self._modules)
        if not isinstance(index, int) or not -len(names) <= index < len(names):
            raise IndexError(f"{type(self).__name__} index {index!r} out of range for {len(names)} modules")
        return names[index]

    def _renumber(self, layers):
        _changes[0] += 1
        self._modules.clear()
        for index, layer in enumerate(layers):
            self._modules[str(index)] = layer

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self._of(list(self._modules.items())[index])
        return self._modules[self._name_at(index)]

    def __setitem__(self, index, module):
        setattr(self, self._name_at(index), module)

    def __delitem__(self, index):
        layers = list(self._modules.values())
        if not isinstance(index, slice):
            self._name_at(index)  # (checks the index)
        del layers[index]
        self._renumber(layers)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        """Add ``module`` at the end; returns self."""
        setattr(self, str(len(self._modules)), module)
        return self

    def extend(self, modules):
        """Add each of ``modules`` at the end; returns self."""
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        """Put ``module`` before position ``index`` (as ``list.insert``)."""
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}.insert takes a Module, got {type(module).__name__}")
        layers = list(self._modules.values())
        layers.insert(index, module)
        self._renumber(layers)

    def pop(self, index=-1):
        """Remove the module at ``index`` and return it."""
        module = self[index]
        del self[index]
        return module


class Sequential(_ModuleSequence, Module):
    """Modules applied in order: ``Sequential(Linear(4, 8), ReLU(), Linear(8, 1))``;
    ``model.classifier[6] = Linear(4096, 10)`` replaces a layer in place."""

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], collections.OrderedDict):
            for name, layer in layers[0].items():
                setattr(self, name, layer)
        else:
            for index, layer in enumerate(layers):
                setattr(self, str(index), layer)

    def _of(self, named_layers):
        return Sequential(collections.OrderedDict(named_layers))  # (names kept, as torch's)

    def execute(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x


class ModuleList(_ModuleSequence, Module):
    """A list of modules whose parameters the parent sees."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def _of(self, named_layers):
        return ModuleList(layer for _, layer in named_layers)


class _NamedTable:
    """Dict behaviour over one of a module's tables (``_modules``, ``_parameters``), shared
    by `ModuleDict` and `ParameterDict`: entries are attributes, so the parent sees them."""

    _table = None

    def _fill(self, entries):
        for name, value in (entries.items() if hasattr(entries, "items") else entries or ()):
            setattr(self, name, value)

    def update(self, entries):
        """Add the ``(name, value)`` pairs of a dict or an iterable."""
        self._fill(entries)

    def __getitem__(self, name):
        return getattr(self, self._table)[name]

    def __setitem__(self, name, value):
        setattr(self, name, value)

    def __delitem__(self, name):
        delattr(self, name)

    def pop(self, name):
        """Remove the entry ``name`` and return it."""
        value = self[name]
        del self[name]
        return value

    def clear(self):
        """Remove every entry."""
        for name in list(self.keys()):
            del self[name]

    def __contains__(self, name):
        return name in getattr(self, self._table)

    def __len__(self):
        return len(getattr(self, self._table))

    def __iter__(self):
        return iter(getattr(self, self._table))

    def keys(self):
        """The names."""
        return getattr(self, self._table).keys()

    def values(self):
        """The entries."""
        return getattr(self, self._table).values()

    def items(self):
        """``(name, entry)`` pairs."""
        return getattr(self, self._table).items()


class ModuleDict(_NamedTable, Module):
    """A dict of named modules whose parameters the parent sees.

    Example: ``heads = nn.ModuleDict({"cls": nn.Linear(8, 10)}); heads["cls"](x)``."""

    _table = "_modules"

    def __init__(self, modules=None):
        super().__init__()
        self._fill(modules)


class ParameterDict(_NamedTable, Module):
    """A dict of named parameter Vars whose names appear in the parent's ``state_dict``
    (``"<attribute>.<name>"``), as ``torch.nn.ParameterDict``.

    Example: ``self.scales = nn.ParameterDict({"a": jt.ones(3)})``."""

    _table = "_parameters"

    def __init__(self, parameters=None):
        super().__init__()
        self._fill(parameters)


class ParameterList(Module):
    """A list of parameter Vars."""

    def __init__(self, parameters=()):
        super().__init__()
        for parameter in parameters:
            self.append(parameter)

    def append(self, parameter):
        """Add ``parameter``; returns self."""
        setattr(self, str(len(self._parameters)), parameter)
        return self

    def __getitem__(self, index):
        return list(self._parameters.values())[index]

    def __len__(self):
        return len(self._parameters)

    def __iter__(self):
        return iter(self._parameters.values())
