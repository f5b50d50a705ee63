"""Library ops as the front end defines and records them: Var-level meanings and
gradients registered with the node-level `metajit.library_ops`, and Vars for library
nodes on devices that claim them.

Example (what `metajit.nn.conv` does)::

    register("conv2d", conv2d_composed, conv2d_gradients)
    if claimed("conv2d", x.dtype):
        y = apply("conv2d", [x, weight], geometry, output_shape)
"""
from ..ir import graph
from ..passes import library_ops
from ..passes.library_ops import claimed
from ..var import Var


def register(name, decompose, gradients=None):
    """Define library op ``name`` by ``decompose(input Vars, attrs) -> Var`` (its meaning)
    and optionally ``gradients(node, grad Var) -> [Var or None per input]`` (returning
    None falls back to differentiating the meaning)."""
    def node_decompose(inputs, attrs):
        return decompose([Var.from_node(i) for i in inputs], attrs)._node

    def node_gradients(node, grad):
        values = gradients(node, Var.from_node(grad))
        return None if values is None else [None if v is None else v._node for v in values]
    library_ops.register(name, node_decompose, node_gradients if gradients is not None else None)


def apply(name, inputs, attrs, shape):
    """A Var for library op ``name`` on ``inputs`` (output dtype: the first input's): Vars,
    or graph nodes where a rewrite reuses a pending node's inputs (no Var made for them)."""
    return Var.from_node(graph.library(name, [v._node if isinstance(v, Var) else v for v in inputs], attrs, shape))


def pending_for_inference(x, names):
    """The unrealised library node behind Var ``x`` when it is one of the ops ``names`` and
    no gradients are tracked (a rewrite may then replace the call by a fused one), else None."""
    node = x._node if isinstance(x, Var) else None
    if node is None or graph.grad_mode() or node.op != "library" or node.attrs[0] not in names \
            or node.is_realised:
        return None
    return node


__all__ = ["apply", "claimed", "pending_for_inference", "register"]
