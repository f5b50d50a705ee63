"""Operators whose meaning the user supplies, on nodes only.

* **Opaque operators** (``jt.code``, ``jt.numpy_code``): the outputs of one call are
  nodes of op ``"custom"`` with attrs ``(group, k)``, sharing the call's inputs. The
  `CustomGroup`'s ``runner`` computes them all at once; realisation runs it after the
  inputs are computed and before the fused kernels that read the outputs (never fused).
  A runner has ``run(input_nodes, output_nodes)`` (setting each live output's buffer and
  shape; dead outputs come as None) and ``gradients(node, k, grad_node)`` (one node or
  None per input). A runner that can work in the background (a collective) has instead
  ``start(input_nodes)``, called as soon as its inputs are produced while later kernels
  are still being launched, and ``finish(started, output_nodes)`` with what ``start``
  returned, called before anything reads the outputs.
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
_DATA_FREE_LEAVES = ("constant", "index")
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


_groups_run = [0]  # opaque groups run so far


def groups_run():
    """How many groups of opaque nodes have run so far (in any thread)."""
    return _groups_run[0]


def has_unrealised():
    """Whether any opaque output still waits to be computed (cheap)."""
    return bool(_unrealised)


def run_opaque(nodes, realise):
    """Compute every opaque node behind ``nodes``, wave by wave. A wave is the groups whose
    inputs need no opaque node still to run: their inputs are computed by one call of
    ``realise`` (the executor's), those needing the fewest nodes first (the order they
    can be ready in), together with every value of that computation which later work
    reads (so nothing is computed twice); a runner with ``start`` is started from that
    realisation as soon as its inputs are produced (``on_ready``), then each group runs
    or finishes. A group whose inputs all have values runs at once, without a walk."""
    _run_computed_calls(nodes)
    nodes = [node for node in nodes if node.buffer is None]
    while nodes:
        order = graphwalk.realised_order(nodes)
        wave = _next_wave(order)
        if not wave:
            return
        inputs = list({id(i): i for _, group_inputs in wave for i in group_inputs}.values())
        started, on_ready = {}, []
        for group, group_inputs in wave:
            if hasattr(group.runner, "start"):
                on_ready.append((group_inputs, _starter(group, group_inputs, started)))
        realise(inputs + _values_read_later(order, inputs, nodes), on_ready)
        for group, group_inputs in wave:
            _run_group(group, group_inputs, started)


def _run_computed_calls(nodes):
    """Run the groups of the opaque nodes among ``nodes`` whose inputs all have device
    buffers: a call on computed values (the common case in a loop) needs no graph walk."""
    for node in nodes:
        if node.op == OPAQUE and node.buffer is None and all(i.buffer is not None for i in node.inputs):
            group, started = node.attrs[0], {}
            if hasattr(group.runner, "start"):
                started[id(group)] = group.runner.start(list(node.inputs))
            _run_group(group, node.inputs, started)


def _run_group(group, inputs, started):
    """Run (or finish, when ``started`` holds its start) one group; mark its outputs computed."""
    outputs = group.live_outputs()
    _groups_run[0] += 1
    if id(group) in started:
        group.runner.finish(started[id(group)], outputs)
    else:
        group.runner.run(list(inputs), outputs)
    for output in outputs:
        if output is not None:
            _unrealised.discard(output)
            if not output.needs_inputs_for_grad:
                output.inputs = ()


def _starter(group, inputs, started):
    def start():
        started[id(group)] = group.runner.start(list(inputs))
    return start


def _next_wave(order):
    """``(group, inputs)`` of the unrealised opaque nodes in ``order`` that need no other
    one, those whose inputs need the fewest nodes first."""
    waiting, wave = set(), {}  # ids of nodes that need an opaque node still to run
    for node in order:
        if node.is_realised:
            continue
        if any(id(source) in waiting for source in node.inputs):
            waiting.add(id(node))
        elif node.op == OPAQUE:
            waiting.add(id(node))
            wave.setdefault(id(node.attrs[0]), (node.attrs[0], node.inputs))
    return sorted(wave.values(), key=lambda entry: len(graphwalk.realised_order(list(entry[1]))))


def _values_read_later(order, inputs, targets):
    """The values computed for ``inputs`` that other nodes of ``order`` still to be
    computed read, or that are among ``targets``: kept instead of freed as intermediates
    (values made of constants alone are left to be recomputed)."""
    cone = graphwalk.realised_order(inputs)
    inside, constant = {id(n) for n in cone}, set()
    for node in cone:
        if not node.is_realised and (node.op in _DATA_FREE_LEAVES or node.inputs and
                                     all(id(source) in constant for source in node.inputs)):
            constant.add(id(node))
    kept = {id(t): t for t in targets if id(t) in inside and not t.is_realised}
    for node in order:
        if id(node) in inside or node.is_realised:
            continue
        for source in node.inputs:
            if id(source) in inside and not source.is_realised:
                kept[id(source)] = source
    given = {id(i) for i in inputs}
    return [node for key, node in kept.items() if key not in constant and key not in given]


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
