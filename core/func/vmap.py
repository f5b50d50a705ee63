"""``vmap``: a function of one example applied to a batch, as one lazy graph.

The function runs once, on placeholders of one example's shape (so its own shape logic
sees what it would for one example); `metajit.passes.batching` then rewrites the graph it
built for the whole batch, op by op, and the result fuses like any other graph. Nested
``vmap``, ``grad`` inside ``vmap`` (per-sample gradients) and ``vmap`` of a ``vjp``
(Jacobians) compose, since each is a graph rewrite or a gradient graph.
"""
import functools

from ..errors import MetajitShapeError, MetajitValueError
from ..ir import graph
from ..passes import batching
from ..var import Var
from . import pytree

RANDOMNESS = batching.RANDOMNESS


def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    """``func`` mapped over a batch dim of its inputs, as ``torch.func.vmap``.

    ``in_dims``: the batch dim of each input (an int for all, None for an input used
    whole, or a structure matching the arguments); ``out_dims`` likewise for the outputs.
    Inputs and outputs may be nested tuples, lists and dicts of Vars. ``randomness``:
    random numbers drawn inside ``func`` are an error (``"error"``), the same for every
    example (``"same"``) or drawn per example (``"different"``). ``chunk_size`` is
    accepted for PyTorch compatibility; the whole batch is one graph either way.

    Example::

        per_sample_grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    """
    if randomness not in RANDOMNESS:
        raise MetajitValueError(f"vmap: randomness must be one of {RANDOMNESS}, got {randomness!r}")

    @functools.wraps(func)
    def batched(*args, **kwargs):
        leaves, spec = pytree.flatten(args)
        dims = pytree.broadcast_prefix(in_dims, args, "vmap in_dims")
        size = _batch_size(leaves, dims)
        substitutions, inner = {}, []
        for leaf, dim in zip(leaves, dims):
            if dim is None or not isinstance(leaf, Var):
                inner.append(leaf)
                continue
            front = _moved_axis(leaf._node, dim % leaf.ndim, 0)
            stand_in = batching.placeholder(front.shape[1:], front.dtype)
            substitutions[id(stand_in)] = front
            inner.append(Var.from_node(stand_in))
        context = batching.BatchContext(size, randomness, substitutions)
        with context:
            result = func(*pytree.unflatten(spec, inner), **kwargs)
        outputs, out_spec = pytree.flatten(result)
        return pytree.unflatten(out_spec, _batched_outputs(outputs, context, pytree.broadcast_prefix(
            out_dims, result, "vmap out_dims")))
    return batched


def _batch_size(leaves, dims):
    sizes = set()
    for leaf, dim in zip(leaves, dims):
        if dim is None:
            continue
        if not isinstance(leaf, Var):
            raise MetajitValueError(f"vmap: in_dims gives dim {dim} for a {type(leaf).__name__}, which has no "
                                    "dims; use None for it")
        if not -leaf.ndim <= dim < leaf.ndim:
            raise MetajitShapeError(f"vmap: in_dim {dim} is out of range for an input of shape {leaf.shape}")
        sizes.add(leaf.shape[dim])
    if len(sizes) != 1:
        raise MetajitShapeError("vmap: " + ("no input is batched (every in_dim is None)" if not sizes else
                                            f"the batched inputs have different sizes {sorted(sizes)}"))
    return sizes.pop()


def _batched_outputs(outputs, context, dims):
    nodes = [o._node for o in outputs if isinstance(o, Var)]
    batched = iter(batching.batch_graph(nodes, context.substitutions, context.size))
    results = []
    for output, dim in zip(outputs, dims):
        if not isinstance(output, Var):
            results.append(output)
            continue
        node = next(batched)
        if dim is None:
            if node is not None:
                raise MetajitValueError("vmap: out_dims None is only allowed for outputs that do not depend on "
                                        "the batched inputs")
            results.append(output)
            continue
        if node is None:
            node = graph.broadcast_to(output._node, (context.size,) + output.shape)
        if not -len(node.shape) <= dim < len(node.shape):
            raise MetajitShapeError(f"vmap: out_dim {dim} is out of range for an output of {len(node.shape)} dims")
        results.append(Var.from_node(_moved_axis(node, 0, dim % len(node.shape))))
    return results


def _moved_axis(node, source, destination):
    """``node`` with its axis ``source`` moved to ``destination``."""
    if source == destination:
        return node
    order = [a for a in range(len(node.shape)) if a != source]
    order.insert(destination, source)
    return graph.permute(node, order)
