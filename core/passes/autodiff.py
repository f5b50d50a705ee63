"""Reverse-mode autodiff mechanism over the lazy graph, on nodes only.

Each meta-op's gradient rule is registered with `register_rule` where the op's front end
lives (`metajit.gradients`), as JAX keeps primitives' rules beside them; this module walks
the graph, calls the rules and sums the contributions, and never imports the front end.
A rule is ``rule(node, grad_node) -> [grad node or None per input]``; its nodes are
meta-ops, so gradients can be differentiated again.
"""
import weakref

from . import backward_cache, graphwalk, library_ops
from ..ir import graph
from ..flags import flags

RULES = {}  # op -> rule(node, grad node) -> [node or None per input]
GROUP_RULES = {}  # op -> rule(group, {output index: grad node}) -> [node or None per input]
GRADIENT_HOOKS = weakref.WeakKeyDictionary()  # node -> [hook(grad node) -> grad node]


def register_rule(op, rule):
    """Make ``rule(node, grad_node) -> [node or None per input]`` the gradient rule of ``op``."""
    RULES[op] = rule


def register_group_rule(op, rule):
    """Make ``rule(group, {k: grad node}) -> [node or None per input]`` the gradient rule
    of ``op``, whose nodes have attrs ``(group, k)``: output ``k`` of a multi-output call
    whose user-written gradient takes all output gradients at once (``jt.Function``).
    The rule runs once per group, when every member node in the graph has its gradient;
    the member nodes share their inputs (after the first, which gets no gradient)."""
    GROUP_RULES[op] = rule


def add_gradient_hook(node, hook):
    """Make every backward pass through ``node`` replace its gradient (the sum over its
    consumers) with ``hook(grad_node)`` before passing it on; returns a function that
    removes the hook. Hooks run in the order they were added."""
    hooks = GRADIENT_HOOKS.setdefault(node, [])
    entry = [hook]  # a new list per registration: the same hook added twice is removed once

    def remove():
        if entry in hooks:
            hooks.remove(entry)
        if not hooks:  # under whichever node holds the list now (see `move_gradient_hooks`)
            for holder in [n for n, held in GRADIENT_HOOKS.items() if held is hooks]:
                del GRADIENT_HOOKS[holder]
    hooks.append(entry)
    return remove


def move_gradient_hooks(old, new):
    """Give node ``new`` the gradient hooks of ``old`` (a Var assigned a new value, as an
    optimiser step does, keeps its hooks, as a PyTorch parameter updated in place)."""
    hooks = GRADIENT_HOOKS.pop(old, None)
    if hooks:
        GRADIENT_HOOKS[new] = hooks


def _hooked(order):
    """Whether a node of ``order`` has gradient hooks."""
    return bool(GRADIENT_HOOKS) and any(GRADIENT_HOOKS.get(node) for node in order)


def _group_sizes(order):
    """How many member nodes of each group (by id) ``order`` holds."""
    sizes = {}
    for node in order:
        if node.op in GROUP_RULES:
            sizes[id(node.attrs[0])] = sizes.get(id(node.attrs[0]), 0) + 1
    return sizes


def graph_order(root, stop_ids=frozenset()):
    """Topological order (inputs first) of the nodes gradients can flow through, not
    descending below nodes whose id is in ``stop_ids``."""
    return graphwalk.gradient_order(root, stop_ids)


def _accumulate(grads, node, value):
    if value is None:
        return
    if value.shape != node.shape:
        value = graph.broadcast_to(value, node.shape)
    if value.dtype != node.dtype:
        value = graph.elementwise("cast", [value], node.dtype)
    previous = grads.get(id(node))
    grads[id(node)] = value if previous is None else graph.elementwise("add", [previous, value])


def backward_pass(loss_node, seed, target_nodes, stop_nodes=(), order=None):
    """Gradient nodes (by node id) of ``loss_node`` seeded with the node ``seed`` (of its
    shape), flowing towards ``target_nodes`` and not below ``stop_nodes`` (``order``: the
    graph's `graph_order`, when the caller has it)."""
    target_ids = {id(t) for t in target_nodes}
    if order is None:
        order = graph_order(loss_node, frozenset(id(n) for n in stop_nodes))
    leads_to_target = set()
    for node in order:
        if id(node) in target_ids or any(id(i) in leads_to_target for i in node.inputs):
            leads_to_target.add(id(node))
    grads = {id(loss_node): seed}
    waiting = _group_sizes(order) if GROUP_RULES else {}
    collected = {}  # group id -> {output index: grad node}
    for node in reversed(order):
        g = grads.get(id(node))
        if g is not None and GRADIENT_HOOKS and node in GRADIENT_HOOKS:
            for (hook,) in list(GRADIENT_HOOKS[node]):
                g = hook(g)
            grads[id(node)] = g
        if node.op in GROUP_RULES:
            group, k = node.attrs
            if g is not None:
                collected.setdefault(id(group), {})[k] = g
            waiting[id(group)] -= 1
            if waiting[id(group)] or id(group) not in collected:
                continue
            contributions = GROUP_RULES[node.op](group, collected.pop(id(group)))
        elif g is None or not node.inputs or node.op not in RULES:
            continue
        else:
            contributions = RULES[node.op](node, g)
        for source, value in zip(node.inputs, contributions):
            if source.requires_grad and id(source) in leads_to_target:
                _accumulate(grads, source, value)
    return grads


def target_gradients(loss_node, seed, target_nodes, order=None):
    """The gradient node of ``loss_node`` (seeded with node ``seed``) for each target (None
    where it does not depend on it); replays a `backward_cache` template when the graph's
    structure was seen before. ``order``: the loss's `graph_order`, when the caller has it."""
    if order is None:
        order = graph_order(loss_node)
    # hooks are user functions, which a recorded template would skip
    if not flags.lazy_execution or _hooked(order):
        grads = backward_pass(loss_node, seed, target_nodes, order=order)
        return [grads.get(id(t)) for t in target_nodes]
    key = backward_cache.structure_key(order, target_nodes, seed)
    template = backward_cache.lookup(key)
    if backward_cache.is_replayable(template):
        return backward_cache.instantiate(template, order, seed)
    grads = backward_pass(loss_node, seed, target_nodes, order=order)
    nodes = [grads.get(id(t)) for t in target_nodes]
    if template is None:
        backward_cache.record(key, order, seed, nodes)
    return nodes


def _library_rule(node, g):
    """A library op's own gradient when it defines one, else the gradient of its decomposition."""
    gradients = library_ops.OPS[node.attrs[0]].gradients
    grads = gradients(node, g) if gradients is not None else None
    if grads is None:
        grads = backward_pass(library_ops.decomposition(node), g, node.inputs, node.inputs)
        grads = [grads.get(id(i)) for i in node.inputs]
    return grads


register_rule("library", _library_rule)
