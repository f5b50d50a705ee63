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
from ..ir import opset
from ..ir.graph import Node, numel

MAX_OPS = 8                 # longest chain copied
SMALL_FRACTION = 64         # inputs this many times smaller than the value (per-channel) are read as they are
_LINEAR = frozenset(("add", "sub", "mul", "neg", "cast", "broadcast_to"))


def recomputed(node):
    """A copy of the element-wise chain computing ``node``, or None when recomputing would
    not save memory.

    The chain may read one value of ``node``'s size (the value the copy is recomputed
    from) and any number of small ones (per-channel statistics, constants), through at
    most `MAX_OPS` element-wise ops, at least one of them non-linear: the gradient of a
    non-linear op (a ReLU) reads the chain's inputs, so the full-size one is kept for the
    backward pass anyway and the copy holds nothing extra alive."""
    if node.is_realised or node.op not in opset.ELEMENTWISE:
        return None
    copies, sources, ops = {}, set(), []
    try:
        result = _copy(node, numel(node.shape), copies, sources, ops)
    except _TooLong:
        return None
    if len(sources) != 1 or all(op in _LINEAR for op in ops):
        return None
    return result


def _copy(value, size, copies, sources, ops):
    """``value`` computed again (`recomputed`): inputs of another kind than element-wise
    are read as they are, and those of ``size`` noted in ``sources``; ``copies`` maps the
    ids of the values copied so far to their copies, ``ops`` lists their ops. (Not a
    closure: one referring to itself would keep the copies alive until a collection.)"""
    if id(value) in copies:
        return copies[id(value)]
    if value.is_realised or value.grad_boundary or numel(value.shape) * SMALL_FRACTION <= size \
            or (value.op not in opset.ELEMENTWISE and value.op != "broadcast_to"):
        if numel(value.shape) * SMALL_FRACTION > size:
            sources.add(id(value))
        copies[id(value)] = value
        return value
    ops.append(value.op)
    if len(ops) > MAX_OPS:
        raise _TooLong
    inputs = tuple(_copy(i, size, copies, sources, ops) for i in value.inputs)
    result = copies[id(value)] = Node(value.op, inputs, value.attrs, value.shape, value.dtype, value.requires_grad)
    return result


class _TooLong(Exception):
    """The chain has more than `MAX_OPS` ops."""
