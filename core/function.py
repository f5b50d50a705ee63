"""``jt.Function``: operators with a user-written backward, as Jittor's (and PyTorch's
``torch.autograd.Function``).

A subclass defines ``execute(*args)`` (the forward, on Vars and other values) and
``grad(*output_grads)`` (one gradient per ``execute`` argument, None where there is
none). The forward's own graph is not differentiated: gradients reach the inputs only
through ``grad``, which gets the gradient of every output (None for an output nothing
depends on) in one call. Vars kept from ``execute`` (``self.x``) keep their history, so a
``grad`` written with differentiable ops can be differentiated again. Example::

    class Square(jt.Function):
        def execute(self, x):
            self.x = x
            return x * x

        def grad(self, grad_output):
            return grad_output * self.x * 2

    y = Square()(x)        # or Square.apply(x)
"""
from collections.abc import Sequence

from .errors import MetajitValueError
from .flags import thread_flags
from .passes import custom_ops
from .var import Var


class Function:
    """Base class of operators with a custom gradient (see the module docstring)."""

    def execute(self, *args, **kwargs):
        """The forward computation; returns a Var or a sequence of values."""
        raise NotImplementedError(f"{type(self).__name__} must define execute(self, ...)")

    def grad(self, *output_grads):
        """The gradients of the ``execute`` arguments given those of the outputs."""
        raise NotImplementedError(f"{type(self).__name__} must define grad(self, *output_grads)")

    def __call__(self, *args, **kwargs):
        differentiable = [k for k, a in enumerate(args) if isinstance(a, Var) and a.requires_grad]
        if thread_flags.no_grad or not differentiable:
            return self.execute(*args, **kwargs)
        result = self.execute(*args, **kwargs)
        several = isinstance(result, Sequence) and not isinstance(result, (str, Var))
        outputs = list(result) if several else [result]
        positions = [k for k, value in enumerate(outputs) if isinstance(value, Var)]
        # the arguments' shapes, not the Vars: a Var held by the gradient rule counts as live
        # for as long as the graph exists, and a live Var's value is kept at each read
        shapes = [getattr(a, "shape", None) for a in args]
        group = custom_ops.GradientGroup(
            lambda grads: self._input_gradients(grads, len(outputs), positions, shapes, differentiable),
            (type(self), len(outputs), tuple(positions), tuple(differentiable)))
        wrapped = custom_ops.custom_grad_outputs(group, [outputs[k]._node for k in positions],
                                                 [args[k]._node for k in differentiable])
        for k, node in zip(positions, wrapped):
            outputs[k] = Var.from_node(node)
        return (type(result)(outputs) if isinstance(result, tuple) else outputs) if several else outputs[0]

    def _input_gradients(self, grads, count, positions, shapes, differentiable):
        """The user's ``grad`` on the output gradients (by output position), as nodes
        for the differentiable arguments (``shapes``: the ``execute`` arguments' shapes)."""
        output_grads = [None] * count
        for k, node in grads.items():
            output_grads[positions[k]] = Var.from_node(node)
        result = self.grad(*output_grads)
        if not isinstance(result, Sequence) or isinstance(result, Var):
            result = (result,)
        if len(result) != len(shapes):
            raise MetajitValueError(f"{type(self).__name__}.grad returned {len(result)} gradients for "
                                    f"{len(shapes)} execute arguments; return one per argument (None for none)")
        nodes = []
        for k in differentiable:
            value = result[k]
            if value is not None and not isinstance(value, Var):
                value = Var(value)
            if value is not None and value.shape != shapes[k]:
                raise MetajitValueError(f"{type(self).__name__}.grad: the gradient of argument {k} has shape "
                                        f"{value.shape}, but the argument has shape {shapes[k]}")
            nodes.append(None if value is None else value._node)
        return nodes

    @classmethod
    def apply(cls, *args, **kwargs):
        """``cls()(*args)``: PyTorch's spelling."""
        return cls()(*args, **kwargs)
