"""Optimisers (``metajit.optim``) with PyTorch's update rules and both calling styles:

    optimizer.step(loss)                                   # Jittor: backward + update
    optimizer.zero_grad(); loss.backward(); optimizer.step()   # PyTorch

Updates are built lazily under ``no_grad`` and every parameter and state Var of one
step is realised together, so a step is one fused batch of kernels. Hyperparameters
enter kernels as parameters, so changing the learning rate never recompiles.
"""
import math

import numpy as np

from . import distributed
from .passes import executor
from .gradients import accumulate_grads
from .errors import MetajitValueError
from .flags import no_grad
from .math_ops import binary, unary
from .var import Var, take_pending_assignments
from . import lr_scheduler  # noqa: F401  (``jt.optim.lr_scheduler``, as in PyTorch)
from .lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, MultiStepLR, StepLR  # noqa: F401


class Optimizer:
    """Base class: parameter groups (dicts with ``params`` and hyperparameters), per-parameter
    ``state``, ``zero_grad``, ``step``, ``state_dict`` / ``load_state_dict``. Every
    optimiser takes PyTorch's ``maximize`` (ascend the gradient) and its implementation
    choices ``foreach``, ``fused``, ``differentiable``, ``capturable``."""

    # PyTorch's implementation choices (one fused step here whatever they say)
    IMPLEMENTATION_OPTIONS = ("foreach", "fused", "differentiable", "capturable")

    def __init__(self, params, defaults, **options):
        unknown = set(options) - {"maximize", *self.IMPLEMENTATION_OPTIONS}
        if unknown:
            raise MetajitValueError(f"{type(self).__name__} got unexpected arguments {sorted(unknown)}")
        self.defaults = dict(defaults, maximize=bool(options.get("maximize", False)))
        self.clears_after_step = False  # gradients came from `backward` (Jittor): `step` clears them
        self.param_groups = []
        self.state = {}
        params = list(params)
        if not params:
            raise MetajitValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self.add_param_group(group)
        # under mpirun: data parallel (every rank starts from rank 0's parameters, and
        # gradients are averaged over the ranks before each update)
        self.gradient_averager = distributed.GradientAverager()
        distributed.broadcast_parameters(self.params)

    def add_param_group(self, group):
        """Add a dict with ``params`` and optional hyperparameter overrides."""
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Var) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in group["params"]}) != len(group["params"]) or seen & {id(p) for p in group["params"]}:
            raise MetajitValueError("some parameters appear in more than one parameter group (or twice in one)")
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self.param_groups.append(group)

    @property
    def params(self):
        """Every parameter of every group."""
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none=True):
        """Clear ``.grad`` of every parameter (gradients are never accumulated in place, so
        ``set_to_none=False`` clears them too)."""
        for parameter in self.params:
            parameter.grad = None

    def backward(self, loss):
        """Jittor: add the gradients of ``loss`` for these parameters to ``.grad`` (called
        twice, it accumulates); the next `step` uses them and then clears them, as Jittor's."""
        self._add_gradients(loss)
        self.clears_after_step = True

    def _add_gradients(self, loss):
        accumulate_grads(loss, [p for p in self.params if p.requires_grad])
        self.gradient_averager.average(self.params, skip_marked=True)

    def clip_grad_norm(self, max_norm, norm_type=2):
        """Scale the gradients so their global ``norm_type`` norm is at most ``max_norm``."""
        return clip_grad_norm_(self.params, max_norm, norm_type)

    def step(self, loss=None):
        """Update the parameters from ``.grad`` (or first from ``loss``, Jittor's style:
        the gradients of that loss alone, left in ``.grad`` after the step). Gradients that
        `backward` added (Jittor's ``backward(loss); step()``) are cleared after the update,
        as Jittor's; those of ``loss.backward()`` stay, as PyTorch's."""
        if loss is not None:
            self.zero_grad()
            self._add_gradients(loss)
        clears, self.clears_after_step = self.clears_after_step, False
        self.gradient_averager.average(self.params, skip_marked=True)
        changed, replaced = [], []
        with no_grad():
            for group in self.param_groups:
                for parameter in group["params"]:
                    if parameter.grad is None or not parameter.requires_grad:
                        continue
                    state = self.state.setdefault(id(parameter), {})
                    state["step"] = int(state.get("step", 0)) + 1  # (a torch checkpoint's is a tensor)
                    holders = [parameter] + [v for v in state.values() if isinstance(v, Var)]
                    replaced += [v._node for v in holders]
                    gradient = unary("neg", parameter.grad) if group.get("maximize") else parameter.grad
                    parameter.assign(self.update(parameter, gradient, group, state))
                    # .grad is realised with the step (as PyTorch leaves it): a lazy one
                    # would keep the step's whole graph, old parameters included, alive
                    changed += [parameter] if clears else [parameter, parameter.grad]
                    changed.extend(v for v in state.values() if isinstance(v, Var))
        changed.extend(take_pending_assignments())
        if isinstance(loss, Var):  # computed with the gradients: a later loss.item() is free
            changed.append(loss)
        # the old parameters and state are given to the step: their memory may hold the new
        # values (when nothing else still reads them), as PyTorch's in-place update
        # in backward order (the last parameters' updates first, as DDP buckets them): the
        # realisation then takes each layer's weight gradient as soon as its output gradient
        # exists, instead of holding every layer's output gradient until the first layer's turn
        targets = [v._node for v in reversed(changed)]
        del changed
        if clears:
            self.zero_grad()
        executor.realise(targets, donated=_replaced_values(replaced))

    def update(self, parameter, gradient, group, state):
        """The new value of ``parameter`` (lazy); subclasses implement their rule."""
        raise NotImplementedError

    def state_dict(self):
        """``{"state": {index: {name: numpy or number}}, "param_groups": [...]}`` (PyTorch layout)."""
        index = {id(p): k for k, p in enumerate(self.params)}
        state = {index[key]: {name: (value.numpy() if isinstance(value, Var) else value)
                              for name, value in entry.items()}
                 for key, entry in self.state.items() if key in index}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by `state_dict`."""
        params = self.params
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)):
            raise MetajitValueError("optimizer state_dict does not match this optimizer's parameter groups")
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {}
        for position, entry in state_dict["state"].items():
            self.state[id(params[int(position)])] = {
                name: (Var(value) if isinstance(value, np.ndarray) else value) for name, value in entry.items()}


def _state_var(state, name, like, fill=0.0):
    if name not in state:
        from .creation import full
        state[name] = full(like.shape, fill, like.dtype).stop_grad()
    return state[name]


def _with_weight_decay(gradient, parameter, decay):
    """L2 weight decay folded into the gradient: ``g + decay * p``."""
    return binary("add", gradient, binary("mul", parameter, decay)) if decay else gradient


def _replaced_values(nodes):
    """The computed ones of the nodes a step replaced, moved into a new list only the
    executor refers to (`metajit.passes.donation` counts the references)."""
    donated = [node for node in nodes if node.buffer is not None]
    nodes.clear()
    return donated


def update_average(average, value, decay):
    """``average = decay * average + (1 - decay) * value`` in place, without gradient history
    (optimiser state, BatchNorm running statistics); returns ``average``."""
    return average.assign(binary("add", binary("mul", average, decay), binary("mul", value, 1.0 - decay)))


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, **options):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise MetajitValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov), **options)

    def update(self, parameter, gradient, group, state):
        gradient = _with_weight_decay(gradient, parameter, group["weight_decay"])
        momentum = group["momentum"]
        if momentum:
            first_step = "momentum_buffer" not in state
            buffer = _state_var(state, "momentum_buffer", gradient)
            damped = gradient if not group["dampening"] else binary("mul", gradient, 1.0 - group["dampening"])
            buffer.assign(gradient if first_step else binary("add", binary("mul", buffer, momentum), damped))
            gradient = binary("add", gradient, binary("mul", buffer, momentum)) if group["nesterov"] else buffer
        return binary("sub", parameter, binary("mul", gradient, group["lr"]))


class Adam(Optimizer):
    """Adam (optionally AMSGrad) with L2 weight decay added to the gradient, as PyTorch."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, **options):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad), **options)

    def update(self, parameter, gradient, group, state):
        beta1, beta2 = group["betas"]
        decay = group["weight_decay"]
        if self.decoupled:
            if decay:
                parameter = binary("mul", parameter, 1.0 - group["lr"] * decay)
        else:
            gradient = _with_weight_decay(gradient, parameter, decay)
        first = update_average(_state_var(state, "exp_avg", gradient), gradient, beta1)
        second = update_average(_state_var(state, "exp_avg_sq", gradient),
                                 binary("mul", gradient, gradient), beta2)
        step = state["step"]
        correction1, correction2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
        denominator_source = second
        if group["amsgrad"]:
            peak = _state_var(state, "max_exp_avg_sq", gradient)
            peak.assign(binary("maximum", peak, second))
            denominator_source = peak
        denominator = binary("add", binary("div", unary("sqrt", denominator_source), math.sqrt(correction2)),
                             group["eps"])
        return binary("sub", parameter, binary("mul", binary("div", first, denominator),
                                               group["lr"] / correction1))


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01, as PyTorch)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False, **options):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, **options)


class RMSprop(Optimizer):
    """RMSprop with optional momentum and centering, as PyTorch."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, **options):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered), **options)

    def update(self, parameter, gradient, group, state):
        alpha = group["alpha"]
        gradient = _with_weight_decay(gradient, parameter, group["weight_decay"])
        square = update_average(_state_var(state, "square_avg", gradient),
                                 binary("mul", gradient, gradient), alpha)
        average = square
        if group["centered"]:
            mean = update_average(_state_var(state, "grad_avg", gradient), gradient, alpha)
            average = binary("sub", square, binary("mul", mean, mean))
        denominator = binary("add", unary("sqrt", average), group["eps"])
        step = binary("div", gradient, denominator)
        if group["momentum"]:
            buffer = _state_var(state, "momentum_buffer", gradient)
            buffer.assign(binary("add", binary("mul", buffer, group["momentum"]), step))
            step = buffer
        return binary("sub", parameter, binary("mul", step, group["lr"]))


class Adagrad(Optimizer):
    """Adagrad with learning-rate decay and an initial accumulator, as PyTorch."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
                 eps=1e-10, **options):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps), **options)

    def update(self, parameter, gradient, group, state):
        gradient = _with_weight_decay(gradient, parameter, group["weight_decay"])
        total = _state_var(state, "sum", gradient, group["initial_accumulator_value"])
        total.assign(binary("add", total, binary("mul", gradient, gradient)))
        rate = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        return binary("sub", parameter, binary("mul", binary(
            "div", gradient, binary("add", unary("sqrt", total), group["eps"])), rate))


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale ``.grad`` of ``parameters`` (a Var, or any iterable of them: a generator, a
    ``filter``) in place so their global norm is at most ``max_norm``; returns the norm
    before clipping (a lazy Var; 0 without gradients). ``error_if_nonfinite`` raises
    `MetajitValueError` for a NaN or infinite norm (reading it); ``foreach`` is PyTorch's
    kernel choice (one fused step here either way)."""
    from .creation import zeros
    from .reductions import norm
    parameters = [parameters] if isinstance(parameters, Var) else list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return zeros(())
    norms = [norm(g, norm_type) for g in grads]
    if norm_type == float("inf"):
        total = norms[0]
        for value in norms[1:]:
            total = binary("maximum", total, value)
    else:
        total = None
        for value in norms:
            term = binary("pow", value, float(norm_type))
            total = term if total is None else binary("add", total, term)
        total = binary("pow", total, 1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total.item()):
        raise MetajitValueError(f"clip_grad_norm_: the total norm of the gradients is {total.item()} "
                                f"(error_if_nonfinite=True)")
    scale = binary("minimum", binary("div", max_norm, binary("add", total, 1e-6)), 1.0)
    for parameter in parameters:
        if parameter.grad is not None:
            parameter.grad = binary("mul", parameter.grad, scale)
    return total


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp ``.grad`` of ``parameters`` (a Var or an iterable) to ``[-clip_value, clip_value]``."""
    from .math_ops import clamp
    for parameter in [parameters] if isinstance(parameters, Var) else list(parameters):
        if parameter.grad is not None:
            parameter.grad = clamp(parameter.grad, -clip_value, clip_value)
