"""`compile`: a function or Module whose calls are captured once per kind of input and then
replayed, without building, walking or planning the graph again (what ``torch.compile``
and ``jax.jit`` give their users; an exported ONNX model is the same idea).

    fast = jt.compile(model)
    with jt.no_grad():
        for images in batches:
            logits = fast(images)        # realised; replayed from the third call on

A call's kind (its signature) is the shapes, dtypes and ``requires_grad`` of its Var
arguments, its other arguments (hashable values), the grad mode, the device and the flags
that change graphs. For each kind:

1. the first call runs as written (layers build their caches: folded BatchNorm weights);
2. the second runs as written too, watched, and its outputs are realised at once while
   the realisation is captured (`metajit.passes.replay`);
3. later calls bind their Vars and the module's current parameters and buffers to the
   captured leaves and launch the captured kernels again; their outputs come back realised.

A call that cannot be replayed runs as written from then on, with one warning naming why
(``fullgraph=True`` raises instead): it read a value while it ran (``numpy``, ``item``,
printing, data-dependent shapes), drew random numbers (dropout in training mode), assigned
to an existing Var or changed one in place (BatchNorm's running statistics in training
mode), set a Module attribute, returned something other than Vars, or returned values that
track gradients (call it under ``jt.no_grad()``: training steps run as written).

Setting any Module attribute or training mode, or giving a parameter or buffer of the
compiled module a new value (``load_parameters``, an optimiser step), starts again at 1.
Vars the function reads that are neither arguments nor the module's state (closure
variables, globals) are constants of the capture, as in ``jax.jit``; so are Python values
it reads that are not arguments.
"""
import collections
import threading
import warnings

from . import plugins
from .errors import MetajitValueError
from .flags import flags, thread_flags
from .func import pytree
from .nn import module as module_state
from .passes import executor, side_effects
from .passes.replay import Replay
from .var import Var

_SIGNATURES_KEPT = 32  # captures kept per compiled function (the least recently used go)


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
    function's or module's (``compiled.eval()``, ``compiled.parameters()``)."""

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

    def __repr__(self):
        return f"compiled({self.function!r})"

    def __call__(self, *args, **kwargs):
        key, inputs = _signature(args, kwargs)
        if key is None:
            return self._as_written(None, "an argument is neither a Var nor a hashable value", args, kwargs,
                                    stacklevel=3)
        with self._lock:
            entry = self._signatures.get(key)
            if entry is None:
                entry = self._signatures[key] = _Signature()
                if len(self._signatures) > _SIGNATURES_KEPT:
                    self._signatures.popitem(last=False)
            else:
                self._signatures.move_to_end(key)
            state = entry.step(self.module)
        if state == "replay":
            return entry.replayed(inputs)
        if state == "capture":
            return self._capture(entry, args, kwargs, inputs)
        return self.function(*args, **kwargs)

    def _as_written(self, entry, reason, args, kwargs, result=None, stacklevel=4):
        """Mark ``entry`` (None: the call has no signature) to run as written from now on,
        warn once (raise with ``fullgraph``), and return ``result`` or the call's."""
        message = f"jt.compile: a call of {_name(self.function)} runs as written: {reason}"
        if self.fullgraph:
            raise MetajitValueError(message)
        if entry is not None:
            entry.reason = reason
        warnings.warn(message, stacklevel=stacklevel)  # at the caller's line
        return self.function(*args, **kwargs) if result is None else result

    def _capture(self, entry, args, kwargs, inputs):
        state = _module_state(self.module)
        unrealised = [v._node for v in inputs + state if v._node.buffer is None]
        if unrealised:
            executor.realise(unrealised)
        nodes = [v._node for v in inputs + state]
        changes = module_state.changes()
        try:
            with side_effects.watching() as reasons:
                result = self.function(*args, **kwargs)
        finally:
            entry.capturing = False
        outputs, spec = pytree.flatten(result)
        if module_state.changes() != changes:
            reasons.append("it set a Module attribute or the training mode")
        if not all(isinstance(v, Var) for v in outputs):
            reasons.append("it returned something other than Vars in tuples, lists or dicts")
        elif any(v._node.needs_inputs_for_grad and v._node.inputs for v in outputs):
            reasons.append("its outputs track gradients (call it under jt.no_grad())")
        captured = []
        if not reasons:
            executor.realise([v._node for v in outputs], capture=captured)
            if isinstance(captured[0], str):
                reasons.append(captured[0])
        if reasons:
            return self._as_written(entry, reasons[0], args, kwargs, result)
        bound = {}
        for slot, node in enumerate(nodes):
            bound.setdefault(id(node), slot)
        entry.replay = Replay(captured[0], [v._node for v in outputs], bound)
        entry.spec, entry.changes = spec, changes
        entry.state = list(zip(state, nodes[len(inputs):]))
        return result


class _Signature:
    """What one kind of call has reached: warmed up, captured (``replay``), or running as
    written (``reason``)."""

    def __init__(self):
        self.calls = 0
        self.capturing = False
        self.replay = self.reason = self.spec = None
        self.changes, self.state = -1, []

    def step(self, module):
        """What this call does: ``"replay"``, ``"capture"``, ``"warm"`` (run as written, the
        first of a kind or after a change) or ``"eager"`` (as written: cannot be replayed,
        or another thread captures)."""
        if self.reason is not None:
            return "eager"
        if self.replay is not None:
            if self.changes == module_state.changes() and all(v._node is node for v, node in self.state):
                return "replay"
            self.replay, self.calls = None, 0  # the module changed: warm its caches up again
        self.calls += 1
        if self.calls == 1:
            return "warm"
        if self.capturing:
            return "eager"
        self.capturing = True
        return "capture"

    def replayed(self, inputs):
        """The outputs of a replay on ``inputs`` (and the module state captured)."""
        side_effects.note("it called a compiled function that replayed")
        values = [v._node for v in inputs]
        lazy = [n for n in values if n.buffer is None]
        if lazy:
            executor.realise(lazy)
        values += [node for _, node in self.state]
        return pytree.unflatten(self.spec, [Var.from_node(n) for n in self.replay.run(values)])


def _signature(args, kwargs):
    """``(key, input Vars)`` of a call; the key is None when an argument is neither a Var
    nor hashable (such a call runs as written)."""
    leaves, spec = pytree.flatten((args, kwargs))
    inputs, described = [], []
    for leaf in leaves:
        if isinstance(leaf, Var):
            inputs.append(leaf)
            node = leaf._node
            described.append((Var, node.shape, node.dtype, node.requires_grad))
        else:
            try:
                hash(leaf)
            except TypeError:
                return None, inputs
            described.append((type(leaf), leaf))
    key = (_hashable(spec), tuple(described), thread_flags.no_grad, plugins.current(), flags.check_indices,
           flags.auto_convert_64_to_32, flags.allow_tf32, flags.use_tensorcore, flags.amp_reg, flags.lazy_execution)
    return key, inputs


def _hashable(spec):
    if spec is None:
        return None
    kind, children = spec
    if kind is dict:
        return (dict, tuple((key, _hashable(child)) for key, child in children))
    return (kind, tuple(_hashable(child) for child in children))


def _module_state(module):
    """The parameters and buffers of ``module`` (None: none), each once."""
    if module is None:
        return []
    found = {}
    for var in module.parameters() + module.buffers():
        found.setdefault(id(var), var)
    return list(found.values())


def _name(function):
    return type(function).__name__ if isinstance(function, module_state.Module) else \
        getattr(function, "__qualname__", repr(function))
