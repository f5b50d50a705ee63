"""Optimisers (``metajit.optim``) with PyTorch's update rules and both calling styles:

    optimizer.step(loss)                                   # Jittor: backward + update
    optimizer.zero_grad(); loss.backward(); optimizer.step()   # PyTorch
    optimizer.step(closure)                                # PyTorch: the closure does the above

This module holds the SGD, Adam and RMSprop families; `metajit.optim_rules` has PyTorch's
other optimisers (Adamax ... LBFGS) and `metajit.optimizer` the base class they share,
all re-exported here.
"""
import math
import sys

from .errors import MetajitValueError
from .math_ops import binary, unary
from .optimizer import (Optimizer, _state_var, _with_weight_decay, apply_weight_decay, clip_grad_norm_,
                        clip_grad_value_, update_average)
from .optim_rules import ASGD, LBFGS, Adadelta, Adamax, NAdam, RAdam, Rprop
from . import lr_scheduler  # ``jt.optim.lr_scheduler``, as in PyTorch
from .lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler, MultiStepLR, StepLR

# ``import metajit.optim.lr_scheduler`` / ``from metajit.optim.lr_scheduler import StepLR``, as torch's
sys.modules[f"{__name__}.lr_scheduler"] = lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam", "Adadelta", "ASGD",
           "Rprop", "LBFGS", "clip_grad_norm_", "clip_grad_value_", "update_average", "lr_scheduler",
           "CosineAnnealingLR", "LambdaLR", "LRScheduler", "MultiStepLR", "StepLR"]


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
        parameter, gradient = apply_weight_decay(parameter, gradient, group, self.decoupled)
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
