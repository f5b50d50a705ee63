"""`compile`: a function or Module whose calls are captured once per kind of input and then
replayed, without building, walking or planning the graph again (what ``torch.compile``
and ``jax.jit`` give their users; an exported ONNX model is the same idea).

    fast = jt.compile(model)
    with jt.no_grad():
        for images in batches:
            logits = fast(images)        # realised; replayed from the third call on

A call's kind (its signature) is the shapes, dtypes and ``requires_grad`` of its Var
arguments and which of them are the same Var, its other arguments (numbers, strings,
dtypes, functions; Modules by identity), the grad mode, the device and the flags that
change graphs; a call with another kind of argument runs as written. For each kind:

1. the first call runs as written (layers build their caches: folded BatchNorm weights);
2. the second runs as written too, watched, and its outputs are realised at once while
   the realisation is captured (`metajit.passes.replay`);
3. later calls bind their Vars and the modules' current parameters and buffers to the
   captured leaves and launch the captured kernels again; their outputs come back realised.

A call that cannot be replayed runs as written until a Module changes, with one warning
naming why (``fullgraph=True`` raises instead): gradients are tracked (call it under
``jt.no_grad()``: training steps run as written), it read a value while it ran
(``numpy``, ``item``, printing, data-dependent shapes), drew random numbers (dropout in
training mode), gave a Var it did not make a new value (BatchNorm's running statistics in
training mode, an argument changed in place), or returned something other than Vars. A
call that set a Module attribute is tried again later. Modules among the arguments are
state like the compiled module.

Setting any Module attribute or training mode, or giving a parameter or buffer of the
modules a new value (``load_parameters``, an optimiser step), starts again at 1. Vars the
function reads that are neither arguments nor the modules' state (closure variables,
globals, a non-Module ``self``'s attributes) are constants of the capture, as in
``jax.jit``; so are Python values it reads that are not arguments.
"""
import collections
import enum
import math
import operator
import threading
import types
import warnings
import weakref

import numpy as np

from . import plugins
from .errors import MetajitValueError
from .ir.dtypes import DType
from .flags import flags, thread_flags
from .func import pytree
from .ir.graph import Node
from .nn import module as module_state
from .passes import executor, side_effects
from .passes.replay import Replay
from .var import Var

_SIGNATURES_KEPT = 32  # captures kept per compiled function (the least recently used go)
_NOT_RUN = object()  # `_as_written`: the call has not run yet
_NODE_OF = operator.attrgetter("_node")


def compile(function=None, *, fullgraph=False):
    """``function`` (a callable or a `metajit.nn.Module`) with its calls captured and
    replayed (see the module docstring). ``fullgraph=True``: raise `MetajitValueError`
    where a call cannot be replayed, instead of running it as written. Works as a
    decorator too (``@jt.compile`` or ``@jt.compile(fullgraph=True)``).

    Example::

        model = jt.models.resnet18().eval()
        fast = jt.compile(model)
        with jt.no_grad():
            y = fast(x)
    """
    if function is None:
        return lambda wrapped: CompiledFunction(wrapped, fullgraph)
    return CompiledFunction(function, fullgraph)


class CompiledFunction:
    """What `compile` returns: call it as the function; other attributes are the wrapped
    function's or module's (``compiled.eval()``, ``compiled.parameters()``). As a method
    decorator it compiles the method of each instance apart."""

    def __init__(self, function, fullgraph=False):
        if not callable(function):
            raise MetajitValueError(f"jt.compile takes a function or a Module, got {type(function).__name__}")
        owner = getattr(function, "__self__", None)
        self.function, self.fullgraph = function, fullgraph
        self.module = function if isinstance(function, module_state.Module) else \
            owner if isinstance(owner, module_state.Module) else None
        self._signatures = collections.OrderedDict()
        self._lock = threading.Lock()

    def __getattr__(self, name):
        if name == "function":  # not set yet (a copy being made)
            raise AttributeError(name)
        return getattr(self.function, name)

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        slot = f"_compiled_{id(self)}"  # kept on the instance: a cycle the collector frees with it
        method = getattr(instance, "__dict__", {}).get(slot)
        if method is None:
            method = CompiledFunction(self.function.__get__(instance, owner), self.fullgraph)
            if hasattr(instance, "__dict__"):
                instance.__dict__[slot] = method
        return method

    def __repr__(self):
        return f"compiled({self.function!r})"

    def __call__(self, *args, **kwargs):
        key, inputs, modules = _signature(args, kwargs)
        if key is None:
            return self._as_written(None, "an argument is neither a Var, a Module nor a plain value (a number, "
                                    "string, dtype or function; pass the Vars an object holds as arguments)",
                                    args, kwargs, stacklevel=3)
        with self._lock:
            entry = self._signatures.get(key)
            if entry is None:
                entry = self._signatures[key] = _Signature(modules)
                if len(self._signatures) > _SIGNATURES_KEPT:
                    self._signatures.popitem(last=False)
            else:
                self._signatures.move_to_end(key)
            state = entry.step()
        if isinstance(state, tuple):  # what to replay, taken under the lock
            return _replayed(state, inputs)
        if state == "capture":
            return self._capture(entry, args, kwargs, inputs)
        return self.function(*args, **kwargs)

    def _as_written(self, entry, reason, args, kwargs, result=_NOT_RUN, stacklevel=4):
        """Mark ``entry`` (None: the call has no signature) to run as written until a
        Module changes, warn once (raise with ``fullgraph``), and return ``result`` or the
        call's."""
        message = f"jt.compile: a call of {_name(self.function)} runs as written: {reason}"
        if self.fullgraph:
            raise MetajitValueError(message)
        if entry is not None:
            with self._lock:
                entry.reason, entry.changes = reason, module_state.changes()
        warnings.warn(message, stacklevel=stacklevel)  # at the caller's line
        return self.function(*args, **kwargs) if result is _NOT_RUN else result

    def _capture(self, entry, args, kwargs, inputs):
        try:
            return self._watched_call(entry, args, kwargs, inputs)
        finally:
            entry.capturing = False

    def _watched_call(self, entry, args, kwargs, inputs):
        """The capture call: run the function on new leaves holding the arguments' values
        (one per distinct argument Var: the signature tells aliased arguments apart, and an
        argument that is also a parameter binds apart), watched; capture its realisation."""
        if not thread_flags.no_grad:
            return self._as_written(entry, "gradients are tracked (call it under jt.no_grad())", args, kwargs)
        state = _module_state([self.module] + entry.modules)
        unrealised = [v._node for v in inputs + state if v._node.buffer is None]
        if unrealised:
            executor.realise(unrealised)
        fresh = {}
        for var in inputs:
            if id(var) not in fresh:
                fresh[id(var)] = Var.from_node(_leaf_like(var._node))
        leaves, arguments = pytree.flatten((args, kwargs))
        call_args, call_kwargs = pytree.unflatten(arguments, [fresh[id(leaf)] if isinstance(leaf, Var) else leaf
                                                              for leaf in leaves])
        given = [fresh[id(var)] for var in inputs]
        nodes = [leaf._node for leaf in given] + [v._node for v in state]
        given_nodes = {id(var): leaf._node for var, leaf in zip(inputs, given)}
        changes = module_state.changes()
        try:
            with side_effects.watching() as watched:
                result = self.function(*call_args, **call_kwargs)
        finally:  # the caller's Vars take what the call did to their stand-ins
            for var in {id(v): v for v in inputs}.values():
                if fresh[id(var)]._node is not given_nodes[id(var)]:
                    var._replace(fresh[id(var)]._node)
        outputs, spec = pytree.flatten(result)
        position = {id(leaf): k for k, leaf in enumerate(given)}
        for k, var in enumerate(state):
            position.setdefault(id(var), len(given) + k)
        first = {}
        returned = [("slot", position[id(v)]) if id(v) in position else ("same", first.setdefault(id(v), k))
                    for k, v in enumerate(outputs)]
        stand_in = {id(fresh[id(var)]): var for var in inputs}
        result = pytree.unflatten(spec, [stand_in.get(id(v), v) for v in outputs])
        reasons = watched.reasons
        if not all(isinstance(v, Var) for v in outputs):
            reasons.append("it returned something other than Vars in tuples, lists or dicts")
        elif any(v._node.needs_inputs_for_grad and v._node.inputs for v in outputs):
            reasons.append("its outputs track gradients (call it under jt.no_grad())")
        if not reasons and module_state.changes() != changes:  # (maybe another thread's Module): try again later
            with self._lock:
                entry.calls = 0
            return result
        captured = []
        if not reasons:
            executor.realise([v._node for v in outputs], capture=captured)
            if isinstance(captured[0], str):
                reasons.append(captured[0])
        if reasons:
            return self._as_written(entry, reasons[0], args, kwargs, result)
        replay = Replay(captured[0], [v._node for v in outputs], {id(node): slot for slot, node in enumerate(nodes)})
        with self._lock:  # published whole: `step` reads these under the lock
            entry.replay, entry.spec, entry.changes, entry.returned = replay, spec, changes, returned
            entry.state = (state, [weakref.ref(node) for node in nodes[len(inputs):]])
        return result


class _Signature:
    """What one kind of call has reached: warmed up, captured (``replay``), or running as
    written (``reason``); ``modules``: the Modules among its arguments (whose parameters
    and buffers replays read, as the compiled module's); ``state``: those parameters and
    buffers (Vars) with weak references to the nodes they held at capture (a replay needs
    each still to hold its node)."""

    def __init__(self, modules):
        self.modules = modules
        self.calls = 0
        self.capturing = False
        self.replay = self.reason = self.spec = None
        self.changes, self.state, self.returned = -1, ([], []), []

    def step(self):
        """What this call does (the signature's lock held): replay (a tuple: the replay,
        the output structure, the state nodes and how outputs come back), ``"capture"``,
        ``"warm"`` (run as written, the first of a kind or after a change) or ``"eager"``
        (as written: cannot be replayed until a Module changes, or another thread
        captures)."""
        if self.reason is not None:
            if self.changes == module_state.changes():
                return "eager"
            self.reason, self.calls = None, 0  # a Module changed (eval() after train()): try again
        if self.replay is not None:
            state_vars, captured = self.state
            nodes = [node() for node in captured]
            if self.changes == module_state.changes() and all(map(operator.is_, map(_NODE_OF, state_vars), nodes)):
                return self.replay, self.spec, nodes, self.returned, state_vars
            self.replay, self.calls = None, 0  # the module changed: warm its caches up again
        self.calls += 1
        if self.calls == 1:
            return "warm"
        if self.capturing:
            return "eager"
        self.capturing = True
        return "capture"


def _replayed(taken, inputs):
    """The outputs of a replay (``taken``: what `_Signature.step` returned) on ``inputs``."""
    replay, spec, state_nodes, returned, state_vars = taken
    side_effects.note("it called a compiled function that replayed")
    values = [v._node for v in inputs]
    lazy = [n for n in values if n.buffer is None]
    if lazy:
        executor.realise(lazy)
    given = inputs + state_vars
    outputs = []
    for node, (how, where) in zip(replay.run(values + state_nodes), returned):
        outputs.append(given[where] if how == "slot" else outputs[where] if where < len(outputs)
                       else Var.from_node(node))
    return pytree.unflatten(spec, outputs)


def _signature(args, kwargs):
    """``(key, input Vars, Modules)`` of a call; the key is None when an argument is
    neither a Var, a Module nor a plain value (`_static`; such a call runs as written)."""
    leaves, spec = pytree.flatten((args, kwargs))
    inputs, modules, described, seen = [], [], [], {}
    for leaf in leaves:
        if isinstance(leaf, Var):
            node = leaf._node
            # (the position of an earlier argument that is the same Var: aliasing is part of the kind)
            described.append((Var, node.shape, node.dtype, node.requires_grad, seen.setdefault(id(leaf), len(inputs))))
            inputs.append(leaf)
        elif isinstance(leaf, module_state.Module):
            modules.append(leaf)  # (kept by the signature: its id stays its own)
            described.append((module_state.Module, id(leaf)))
        else:
            static = _static(leaf)
            if static is None:
                return None, inputs, modules
            described.append(static)
    key = (_hashable(spec), tuple(described), thread_flags.no_grad, plugins.current(), flags.check_indices,
           flags.auto_convert_64_to_32, flags.allow_tf32, flags.use_tensorcore, flags.amp_reg, flags.lazy_execution)
    return key, inputs, modules


_STATIC_TYPES = (bool, int, str, bytes, complex, type(None), type, range, enum.Enum, np.generic, DType,
                 types.FunctionType, types.BuiltinFunctionType)


def _static(value):
    """How a non-Var argument enters a signature: its type and value (a float's sign too:
    -0.0 equals 0.0), or None for anything but numbers, strings, dtypes, enums and
    functions (an object may hold Vars or change unseen: its attributes would be constants
    of the capture)."""
    if isinstance(value, float):  # (numpy's float64 too)
        return (type(value), value, math.copysign(1.0, value))
    if isinstance(value, _STATIC_TYPES):
        try:
            return (type(value), value, hash(value))
        except TypeError:
            return None
    return None


def _leaf_like(node):
    """A new realised leaf holding ``node``'s value."""
    leaf = Node("array", (), (), node.shape, node.dtype, requires_grad=node.requires_grad)
    leaf.buffer = node.buffer
    return leaf


def _hashable(spec):
    if spec is None:
        return None
    kind, children = spec
    if kind is dict:
        return (dict, tuple((key, _hashable(child)) for key, child in children))
    return (kind, tuple(_hashable(child) for child in children))


def _module_state(modules):
    """The parameters and buffers of ``modules`` (None entries skipped), each once."""
    found = {}
    for module in modules:
        if module is not None:
            for var in module.parameters() + module.buffers():
                found.setdefault(id(var), var)
    return list(found.values())


def _name(function):
    return type(function).__name__ if isinstance(function, module_state.Module) else \
        getattr(function, "__qualname__", repr(function))
