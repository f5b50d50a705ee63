"""Module backward hooks (PyTorch's ``register_full_backward_hook`` and
``register_full_backward_pre_hook``), built on `metajit.Function`.

A module with backward hooks runs its forward between two identity functions, as
PyTorch's ``BackwardHookFunction``: one over its positional Var inputs and one over its
outputs. In the backward pass the outputs' function sees every output gradient at once
(``grad_output``; pre-hooks may replace it), and the inputs' function sees the gradients
of the inputs that come from this module alone (``grad_input``; hooks may replace them).
"""
from ..creation import zeros
from ..errors import MetajitValueError
from ..ir import dtypes
from ..function import Function
from ..gradients import takes_gradient
from ..var import Var


class _Identity(Function):
    """Passes its Vars through; its ``grad`` hands the output gradients to ``on_gradients``,
    which returns the gradients to pass on."""

    def __init__(self, on_gradients):
        self.on_gradients = on_gradients

    def execute(self, *values):
        return values

    def grad(self, *gradients):
        return tuple(self.on_gradients(gradients))


def _replaced(module, kind, hook, old, new):
    """``new`` (a hook's result) checked against the gradients ``old`` it replaces."""
    if new is None:
        return old
    new = tuple(new) if isinstance(new, (tuple, list)) else (new,)
    if len(new) != len(old):
        raise MetajitValueError(f"the {kind} hook {getattr(hook, '__name__', hook)!r} of {type(module).__name__} "
                                f"returned {len(new)} gradients for {len(old)}: return one per Var (None for none)")
    return new


def call_with_backward_hooks(module, pre_hooks, hooks, args, run):
    """``run(*args)`` (the module's forward) with ``pre_hooks`` (``hook(module,
    grad_output)``) and ``hooks`` (``hook(module, grad_input, grad_output)``) called in the
    backward pass; returns the forward's output."""
    positions = [k for k, a in enumerate(args) if isinstance(a, Var) and takes_gradient(a)]
    received = {}  # the output gradients, once the backward pass has reached them

    def call_hooks(grad_input):
        grad_output = received.pop("grad_output", ())
        for hook in hooks:
            grad_input = _replaced(module, "backward", hook, grad_input, hook(module, grad_input, grad_output))
        return grad_input

    if hooks and positions:
        def on_input_gradients(gradients):
            # as PyTorch's: zeros for a Var input that takes no gradient (or got none), None for others
            grad_input = [zeros(a.shape, dtype=a.dtype if dtypes.is_float(a.dtype) else dtypes.DEFAULT_FLOAT)
                          if isinstance(a, Var) else None for a in args]
            for k, gradient in zip(positions, gradients):
                if gradient is not None:
                    grad_input[k] = gradient
            grad_input = call_hooks(tuple(grad_input))
            return [grad_input[k] for k in positions]
        wrapped = _Identity(on_input_gradients)(*(args[k] for k in positions))
        args = list(args)
        for k, value in zip(positions, wrapped):
            args[k] = value
    output = run(*args)
    several = isinstance(output, (tuple, list))
    outputs = list(output) if several else [output]
    slots = [k for k, value in enumerate(outputs) if isinstance(value, Var) and value.requires_grad]
    if not slots:
        return output

    def on_output_gradients(gradients):
        for hook in pre_hooks:
            gradients = _replaced(module, "backward pre", hook, gradients, hook(module, gradients))
        received["grad_output"] = tuple(gradients)
        if hooks and not positions:  # no input takes a gradient: the hooks run here, as PyTorch's
            call_hooks(tuple([None] * len(args)))
        return gradients
    wrapped = _Identity(on_output_gradients)(*(outputs[k] for k in slots))
    for k, value in zip(slots, wrapped):
        outputs[k] = value
    return type(output)(outputs) if several else outputs[0]
