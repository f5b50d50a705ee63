"""`Var`: the user-facing lazy array. Holds a graph `Node`; realised on demand.

Operators and methods (``+``, ``exp``, ``sum``, ``reshape``...) are attached by
`metajit.var_methods`; this module holds construction, conversion and realisation.
"""
import gc
import threading
import weakref

import numpy as np

from .ir import dtypes, graph
from .passes import autodiff, executor, side_effects
from .errors import MetajitValueError
from .flags import flags
from .shape import Shape

_PRUNE_MINIMUM = 4096


class _ThreadState(threading.local):
    """What `sync_all` and optimiser steps realise, kept per thread: independent graphs
    built in different threads never realise each other's half-built values (a Var shared
    between threads is the user's to synchronise)."""

    def __init__(self):
        self.pending_vars = []  # weak references to Vars made without a value (dead ones pruned)
        self.prune_above = _PRUNE_MINIMUM
        self.pending_assignments = {}  # id -> weak reference, of Vars given a lazy value by assign()
        self.prune_assignments_above = _PRUNE_MINIMUM


_state = _ThreadState()
_watched = side_effects.active  # nonzero while `metajit.compile` watches a call (Vars made are noted)


class Var:
    """A lazy n-d array, like ``jittor.Var`` / ``torch.Tensor``.

    Example::

        >>> x = jt.Var([1.0, 2.0])          # same as jt.array
        >>> (x * 2).numpy()
        array([2., 4.], dtype=float32)

    ``grad`` holds the PyTorch-style gradient accumulated by `backward` (None before any).
    """

    __slots__ = ("_node", "grad", "_name", "__weakref__")
    __array_priority__ = 1000

    def __init__(self, data, dtype=None):
        from .creation import array_node
        self.grad = None
        self._set_node(array_node(data, dtype))
        if _watched[0]:
            side_effects.created(self)

    @classmethod
    def from_node(cls, node):
        """Wrap a graph node (internal; users build Vars with jt.array and ops)."""
        var = object.__new__(cls)
        if _watched[0]:
            side_effects.created(var)
        var.grad = None
        var._set_node(node)
        return var

    def _set_node(self, node):
        self._node = node
        if node.buffer is None:
            if not flags.lazy_execution:
                executor.realise([node])
            else:
                state = _state
                holder = weakref.ref(self)
                state.pending_vars.append(holder)
                node.holder = holder
                if len(state.pending_vars) > state.prune_above:
                    _prune_pending()

    def assign(self, value):
        """Make this Var hold ``value`` (a Var, array or scalar broadcast to its shape); returns self.

        The Var keeps its identity (useful for parameters), and like Jittor's
        ``update`` the new value does not carry gradient history. Its
        ``requires_grad`` is kept.
        """
        return self._hold(value, self.dtype)

    def _hold(self, value, dtype):
        """`assign` with the Var's dtype changed to ``dtype`` (`Module.to(dtype)`, ``half()``:
        the same Var, so an optimiser holding it still updates it)."""
        from .math_ops import as_node
        side_effects.changed(self)
        node = _detached(as_node(value, dtype))
        if node.dtype is not dtype and node.dtype != dtype:
            node = graph.elementwise("cast", [node], dtype)
        if node.shape != self.shape:
            node = graph.broadcast_to(node, self.shape)
        node.requires_grad = self._node.requires_grad
        node.grad_boundary = True
        if autodiff.GRADIENT_HOOKS:
            autodiff.move_gradient_hooks(self._node, node)
        self._set_node(node)
        if node.buffer is None:
            state = _state
            if len(state.pending_assignments) > state.prune_assignments_above:
                _prune_assignments()
            state.pending_assignments[id(self)] = weakref.ref(self)
        return self

    update = assign

    def _replace(self, node):
        """In-place operators: point this Var at ``node`` (the new value, with history).

        Under `no_grad` (``with torch.no_grad(): w.mul_(0.5)``) the Var keeps its
        ``requires_grad`` and stays a leaf, as `assign` does: a parameter changed there
        still trains."""
        if flags.no_grad and self._node.requires_grad and not node.requires_grad:
            return self._hold(Var.from_node(node), node.dtype)
        side_effects.changed(self)
        self._set_node(node)
        return self

    @property
    def shape(self):
        """The shape: a tuple of ints that also equals the list of the same sizes (Jittor's
        shape is a list), see `metajit.shape.Shape`."""
        return Shape(self._node.shape)

    @property
    def dtype(self):
        """The element type, a `metajit.ir.dtypes.DType`."""
        return self._node.dtype

    @property
    def ndim(self):
        """Number of dimensions."""
        return len(self._node.shape)

    def numel(self):
        """Number of elements."""
        return graph.numel(self._node.shape)

    def size(self, dim=None):
        """PyTorch spelling: the shape, or the size of dimension ``dim``."""
        if dim is None:
            return self.shape
        return self.shape[dim]

    def sync(self):
        """Realise this Var now (compute it on the device) and return it."""
        executor.realise([self._node])
        return self

    def numpy(self):
        """A numpy copy of the value (realises the Var)."""
        self.sync()
        return executor.to_host(self._node)

    @property
    def data(self):
        """The value as numpy (Jittor's ``Var.data``); assigning sets the value, and so do
        in-place changes of the array (``w.data[0] = 0``, ``w.data *= 0.5``: see
        `metajit.host_view`)."""
        from .host_view import host_view
        return host_view(self, self.numpy())

    @data.setter
    def data(self, value):
        self.assign(value)

    def item(self):
        """The single element as a Python scalar; raises for more than one element."""
        if self.numel() != 1:
            raise MetajitValueError(
                f"item() needs exactly one element, this Var has shape {self.shape}")
        return self.numpy().reshape(()).item()

    def tolist(self):
        """The value as nested Python lists."""
        return self.numpy().tolist()

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    def __dlpack__(self, **options):
        """The value as a DLPack capsule of a host copy (``torch.from_dlpack(var)``,
        ``np.from_dlpack(var)``): a Var is a value, so the reader gets its own memory."""
        return self.numpy().__dlpack__(**options)

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        """torch functions given Vars see torch tensors (host copies through DLPack):
        ``torch.as_tensor(var)``, ``torch.stack([var, tensor])``, and
        ``torchvision_model.load_state_dict(jt_model.state_dict())``."""
        import torch
        return func(*_to_torch(args, torch), **_to_torch(kwargs or {}, torch))

    def __dlpack_device__(self):
        """Where `__dlpack__`'s memory lives: the host (DLPack's ``kDLCPU``, device 0)."""
        return (1, 0)

    def __repr__(self):
        return f"jt.Var({np.array2string(self.numpy(), separator=' ')}, dtype={self.dtype})"

    __str__ = __repr__

    def __len__(self):
        if not self.shape:  # a TypeError as numpy's: converters (torch.as_tensor) then treat it as a scalar
            raise TypeError("len() of a 0-d Var")
        return self.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __bool__(self):
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if not dtypes.is_integer(self.dtype):
            raise MetajitValueError(f"only integer Vars can be used as an index, got {self.dtype}")
        return int(self.item())

    __hash__ = object.__hash__

    @property
    def requires_grad(self):
        """Whether gradients flow into this Var (float Vars do by default)."""
        return self._node.requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and not dtypes.is_float(self.dtype):
            raise MetajitValueError(f"only float Vars can require gradients, this one is {self.dtype}")
        self._node.requires_grad = bool(value)
        if value:
            from .gradients import track_grad
            track_grad(self)

    def backward(self, grad=None, retain_graph=None, create_graph=False):
        """PyTorch-style: add d(self)/d(leaf) to ``.grad`` of every tracked leaf it depends on.

        Tracked leaves are module parameters and Vars given ``requires_grad_()`` /
        ``requires_grad = True``. ``grad`` weights a non-scalar Var (default: ones).
        ``create_graph=True`` makes the ``.grad`` values differentiable (for higher-order
        gradients); ``retain_graph`` is accepted for PyTorch compatibility (the graph
        lives while Vars refer to it). Jittor code uses ``optimizer.step(loss)`` or
        `metajit.grad` instead.
        """
        from .gradients import backward
        backward(self, grad, create_graph)

    def register_hook(self, hook):
        """PyTorch's ``x.register_hook(hook)``: ``hook(gradient)`` sees (and may replace, by
        returning a Var) x's gradient in every backward pass; see `metajit.gradients.register_hook`."""
        from .gradients import register_hook
        return register_hook(self, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """PyTorch's: ``hook(self)`` runs after each backward pass has added to ``self.grad``
        (a leaf); see `metajit.gradients.register_post_accumulate_grad_hook`."""
        from .gradients import register_post_accumulate_grad_hook
        return register_post_accumulate_grad_hook(self, hook)

    def retain_grad(self):
        """PyTorch's ``y.retain_grad()``: `backward` also fills ``.grad`` of this computed Var."""
        from .gradients import retain_grad
        retain_grad(self)

    @property
    def retains_grad(self):
        """Whether `retain_grad` was called on this computed Var."""
        from .gradients import retains_grad
        return retains_grad(self)

    @property
    def is_leaf(self):
        """PyTorch's ``is_leaf``: made by the user, detached, or needing no gradient."""
        from .gradients import is_leaf
        return is_leaf(self)

    def requires_grad_(self, value=True):
        """PyTorch spelling: set `requires_grad` and return self."""
        self.requires_grad = value
        return self

    def stop_grad(self):
        """Stop gradients at this Var (Jittor): it becomes a constant for autodiff. Returns self."""
        self._node.requires_grad = False
        return self

    def is_stop_grad(self):
        """True when no gradient flows into this Var."""
        return not self._node.requires_grad

    def start_grad(self):
        """Undo `stop_grad` (Jittor): gradients flow into this Var again. Returns self."""
        self.requires_grad = True
        return self

    def detach(self):
        """A new Var with the same value and no gradient history (shares a realised buffer)."""
        return Var.from_node(_detached(self._node))

    def name(self, new_name=None):
        """Jittor's ``var.name()``: the Var's name (None until set); ``var.name("w")`` sets
        it and returns the Var."""
        if new_name is None:
            return getattr(self, "_name", None)
        self._name = str(new_name)
        return self

    def fetch_sync(self):
        """Jittor's ``var.fetch_sync()``: the value as a numpy array."""
        return self.numpy()

    def __deepcopy__(self, memo):
        """``copy.deepcopy`` (of a model, an optimiser state): a Var with the same value and
        ``requires_grad`` and no gradient history; it shares a realised buffer, which is
        never written again (an update rebinds a Var to a new one)."""
        copied = self.detach()
        if self.requires_grad:
            copied.requires_grad = True  # a tracked leaf, as the original parameter is
        memo[id(self)] = copied
        return copied


def _to_torch(value, torch):
    """``value`` with every Var inside its lists, tuples and dicts as a torch tensor."""
    if isinstance(value, Var):
        return torch.from_dlpack(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_to_torch(v, torch) for v in value)
    if isinstance(value, dict):
        return {k: _to_torch(v, torch) for k, v in value.items()}
    return value


def _detached(node):
    """A fresh node with ``node``'s value and no gradient history."""
    if node.is_realised:
        copy = graph.Node(node.op, (), node.attrs, node.shape, node.dtype,
                          host_data=node.host_data)
        copy.buffer = node.buffer
        return copy
    copy = graph.Node("cast", (node,), (node.dtype,), node.shape, node.dtype)  # an identity cast
    copy.grad_boundary = True
    return copy


def _live_pending():
    return [var for var in (reference() for reference in _state.pending_vars)
            if var is not None and var._node.buffer is None]


def _prune_pending():
    """Drop references to dead or realised Vars; the list may then grow to twice its live size."""
    live = _live_pending()
    _state.pending_vars[:] = [weakref.ref(var) for var in live]
    _state.prune_above = max(_PRUNE_MINIMUM, 2 * len(live))


def sync_all(device_sync=False):
    """Realise every pending Var of this thread (Jittor's ``jt.sync_all``); with
    ``device_sync`` also wait for the device. Unreachable Vars still held by a reference
    cycle (a stored exception's traceback) are collected first rather than computed."""
    if _live_pending():  # (a list not kept: it would hold the Vars through the collection)
        gc.collect(0)  # the young generation: metajit raises its threshold (garbage_collection)
    pending = _live_pending()
    _state.pending_vars.clear()
    _realised([v._node for v in pending], device_sync)


def sync(vars, device_sync=False, weak_sync=True):
    """Realise the Vars in ``vars`` (a Var or a sequence of them) in one realisation
    (Jittor's ``jt.sync``); with ``device_sync`` also wait for the device. ``weak_sync``
    is accepted for Jittor's signature (values are always kept)."""
    if isinstance(vars, Var):
        vars = [vars]
    if not all(isinstance(v, Var) for v in vars):
        raise MetajitValueError(f"jt.sync takes Vars, got {[type(v).__name__ for v in vars]}")
    _realised([v._node for v in vars], device_sync)


def _realised(nodes, device_sync):
    executor.realise(nodes)
    if device_sync:
        from . import plugins
        plugins.current().synchronize()


def take_pending_assignments():
    """The Vars assigned lazily since the last call (e.g. BatchNorm running statistics);
    optimisers realise them with their step so state never chains across steps."""
    assignments = _state.pending_assignments
    pending = [var for var in (reference() for reference in assignments.values()) if var is not None]
    assignments.clear()
    return pending


def _prune_assignments():
    """Forget assigned Vars that died or whose value was realised since; the table may
    then grow to twice its live size."""
    assignments = _state.pending_assignments
    for key, reference in list(assignments.items()):
        var = reference()
        if var is None or var._node.buffer is not None:
            del assignments[key]
    _state.prune_assignments_above = max(_PRUNE_MINIMUM, 2 * len(assignments))


def _count_live(kind):
    # counted when asked (a walk over the collector's objects) rather than kept by
    # every constructor and finaliser, which would tax each op of every step
    return sum(1 for thing in gc.get_objects() if issubclass(type(thing), kind))


def fetch_sync(values):
    """The numpy values of a list of Vars, realised together (Jittor's ``jt.fetch_sync``)."""
    values = list(values)
    executor.realise([v._node for v in values])
    return [v.numpy() for v in values]


def clean():
    """Jittor's ``jt.clean``: finish the queued work, then collect every unreachable Var
    and graph node (a full collection), so their device buffers return to the allocator."""
    sync_all()
    gc.collect()


def collect_garbage():
    """Jittor's ``jt.gc()`` (with PyTorch's ``torch.cuda.empty_cache()`` for every device):
    finish the queued work, collect unreachable Vars and graph nodes (`clean`), and return
    the memory each device used so far keeps for reuse to the system or driver. Later
    realisations allocate afresh (slower: a page fault per page touched on the cpu)."""
    from . import plugins
    clean()
    for handle in list(plugins.registry().handles.values()):
        if handle.empty_cache is not None:
            handle.empty_cache()


def display_memory_info():
    """Print the live Vars, graph nodes and device buffers and the current device's memory
    use (Jittor's ``jt.display_memory_info``); returns `memory_info`."""
    info = memory_info()
    print("metajit memory: " + ", ".join(f"{name} {_readable(count) if name.endswith('bytes') else count}"
                                         for name, count in info.items()))
    return info


def memory_info():
    """Live Vars, nodes and buffers (`liveness_info`) and, where the current device reports
    it, its memory use in bytes (``allocated_bytes``, ``cached_bytes``, ``peak_bytes``...)."""
    from . import plugins
    info = dict(liveness_info())
    handle = plugins.current()
    if handle.memory_info is not None:
        info.update(handle.memory_info())
    return info


def _readable(count):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f}{unit}" if unit == "B" else f"{count:.1f}{unit}"
        count /= 1024


def liveness_info():
    """Counts of live Vars, graph nodes and device buffers (for leak checks)."""
    return {"lived_vars": _count_live(Var), "lived_nodes": _count_live(graph.Node),
            "lived_buffers": executor.DeviceBuffer.live_count}


def number_of_lived_vars():
    """Number of live Vars (Jittor's ``jt.number_of_lived_vars``)."""
    return _count_live(Var)
