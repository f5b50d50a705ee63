"""Backward templates: a repeated ``jt.grad`` over a graph of the same structure replays
the gradient graph it built last time instead of running every rule again.

The gradient rules are a pure function of the forward graph's structure (ops, attrs,
shapes, dtypes, edges, ``requires_grad``) and never of data or constant values, so the
nodes they built once can be cloned for another graph with the same structure: a
template lists each new node with its inputs as positions in the forward order, the
seed, or earlier new nodes. A training step's backward then costs one structure key
and one cheap `Node` construction per gradient node, instead of the front end's
promotion, broadcasting and shape checks per rule.
"""

import threading
from . import graphwalk
from .. import plugins
from ..flags import flags
from ..ir.graph import Node

CACHE_SIZE = 256
USER_RULE_OPS = ("custom", "custom_grad")  # ops whose nodes replay only through a `ReplayHook`
REPLAY_HOOKS = {}  # op -> ReplayHook


class ReplayHook:
    """How nodes of an op whose attrs hold per-call state (`custom_ops`' groups) replay:
    ``replayable(node)`` says whether its rule is a pure function of the structure, and
    ``fresh(attrs, memo)`` gives a new node's attrs (state shared within one replay
    through ``memo``); ``adopt(node)`` registers the new node."""

    def __init__(self, replayable, fresh, adopt):
        self.replayable, self.fresh, self.adopt = replayable, fresh, adopt


def _is_replayable(node):
    hook = REPLAY_HOOKS.get(node.op)
    return hook is not None and hook.replayable(node)
_templates = {}  # oldest entry evicted first; hits do not reorder (that would hash the key again)
_evicting = threading.Lock()
_UNCACHEABLE = object()


def structure_key(order, target_nodes, seed):
    """What the gradient rules see of the graph ``order`` (inputs first) and of the
    current device, as a hashable key."""
    entries, targets = graphwalk.gradient_entries(order, target_nodes)
    # library ops' own gradients depend on what the current device claims
    claims = plugins.current().description.library_kernels
    return entries, targets, seed.shape, seed.dtype, flags.no_grad, claims


def lookup(key):
    """The template recorded for ``key``, `UNCACHEABLE` when the graph cannot be replayed,
    or None when nothing is recorded."""
    return _templates.get(key)


def is_replayable(template):
    """Whether ``template`` (from `lookup`) can be instantiated."""
    return template is not None and template is not _UNCACHEABLE


def record(key, order, seed, results):
    """Remember how the gradient nodes ``results`` (one node or None per target) were built
    from the forward graph ``order`` and the ``seed`` node."""
    template = None if any(node.op in USER_RULE_OPS and not _is_replayable(node) for node in order) else \
        _template(graphwalk.positions(order), seed, results)
    with _evicting:  # two threads must not both evict the same oldest entry
        _templates[key] = _UNCACHEABLE if template is None else template
        if len(_templates) > CACHE_SIZE:
            del _templates[next(iter(_templates))]


def _template(position, seed, results):
    seed_slot = len(position)
    slots = dict(position)
    slots[id(seed)] = seed_slot
    entries, seen = [], set()
    visiting = [(node, False) for node in results if node is not None]
    while visiting:
        node, expanded = visiting.pop()
        if expanded:
            slots[id(node)] = seed_slot + 1 + len(entries)
            entries.append((node.op, tuple(slots[id(i)] for i in node.inputs), node.attrs, node.shape,
                            node.dtype, node.requires_grad, node.grad_boundary))
            continue
        if id(node) in slots or id(node) in seen:
            continue
        if node.is_realised or node.op == "array" or node.op in USER_RULE_OPS and not _is_replayable(node):
            return None  # a value the rules did not build, or a call's own state: not replayable
        seen.add(id(node))
        visiting.append((node, True))
        visiting.extend((i, False) for i in node.inputs if id(i) not in slots)
    hooked = any(entry[0] in REPLAY_HOOKS for entry in entries)
    return tuple(entries), tuple(None if n is None else slots[id(n)] for n in results), hooked


def instantiate(template, order, seed):
    """The gradient nodes (one per target, or None) for the forward graph ``order``."""
    entries, results, hooked = template
    pool = list(order)
    pool.append(seed)
    if graphwalk.native is not None and not hooked:
        graphwalk.native.instantiate(entries, pool)
    else:
        memo = {}
        for op, inputs, attrs, shape, dtype, requires_grad, grad_boundary in entries:
            hook = REPLAY_HOOKS.get(op)
            node = Node(op, tuple([pool[k] for k in inputs]), attrs if hook is None else hook.fresh(attrs, memo),
                        shape, dtype, requires_grad)
            node.grad_boundary = grad_boundary
            if hook is not None:
                hook.adopt(node)
            pool.append(node)
    return [None if slot is None else pool[slot] for slot in results]


def clear():
    """Forget every template (tests; the cache is bounded anyway)."""
    _templates.clear()
