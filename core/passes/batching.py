"""Batching rules: the graph a function built for one example, rewritten for a batch
(``vmap``), on nodes only.

`batch_graph` walks the unrealised graph behind some output nodes; every node that
depends on a substituted node (a placeholder standing for one example of a batched
input) is rebuilt with a leading batch dim of size ``size`` by its op's rule, and every
other node is shared as it is. Each meta-op has one rule, so every front-end op batches:

* element-wise: unbatched operands are broadcast along the batch dim;
* reduce: the axes move by one;
* broadcast_to: the source gets ones between its batch dim and its own dims;
* reindex / reindex_reduce: a loop index for the batch dim is added in front, the other
  loop indices move by one, and batched extra index inputs are read at that batch index;
* library ops: a convolution of batched images with shared weights joins the vmapped
  batch to its own (still one library call); otherwise their meta-op decomposition is
  batched.

Batched values always carry the batch dim first.
"""
import threading

from . import graphwalk, library_ops
from ..errors import MetajitValueError
from ..ir import graph, indexexpr, opset

PLACEHOLDER = "batch_placeholder"
RANDOMNESS = ("error", "different", "same")
_active = threading.local()  # the batch contexts running in this thread, innermost last


def placeholder(shape, dtype):
    """A leaf standing for one example of a batched value: it has no value (reading one
    inside ``vmap`` is an error), only a shape and a dtype."""
    return graph.Node(PLACEHOLDER, (), (), tuple(shape), dtype, requires_grad=graph.derived_requires_grad(dtype))


class BatchContext:
    """One running ``vmap`` (a context manager): its batch ``size``, its ``randomness``
    rule and ``substitutions`` (placeholder id -> batched node), which random draws made
    inside it may extend (`random_node`)."""

    def __init__(self, size, randomness, substitutions):
        self.size = size
        self.randomness = randomness
        self.substitutions = substitutions

    def __enter__(self):
        _stack().append(self)
        return self

    def __exit__(self, *exception):
        _stack().pop()


def _stack():
    stack = getattr(_active, "stack", None)
    if stack is None:
        stack = _active.stack = []
    return stack


def random_node(shape, draw):
    """The node of a random draw of ``shape`` (``draw(shape) -> node``) under the innermost
    running `BatchContext`'s randomness rule, or ``draw(shape)`` outside any."""
    stack = _stack()
    if not stack:
        return draw(shape)
    context = stack[-1]
    if context.randomness == "error":
        raise MetajitValueError("vmap: the vmapped function draws random numbers; pass randomness='different' "
                                "(one draw per example) or 'same' (one draw for all) to vmap")
    if context.randomness == "same":
        return draw(shape)
    drawn = draw((context.size,) + tuple(shape))
    stand_in = placeholder(shape, drawn.dtype)
    context.substitutions[id(stand_in)] = drawn
    return stand_in


def batch_graph(outputs, substitutions, size):
    """Per output node, its batched node (batch dim first), or None where it does not
    depend on any substituted node. ``substitutions``: ``{id(node): batched node}``."""
    batched = dict(substitutions)
    for node in graphwalk.realised_order(outputs):
        if id(node) in batched or not any(id(i) in batched for i in node.inputs):
            continue
        rule = _RULES.get(node.op) or (_elementwise if node.op in opset.ELEMENTWISE else None)
        if rule is None:
            raise MetajitValueError(f"vmap: operation {node.op!r} cannot be batched; call it outside the "
                                    "vmapped function (jt.code and jt.numpy_code operators run once per call)")
        batched[id(node)] = rule(node, [batched.get(id(i)) for i in node.inputs], size)
    return [batched.get(id(n)) for n in outputs]


def _expanded(node, batched, size):
    """``node``'s batched form: ``batched`` itself, or ``node`` broadcast along a new batch dim."""
    return batched if batched is not None else graph.broadcast_to(node, (size,) + node.shape)


def _elementwise(node, batched, size):
    operands = [_expanded(i, b, size) for i, b in zip(node.inputs, batched)]
    return graph.elementwise(node.op, operands, node.attrs[0] if node.op == "cast" else None)


def _reduce(node, batched, size):
    op, axes, keepdims = node.attrs
    return graph.reduce(op, batched[0], tuple(a + 1 for a in axes), keepdims)


def _broadcast(node, batched, size):
    source = node.inputs[0]
    padded = graph.reshape(batched[0], (size,) + (1,) * (len(node.shape) - len(source.shape)) + source.shape)
    return graph.broadcast_to(padded, (size,) + node.shape)


def _shifted(expr, batched_extras):
    """``expr`` over loops one further right, with batched extras read at loop 0 first."""
    op = expr.op
    if op == "loop":
        return indexexpr.loop(expr.args[0] + 1)
    if op == "const":
        return expr
    if op == "extra":
        slot = expr.args[0]
        indices = [_shifted(a, batched_extras) for a in expr.args[1:]]
        return indexexpr.extra(slot, ([indexexpr.loop(0)] if slot in batched_extras else []) + indices)
    if op == "not":
        return indexexpr.logical_not(_shifted(expr.args[0], batched_extras))
    return indexexpr.binary(op, _shifted(expr.args[0], batched_extras), _shifted(expr.args[1], batched_extras))


def _extras(node, batched):
    """The extra inputs as they are (batched ones batched) and the slots that are batched."""
    extras = [b if b is not None else e for e, b in zip(node.inputs[1:], batched[1:])]
    return extras, {slot for slot, b in enumerate(batched[1:]) if b is not None}


def _reindex(node, batched, size):
    exprs, overflow_value, conditions = node.attrs
    extras, batched_extras = _extras(node, batched)
    source = node.inputs[0] if batched[0] is None else batched[0]
    mapped = tuple(_shifted(e, batched_extras) for e in exprs)
    if batched[0] is not None:
        mapped = (indexexpr.loop(0),) + mapped
    return graph.reindex(source, (size,) + node.shape, mapped, overflow_value,
                         tuple(_shifted(c, batched_extras) for c in conditions), tuple(extras))


def _reindex_reduce(node, batched, size):
    op, exprs, conditions = node.attrs
    extras, batched_extras = _extras(node, batched)
    source = _expanded(node.inputs[0], batched[0], size)
    mapped = (indexexpr.loop(0),) + tuple(_shifted(e, batched_extras) for e in exprs)
    return graph.reindex_reduce(op, source, (size,) + node.shape, mapped,
                                tuple(_shifted(c, batched_extras) for c in conditions), tuple(extras))


_PER_IMAGE = ("conv2d", "conv2d_bias")  # library ops whose first input's leading dim is a batch of images


def _library(node, batched, size):
    name, attrs = node.attrs
    if name in _PER_IMAGE and batched[0] is not None and all(b is None for b in batched[1:]):
        # only the images are batched: the vmapped batch joins the op's own batch dim
        images = batched[0]
        joined = graph.reshape(images, (size * images.shape[1],) + images.shape[2:])
        result = graph.library(name, [joined] + list(node.inputs[1:]), attrs, (size * node.shape[0],) + node.shape[1:])
        return graph.reshape(result, (size,) + node.shape)
    expanded = library_ops.decomposition(node)
    substitutions = {id(i): b for i, b in zip(node.inputs, batched) if b is not None}
    return batch_graph([expanded], substitutions, size)[0]


def _custom_grad(node, batched, size):
    # the value only: a custom gradient applies to the function's own inputs, and gradients
    # taken inside the vmapped function have already gone through it
    return _expanded(node.inputs[0], batched[0], size)


_RULES = {"reduce": _reduce, "broadcast_to": _broadcast, "reindex": _reindex,
          "reindex_reduce": _reindex_reduce, "library": _library, "custom_grad": _custom_grad}
