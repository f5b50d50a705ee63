"""``jt.autograd``: PyTorch's ``torch.autograd`` spellings over metajit's gradients
(`metajit.gradients`, `metajit.function`): `grad`, `backward`, `Function` (static
``forward(ctx, ...)`` / ``backward(ctx, ...)``), and the gradient modes.

Example::

    (dx,) = jt.autograd.grad((x * x).sum(), x)
    jt.autograd.backward([loss_a, loss_b])

    class Exp(jt.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, grad_output):
            (y,) = ctx.saved_tensors
            return grad_output * y

    y = Exp.apply(x)
"""
from . import creation, function, gradients
from .creation import zeros
from .errors import MetajitValueError
from .flags import enable_grad, inference_mode, no_grad, set_grad_enabled
from .passes import autodiff
from .var import Var

__all__ = ["Function", "backward", "enable_grad", "grad", "inference_mode", "no_grad", "set_grad_enabled"]


def _as_list(values):
    return [values] if isinstance(values, Var) or values is None else list(values)


def _weighted_total(outputs, grad_outputs, name):
    """``sum_i (outputs[i] * grad_outputs[i]).sum()``: one scalar whose gradient is the sum of
    the outputs' vector-Jacobian products (an output without a gradient has one element)."""
    outputs = _as_list(outputs)
    weights = _as_list(grad_outputs) if grad_outputs is not None else [None] * len(outputs)
    if len(weights) != len(outputs):
        raise MetajitValueError(f"{name}: {len(weights)} gradients for {len(outputs)} outputs; give one per output")
    total = None
    for output, weight in zip(outputs, weights):
        if weight is None and output.numel() != 1:
            raise MetajitValueError(f"{name}: an output of shape {tuple(output.shape)} needs its gradient (a Var "
                                    f"of that shape in grad_outputs), as PyTorch requires for non-scalar outputs")
        term = (output if weight is None else output * weight).sum()
        total = term if total is None else total + term
    return total


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """PyTorch's ``torch.autograd.grad``: the tuple of the gradients of ``outputs`` (a Var or
    a sequence, weighted by ``grad_outputs`` where not one-element) with respect to each of
    ``inputs``. Without ``create_graph`` they carry no history. An input the outputs do not
    depend on raises unless ``allow_unused`` (then None, or zeros with
    ``materialize_grads``). ``retain_graph`` and ``only_inputs`` are accepted (the graph
    lives while Vars refer to it). Jittor's spelling is `metajit.grad`.

    Example: ``(dx,) = jt.autograd.grad(y, x, torch_style_weights)``."""
    if is_grads_batched:
        raise MetajitValueError("autograd.grad: is_grads_batched is not supported; use jt.func.vmap over "
                                "jt.autograd.grad instead")
    targets = _as_list(inputs)
    if not all(isinstance(target, Var) for target in targets):
        raise MetajitValueError(f"autograd.grad: inputs must be Vars, got {[type(t).__name__ for t in targets]}")
    loss = _weighted_total(outputs, grad_outputs, "autograd.grad")
    reached = {id(node) for node in autodiff.graph_order(loss._node)}
    unused = [k for k, target in enumerate(targets) if id(target._node) not in reached]
    if unused and not (allow_unused or materialize_grads):
        raise MetajitValueError(f"autograd.grad: the outputs do not depend on input {unused[0]}; pass "
                                f"allow_unused=True for None there (or materialize_grads=True for zeros)")
    values = gradients.grad(loss, targets)
    results = []
    for k, (target, value) in enumerate(zip(targets, values)):
        if k in unused:
            value = zeros(target.shape, dtype=target.dtype) if materialize_grads else None
        elif not create_graph:
            value = value.detach()
        results.append(value)
    return tuple(results)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """PyTorch's ``torch.autograd.backward``: add the gradients of ``tensors`` (a Var or a
    sequence, weighted by ``grad_tensors`` where not one-element) to ``.grad`` of the tracked
    leaves they depend on (`Var.backward`), or only of ``inputs`` when given.

    Example: ``jt.autograd.backward([loss_a, loss_b])``."""
    total = _weighted_total(tensors, grad_tensors, "autograd.backward")
    if inputs is None:
        gradients.backward(total, create_graph=create_graph)
    else:
        gradients.accumulate_grads(total, _as_list(inputs), create_graph)


def Variable(data, requires_grad=False, volatile=False):
    """PyTorch's legacy ``torch.autograd.Variable`` (a plain tensor since PyTorch 0.4):
    ``data`` itself as a Var (a copy of other data), a tracked leaf if ``requires_grad``;
    ``volatile`` is accepted and ignored, as PyTorch does."""
    var = data if isinstance(data, Var) else creation.array(data)
    return var.requires_grad_() if requires_grad else var


class Function(function.Function):
    """PyTorch's ``torch.autograd.Function``: a subclass defines the static methods
    ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)`` (one gradient per
    ``forward`` argument, None where there is none), or ``forward(*args)`` with
    ``setup_context(ctx, inputs, output)``, and is called as ``MyFunction.apply(*args)``
    (see the module docstring). ``ctx`` has ``save_for_backward`` / ``saved_tensors``,
    ``needs_input_grad``, ``set_materialize_grads`` (output gradients nothing depends on
    are zeros by default, as PyTorch's) and accepts ``mark_dirty`` and
    ``mark_non_differentiable``. It is a `metajit.Function`, whose ``execute`` / ``grad``
    run ``forward`` / ``backward``."""

    saved_tensors = ()
    materialize_grads = True

    @staticmethod
    def forward(ctx, *args, **kwargs):
        """The computation (``ctx`` first unless the class defines ``setup_context``)."""
        raise NotImplementedError("a jt.autograd.Function subclass must define forward")

    @staticmethod
    def backward(ctx, *grad_outputs):
        """The gradients of ``forward``'s arguments given those of its outputs."""
        raise NotImplementedError("a jt.autograd.Function subclass must define backward")

    @staticmethod
    def setup_context(ctx, inputs, output):
        """What ``ctx`` keeps, for a ``forward`` defined without ``ctx``."""

    def execute(self, *args, **kwargs):
        self.needs_input_grad = tuple(isinstance(a, Var) and a.requires_grad for a in args)
        cls = type(self)
        if cls.setup_context is Function.setup_context:
            output = cls.forward(self, *args, **kwargs)
        else:
            output = cls.forward(*args, **kwargs)
            cls.setup_context(self, args, output)
        self._outputs = _as_list(output)
        return output

    def grad(self, *output_grads):
        if self.materialize_grads:
            output_grads = [zeros(output.shape, dtype=output.dtype) if gradient is None and isinstance(output, Var)
                            else gradient for output, gradient in zip(self._outputs, output_grads)]
        return type(self).backward(self, *output_grads)

    def save_for_backward(self, *tensors):
        """Keep ``tensors`` for ``backward`` (``ctx.saved_tensors``)."""
        self.saved_tensors = tensors

    def set_materialize_grads(self, value):
        """Whether output gradients nothing depends on reach ``backward`` as zeros (True,
        the default) or None."""
        self.materialize_grads = bool(value)

    def mark_dirty(self, *tensors):
        """Accepted: metajit's in-place changes rebind a Var, so nothing needs marking."""

    def mark_non_differentiable(self, *outputs):
        """Accepted: outputs of integer dtype take no gradient anyway."""
