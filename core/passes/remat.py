"""Rematerialisation: a second copy of a cheap element-wise value for a late reader.

A training step keeps every value a gradient reads until that gradient runs. The input of
a convolution behind a BatchNorm and a ReLU, ``relu(x * scale + shift)``, is read by the
forward convolution and again, much later, by its weight gradient, so it stays stored
through the whole step, next to ``x``, which BatchNorm's and the ReLU's gradients read
anyway. A weight gradient that reads a copy instead (the same ops on the same inputs,
computed again just before it) lets the first value go after the forward convolution:
one element-wise pass more in exchange for one activation less over the step, as
checkpointing recomputes activations (``torch.utils.checkpoint``, ``jax.checkpoint``),
limited here to values recomputed from one value the backward pass keeps anyway.
"""
import collections

from ..ir import opset
from ..ir.graph import Node, numel

MAX_OPS = 8                 # longest chain copied (broadcasts not counted)
SMALL_FRACTION = 64         # inputs this many times smaller than the value (per-channel) are read as they are
_LINEAR = frozenset(("add", "sub", "mul", "neg", "cast", "broadcast_to"))


def recomputed(node):
    """A copy of the element-wise chain computing ``node``, or None when recomputing would
    not save memory.

    The chain may read one value of ``node``'s size (the value the copy is recomputed
    from) and any number of small ones (per-channel statistics, constants), through at
    most `MAX_OPS` element-wise ops, at least one of them non-linear: the gradient of a
    non-linear op (a ReLU) reads the chain's inputs, so the full-size one is kept for the
    backward pass anyway and the copy holds nothing extra alive. The chain stops at a
    value that per-channel statistics in it read (BatchNorm's batch mean and variance read
    its input: DenseNet's concatenation), however it is computed."""
    if node.is_realised or node.op not in opset.ELEMENTWISE:
        return None
    size = numel(node.shape)
    stops = {id(value) for value in _statistics_inputs(node, size)}
    copies, sources, ops = {}, set(), []
    try:
        result = _copy(node, size, stops, copies, sources, ops)
    except _TooLong:
        return None
    if len(sources) != 1 or all(op in _LINEAR for op in ops):
        return None
    return result


def _is_chained(value, size):
    """Whether `recomputed` copies ``value`` (an element-wise op of the full size)."""
    return not value.is_realised and not value.grad_boundary and numel(value.shape) * SMALL_FRACTION > size \
        and (value.op in opset.ELEMENTWISE or value.op == "broadcast_to")


def _statistics_inputs(node, size, limit=64):
    """The full-size values that reductions under the small inputs of ``node``'s chain
    read, directly or through a few element-wise ops (a variance reads ``(x - mean)**2``)."""
    small, queue, seen = [], collections.deque([node]), set()
    while queue and len(seen) < limit:  # breadth first: the chain's own inputs before what computes them
        value = queue.popleft()
        if id(value) in seen or value.is_realised:
            continue
        seen.add(id(value))
        if numel(value.shape) * SMALL_FRACTION <= size:
            small.append(value)
        elif _is_chained(value, size):
            queue.extend(value.inputs)
    found, seen = [], set()
    while small and len(seen) < limit:
        value = small.pop()
        if id(value) in seen or value.is_realised:
            continue
        seen.add(id(value))
        if value.op == "reduce":
            found += _full_size_below(value.inputs[0], size, depth=3)
        elif numel(value.shape) * SMALL_FRACTION <= size:
            small.extend(value.inputs)
    return found


def _full_size_below(value, size, depth):
    """``value`` and the full-size values its element-wise ops read, ``depth`` ops down."""
    if value.is_realised or numel(value.shape) * SMALL_FRACTION <= size:
        return []
    found = [value]
    if depth and value.op in opset.ELEMENTWISE:
        for source in value.inputs:
            found += _full_size_below(source, size, depth - 1)
    return found


def _copy(value, size, stops, copies, sources, ops):
    """``value`` computed again (`recomputed`): inputs of another kind than element-wise,
    and those whose ids are in ``stops``, are read as they are, and those of ``size``
    noted in ``sources``; ``copies`` maps the ids of the values copied so far to their
    copies, ``ops`` lists their ops. (Not a closure: one referring to itself would keep
    the copies alive until a collection.)"""
    if id(value) in copies:
        return copies[id(value)]
    if id(value) in stops or not _is_chained(value, size):
        if numel(value.shape) * SMALL_FRACTION > size:
            sources.add(id(value))
        copies[id(value)] = value
        return value
    if value.op != "broadcast_to":  # an index mapping (a per-channel value read as it is)
        ops.append(value.op)
        if len(ops) > MAX_OPS:
            raise _TooLong
    inputs = tuple(_copy(i, size, stops, copies, sources, ops) for i in value.inputs)
    result = copies[id(value)] = Node(value.op, inputs, value.attrs, value.shape, value.dtype, value.requires_grad)
    return result


class _TooLong(Exception):
    """The chain has more than `MAX_OPS` ops."""
