"""Operators whose meaning the user supplies, on nodes only.

* **Opaque operators** (``jt.code``, ``jt.numpy_code``): the outputs of one call are
  nodes of op ``"custom"`` with attrs ``(group, k)``, sharing the call's inputs. The
  `CustomGroup`'s ``runner`` computes them all at once; realisation runs it after the
  inputs are computed and before the fused kernels that read the outputs (never fused).
  A runner has ``run(input_nodes, output_nodes)`` (setting each live output's buffer and
  shape; dead outputs come as None) and ``gradients(node, k, grad_node)`` (one node or
  None per input).
* **Custom gradients** (``jt.Function``): node ``"custom_grad"`` with inputs
  ``(value, *differentiable inputs)`` and attrs ``(group, k)`` has ``value``'s value, but
  gradients reach the inputs through ``group.gradients({k: grad node, ...})``, called
  once per group with the gradients of all its outputs that got one.

Gradient templates (`backward_cache`) record a graph holding opaque nodes only when
their runners say their gradients depend on the structure alone (``replayable``, as MPI
collectives), giving replayed nodes fresh groups; never one holding user code's rules.
"""
import weakref

from . import autodiff, backward_cache, graphwalk
from ..ir.graph import Node

OPAQUE, CUSTOM_GRAD = "custom", "custom_grad"
_unrealised = weakref.WeakSet()  # opaque outputs not computed yet: realisation's quick test


class CustomGroup:
    """The outputs of one opaque call and the ``runner`` that computes them. Groups
    compare by ``runner.structure`` so that graph-structure keys stay stable across
    calls (no cache replays these graphs, see the module docstring)."""

    __slots__ = ("runner", "outputs", "__weakref__")

    def __init__(self, runner):
        self.runner = runner
        self.outputs = []

    def __eq__(self, other):
        return type(other) is CustomGroup and self.runner.structure == other.runner.structure

    def __hash__(self):
        return hash(self.runner.structure)

    def live_outputs(self):
        """Each output node, or None where it was already freed."""
        return [reference() for reference in self.outputs]


def opaque_outputs(runner, inputs, outputs, requires_grad):
    """New output nodes of an opaque call: ``outputs`` are ``(shape, dtype)`` pairs."""
    group = CustomGroup(runner)
    nodes = []
    for k, (shape, dtype) in enumerate(outputs):
        node = Node(OPAQUE, tuple(inputs), (group, k), tuple(shape), dtype, requires_grad=requires_grad(dtype))
        _adopt(node)
        nodes.append(node)
    return nodes


def _adopt(node):
    """Make ``node`` (attrs ``(group, k)``) its group's output ``k`` and wait to be computed."""
    group, k = node.attrs
    group.outputs.extend([lambda: None] * (k + 1 - len(group.outputs)))
    group.outputs[k] = weakref.ref(node)
    _unrealised.add(node)


def _replayable(node):
    """A runner whose gradient rule depends on the structure only (``replayable = True``,
    e.g. MPI collectives) lets gradient templates replay graphs holding it."""
    return getattr(node.attrs[0].runner, "replayable", False)


def _fresh_attrs(attrs, memo):
    group, k = attrs
    fresh = memo.get(id(group))
    if fresh is None:
        fresh = memo[id(group)] = CustomGroup(group.runner)
    return (fresh, k)


def has_unrealised():
    """Whether any opaque output still waits to be computed (cheap)."""
    return bool(_unrealised)


def run_opaque(nodes, realise):
    """Compute every opaque node behind ``nodes``, in graph order: for each, ``realise``
    its inputs, then run its group (which also sets its siblings)."""
    for node in graphwalk.realised_order(nodes):
        if node.op != OPAQUE or node.is_realised:
            continue
        realise(list(node.inputs))
        group = node.attrs[0]
        outputs = group.live_outputs()
        group.runner.run(list(node.inputs), outputs)
        for output in outputs:
            if output is not None:
                _unrealised.discard(output)
                if not output.needs_inputs_for_grad:
                    output.inputs = ()


def _opaque_rule(node, g):
    group, k = node.attrs
    return group.runner.gradients(node, k, g)


class GradientGroup:
    """The outputs of one custom-gradient call: ``gradients({k: grad node})`` returns a
    node or None per differentiable input. Compares by ``structure``, as `CustomGroup`."""

    __slots__ = ("gradients", "structure", "__weakref__")

    def __init__(self, gradients, structure):
        self.gradients = gradients
        self.structure = structure

    def __eq__(self, other):
        return type(other) is GradientGroup and self.structure == other.structure

    def __hash__(self):
        return hash(self.structure)


def custom_grad_outputs(group, values, inputs):
    """Nodes with the values of ``values`` whose gradients flow to ``inputs`` through
    ``group.gradients`` instead of through the values' own graph."""
    return [Node(CUSTOM_GRAD, (value,) + tuple(inputs), (group, k), value.shape, value.dtype,
                 requires_grad=value.requires_grad or any(i.requires_grad for i in inputs))
            for k, value in enumerate(values)]


def _custom_grad_rule(group, grads_by_output):
    return [None] + list(group.gradients(grads_by_output))


autodiff.register_rule(OPAQUE, _opaque_rule)
backward_cache.REPLAY_HOOKS[OPAQUE] = backward_cache.ReplayHook(_replayable, _fresh_attrs, _adopt)
autodiff.register_group_rule(CUSTOM_GRAD, _custom_grad_rule)
