"""The optimiser base class (``metajit.optimizer``): parameter groups, per-parameter
state, PyTorch's and Jittor's calling styles (`Optimizer.step` with a loss, a closure or
neither), state dicts, and the pieces every update rule shares (state Vars, weight decay,
running averages), plus gradient clipping. The rules live in `metajit.optim` (SGD, Adam,
RMSprop, Adagrad) and `metajit.optim_rules` (Adamax ... LBFGS).

Updates are built lazily under ``no_grad`` and every parameter and state Var of one
step is realised together, so a step is one fused batch of kernels. Hyperparameters
enter kernels as parameters, so changing the learning rate never recompiles.
"""
import math

import numpy as np

from . import distributed, gradients
from .passes import executor
from .gradients import accumulate_grads, track_grad
from .creation import as_numpy, is_torch_tensor
from .errors import MetajitValueError
from .flags import enable_grad, no_grad
from .math_ops import binary, unary
from .var import Var, take_pending_assignments


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
        self.state = ParameterState(self.param_groups)
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
        for parameter in group["params"]:
            if parameter.requires_grad:  # ``loss.backward()`` fills its ``.grad`` (a plain ``jt.randn``)
                track_grad(parameter)
        self.param_groups.append(group)

    @property
    def params(self):
        """Every parameter of every group."""
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none=True):
        """Clear ``.grad`` of every parameter: None, or zeros with ``set_to_none=False``
        (see `metajit.gradients.zero_grads`)."""
        gradients.zero_grads(self.params, set_to_none)

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
        as Jittor's; those of ``loss.backward()`` stay, as PyTorch's.

        ``loss`` may also be PyTorch's closure: a function that clears the gradients,
        computes the loss, calls ``loss.backward()`` and returns the loss. It is called with
        gradients enabled, the update uses the gradients it left, and `step` returns its loss
        (computed with the step). Example::

            def closure():
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                return loss
            loss = optimizer.step(closure)
        """
        closure_loss = None
        if is_closure(loss):
            loss = closure_loss = evaluate_closure(loss)
        elif loss is not None:
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
                    state = self.state[parameter]
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
        return closure_loss

    def update(self, parameter, gradient, group, state):
        """The new value of ``parameter`` (lazy); subclasses implement their rule."""
        raise NotImplementedError

    def state_dict(self):
        """PyTorch's layout: ``{"state": {index: {name: value}}, "param_groups": [{...,
        "params": [index, ...]}]}``, the parameters numbered in group order, state Vars as
        numpy arrays. ``jt.save`` to a ``.pth`` makes them tensors: ``torch.load`` of that file
        loads into a ``torch.optim`` optimiser of the same kind."""
        index = {id(p): k for k, p in enumerate(self.params)}
        state = {index[id(parameter)]: {name: _saved(value) for name, value in entry.items()}
                 for parameter, entry in self.state.items() if id(parameter) in index}
        groups = [{**{k: v for k, v in g.items() if k != "params"},
                   "params": [index[id(p)] for p in g["params"]]} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state from `state_dict`'s layout, written by metajit or
        by ``torch.optim`` (torch tensors, as ``torch.load`` returns them, are taken too).
        Floating-point state takes its parameter's dtype, as PyTorch's. Example::

            optimizer.load_state_dict(torch.load("ckpt.pth", map_location="cpu")["optimizer"])
        """
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            keys = sorted(map(str, state_dict))[:5] if isinstance(state_dict, dict) else type(state_dict).__name__
            raise MetajitValueError(f"optimizer.load_state_dict takes what optimizer.state_dict() returns, a dict "
                                    f"with 'state' and 'param_groups'; got {keys} (a model's state_dict goes to "
                                    "model.load_state_dict)")
        params = self.params
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)):
            raise MetajitValueError(
                f"optimizer state_dict has parameter groups of {[len(g['params']) for g in groups]} parameters, "
                f"this optimizer {[len(g['params']) for g in self.param_groups]}; make the optimizer on the same "
                "parameter groups as the one saved")
        for group, saved in zip(self.param_groups, groups):
            group.update({k: v for k, v in saved.items() if k != "params"})
        self.state = ParameterState(self.param_groups)
        for position, entry in state_dict["state"].items():
            if not 0 <= int(position) < len(params):
                raise MetajitValueError(f"optimizer state_dict has state for parameter {position}, but the "
                                        f"optimizer has {len(params)} parameters")
            parameter = params[int(position)]
            self.state[parameter] = {name: _restored(value, parameter, name) for name, value in entry.items()}


class ParameterState(dict):
    """``optimizer.state``: each parameter's state (a dict), keyed by the parameter Var as
    PyTorch's; reading a parameter without state adds an empty dict, as PyTorch's
    ``defaultdict(dict)``. ``id(parameter)``, metajit's earlier key, finds the same entry.
    Example: ``optimizer.state[model.weight]["exp_avg"]``."""

    def __init__(self, param_groups):
        super().__init__()
        self.param_groups = param_groups  # the optimizer's own list: groups added later are found

    def _key(self, key):
        if isinstance(key, int) and not isinstance(key, bool):
            for group in self.param_groups:
                for parameter in group["params"]:
                    if id(parameter) == key:
                        return parameter
        return key

    def __missing__(self, key):
        if not isinstance(key, Var):
            raise KeyError(key)
        self[key] = entry = {}
        return entry

    def __getitem__(self, key):
        return super().__getitem__(self._key(key))

    def __setitem__(self, key, value):
        super().__setitem__(self._key(key), value)

    def __delitem__(self, key):
        super().__delitem__(self._key(key))

    def __contains__(self, key):
        return super().__contains__(self._key(key))

    def get(self, key, default=None):
        return super().get(self._key(key), default)

    def setdefault(self, key, default=None):
        return super().setdefault(self._key(key), default)

    def pop(self, key, *default):
        return super().pop(self._key(key), *default)


def is_closure(value):
    """Whether ``value`` given to ``step`` is PyTorch's closure (a function, not a loss Var)."""
    return callable(value) and not isinstance(value, Var)


def evaluate_closure(closure):
    """``closure()`` with gradients enabled (``step`` runs under `no_grad` otherwise)."""
    with enable_grad():
        return closure()


def _saved(value):
    """A state value as `Optimizer.state_dict` stores it: Vars as numpy, also inside lists."""
    if isinstance(value, Var):
        return value.numpy()
    return [_saved(v) for v in value] if isinstance(value, list) else value


def _restored(value, parameter, name):
    """A saved state value as `Optimizer.step` uses it: ``step`` a Python int (torch's is a
    float tensor), arrays and torch tensors Vars (floating ones in ``parameter``'s dtype),
    also inside lists (LBFGS's history)."""
    if isinstance(value, list):
        return [_restored(v, parameter, name) for v in value]
    if isinstance(value, Var) or is_torch_tensor(value):
        value = as_numpy(value)
    if name == "step":
        return int(value)
    if not isinstance(value, np.ndarray):
        return value
    if value.dtype.kind == "f" and parameter.is_floating_point():
        value = value.astype(parameter.dtype.numpy, copy=False)
    return Var(value).stop_grad()


def _state_var(state, name, like, fill=0.0):
    if name not in state:
        from .creation import full
        state[name] = full(like.shape, fill, like.dtype).stop_grad()
    return state[name]


def _with_weight_decay(gradient, parameter, decay):
    """L2 weight decay folded into the gradient: ``g + decay * p``."""
    return binary("add", gradient, binary("mul", parameter, decay)) if decay else gradient


def apply_weight_decay(parameter, gradient, group, decoupled):
    """``(parameter, gradient)`` with ``group["weight_decay"]`` applied: decoupled (AdamW:
    the parameter scaled by ``1 - lr * decay``) or as L2 folded into the gradient."""
    decay = group["weight_decay"]
    if not decoupled:
        return parameter, _with_weight_decay(gradient, parameter, decay)
    return (binary("mul", parameter, 1.0 - group["lr"] * decay) if decay else parameter), gradient


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
