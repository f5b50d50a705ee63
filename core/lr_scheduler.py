"""Learning-rate schedulers (``jt.lr_scheduler``, also ``jt.optim.lr_scheduler``), as in
PyTorch and Jittor: call ``step()`` once per epoch (`ReduceLROnPlateau`: ``step(metric)``)::

    scheduler = jt.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    for epoch in range(epochs):
        train(...)
        scheduler.step()

A scheduler changes ``lr`` in the optimiser's ``param_groups`` only. Its attributes are
PyTorch's, so ``state_dict()`` / ``load_state_dict()`` go both ways between metajit and
``torch.optim.lr_scheduler`` (through ``jt.save`` / ``torch.load`` and back).
"""
import bisect
import collections
import math
import types

from .errors import MetajitTypeError, MetajitValueError

# what PyTorch's schedulers record as they run: a state saved without them still loads
_BOOKKEEPING = frozenset({"_step_count", "_last_lr", "_is_initial", "_get_lr_called_within_step"})


def _per_group(name, optimizer, value):
    """``value`` for each parameter group: a list or tuple as it is (one per group), else repeated."""
    groups = len(optimizer.param_groups)
    if not isinstance(value, (list, tuple)):
        return [value] * groups
    if len(value) != groups:
        raise MetajitValueError(f"{name} has {len(value)} values but the optimizer has {groups} param_groups: "
                                f"give one value per group, or a single number for all")
    return list(value)


def _uses_beta1(optimizer, name):
    """Whether ``cycle_momentum`` cycles Adam's first beta (``betas[0]``) rather than SGD's ``momentum``."""
    if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
        raise MetajitValueError(f"{name}: cycle_momentum needs an optimizer with momentum or betas; "
                                "pass cycle_momentum=False for this one")
    return "betas" in optimizer.defaults


def _set_momentum(group, value, use_beta1):
    if use_beta1:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value


def _group_lrs(optimizer):
    """Each group's learning rate now (what ``get_last_lr()`` returns after a step)."""
    return [group["lr"] for group in optimizer.param_groups]


def _function_state(function):
    """How PyTorch saves a scheduler's function: None for a plain function or lambda, the
    attributes of a callable object."""
    if isinstance(function, types.FunctionType):
        return None
    attributes = getattr(function, "__dict__", None)
    return None if attributes is None else dict(attributes)


def _restore_functions(owner, functions, saved):
    """Give each callable object in ``functions`` the attributes `_function_state` saved."""
    if len(saved) != len(functions):
        raise MetajitValueError(f"{owner}.load_state_dict: the state has {len(saved)} functions, this scheduler "
                                f"{len(functions)} (one per parameter group); make it on the same optimizer")
    for function, attributes in zip(functions, saved):
        if attributes is not None:
            function.__dict__.update(attributes)


class LRScheduler:
    """Base of learning-rate schedulers: ``step()`` once per epoch sets each group's ``lr``.

    As PyTorch's, a step changes each group's current rate (`chained_lr`, or `get_lr` in a
    subclass written for PyTorch), so two schedulers on one optimiser compose and a rate set
    by hand carries on; ``step(epoch)`` jumps to an epoch with the closed form (`lr_at`)
    where there is one. ``state_dict`` / ``load_state_dict`` save and restore the schedule
    for a resumed run, in PyTorch's format: ``last_epoch``, ``base_lrs``, ``_step_count``,
    ``_last_lr`` and the scheduler's own settings. Example::

        scheduler.load_state_dict(torch.load("ckpt.pth")["scheduler"])
    """

    separately_saved = ()  # attributes a subclass saves and restores itself

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        self.base_lrs = [group.setdefault("initial_lr", group["lr"]) for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        """Count steps from zero and take the first (at construction, as PyTorch's)."""
        self._step_count = 0
        self.step()

    def lr_at(self, base_lr, epoch):
        """The learning rate of a group with ``base_lr`` at ``epoch`` (closed form)."""
        raise NotImplementedError

    def chained_lr(self, lr, base_lr, epoch):
        """The rate at ``epoch`` of a group whose rate is ``lr`` now (PyTorch's recursive
        form); defaults to the closed form."""
        return self.lr_at(base_lr, epoch)

    def get_lr(self):
        """Each group's rate at ``last_epoch``, from its current rate (PyTorch's ``get_lr``,
        which a scheduler written for PyTorch overrides)."""
        return [self.chained_lr(group["lr"], base, self.last_epoch)
                for group, base in zip(self.optimizer.param_groups, self.base_lrs)]

    def step(self, epoch=None):
        """Advance one epoch (or go to ``epoch``) and set the new learning rates."""
        self._step_count += 1
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            rates = self.get_lr()
        else:
            self.last_epoch = epoch
            has_closed_form = type(self).lr_at is not LRScheduler.lr_at
            rates = [self.lr_at(base, epoch) for base in self.base_lrs] if has_closed_form else self.get_lr()
        self._set_lrs(rates)

    def _set_lrs(self, rates):
        for group, rate in zip(self.optimizer.param_groups, rates):
            group["lr"] = rate
        self._last_lr = _group_lrs(self.optimizer)

    def get_last_lr(self):
        """The learning rate of each group as the last step set it."""
        return self._last_lr

    def state_dict(self):
        """The schedule's state: every attribute but the optimiser, as PyTorch's."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore a state from `state_dict`, saved by this kind of scheduler in metajit or
        PyTorch; a state missing this scheduler's settings raises `MetajitValueError`
        naming them."""
        if not isinstance(state_dict, dict):
            raise MetajitTypeError(f"{type(self).__name__}.load_state_dict takes the dict state_dict() returned, "
                                   f"not {type(state_dict).__name__}")
        missing = sorted(set(self.__dict__) - {"optimizer"} - set(state_dict) - _BOOKKEEPING)
        if missing:
            raise MetajitValueError(f"{type(self).__name__}.load_state_dict: the state lacks {missing}; it was saved "
                                    f"from another kind of scheduler or with other arguments (it has "
                                    f"{sorted(state_dict)})")
        self.__dict__.update({key: value for key, value in state_dict.items() if key not in self.separately_saved})


_LRScheduler = LRScheduler  # PyTorch's older name, which custom schedulers subclass


class StepLR(LRScheduler):
    """Multiply by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** (epoch // self.step_size)

    def chained_lr(self, lr, base_lr, epoch):
        return lr * self.gamma if epoch and epoch % self.step_size == 0 else lr


class MultiStepLR(LRScheduler):
    """Multiply by ``gamma`` at each epoch in ``milestones`` (a repeated one: once per time)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones, self.gamma = collections.Counter(milestones), gamma  # (a Counter, as PyTorch's)
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** bisect.bisect_right(sorted(self.milestones.elements()), epoch)

    def chained_lr(self, lr, base_lr, epoch):
        return lr * self.gamma ** self.milestones[epoch]

    def load_state_dict(self, state_dict):
        """Restore a state from `state_dict` (milestones as a Counter or a list)."""
        super().load_state_dict(state_dict)
        self.milestones = collections.Counter(self.milestones)


class CosineAnnealingLR(LRScheduler):
    """Cosine from the base rate down to ``eta_min`` over ``T_max`` epochs (and back up
    after, as PyTorch's)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2

    def chained_lr(self, lr, base_lr, epoch):
        if epoch == 0:
            return lr
        if (epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            return lr + (base_lr - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
        return ((1 + math.cos(math.pi * epoch / self.T_max)) / (1 + math.cos(math.pi * (epoch - 1) / self.T_max))
                * (lr - self.eta_min) + self.eta_min)


class LambdaLR(LRScheduler):
    """The base rate times ``lr_lambda(epoch)`` (one function, or one per group). Its state
    holds ``lr_lambdas`` as PyTorch's: None for a function, a callable object's attributes."""

    separately_saved = ("lr_lambdas",)

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.lr_lambdas = _per_group("lr_lambda", optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        """Each group's base rate times its function of ``last_epoch``."""
        return [base * function(self.last_epoch) for base, function in zip(self.base_lrs, self.lr_lambdas)]

    def state_dict(self):
        """The schedule's state, the functions as PyTorch saves them (`_function_state`)."""
        return dict(super().state_dict(), lr_lambdas=[_function_state(f) for f in self.lr_lambdas])

    def load_state_dict(self, state_dict):
        """Restore a state from `state_dict`; the functions stay this scheduler's own."""
        super().load_state_dict(state_dict)
        _restore_functions(type(self).__name__, self.lr_lambdas, state_dict["lr_lambdas"])


class MultiplicativeLR(LambdaLR):
    """Multiply each group's current rate by ``lr_lambda(epoch)`` every epoch after the first."""

    def get_lr(self):
        """Each group's rate times its function of ``last_epoch`` (unchanged at epoch 0)."""
        if self.last_epoch <= 0:
            return _group_lrs(self.optimizer)
        return [group["lr"] * function(self.last_epoch)
                for group, function in zip(self.optimizer.param_groups, self.lr_lambdas)]


class ExponentialLR(LRScheduler):
    """Multiply by ``gamma`` every epoch."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** epoch

    def chained_lr(self, lr, base_lr, epoch):
        return lr * self.gamma if epoch else lr


class LinearLR(LRScheduler):
    """Scale the base rate linearly from ``start_factor`` to ``end_factor`` over
    ``total_iters`` epochs, then keep it (PyTorch's warm-up schedule)."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        if not 0 < start_factor <= 1 or not 0 <= end_factor <= 1:
            raise MetajitValueError("LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1]")
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        progress = min(epoch, self.total_iters) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)

    def chained_lr(self, lr, base_lr, epoch):
        if epoch == 0:
            return lr * self.start_factor
        if epoch > self.total_iters:
            return lr
        change = self.end_factor - self.start_factor
        return lr * (1 + change / (self.total_iters * self.start_factor + (epoch - 1) * change))


class ConstantLR(LRScheduler):
    """The base rate times ``factor`` for the first ``total_iters`` epochs, then the base rate."""

    def __init__(self, optimizer, factor=1.0 / 3, total_iters=5, last_epoch=-1):
        if not 0 <= factor <= 1:
            raise MetajitValueError("ConstantLR: factor must be in [0, 1]")
        self.factor, self.total_iters = factor, total_iters
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * (self.factor if epoch < self.total_iters else 1.0)

    def chained_lr(self, lr, base_lr, epoch):
        if epoch == 0:
            return lr * self.factor
        return lr / self.factor if epoch == self.total_iters else lr


class PolynomialLR(LRScheduler):
    """Decay the base rate as ``(1 - epoch / total_iters) ** power`` down to 0 at ``total_iters``."""

    def __init__(self, optimizer, total_iters=5, power=1.0, last_epoch=-1):
        self.total_iters, self.power = total_iters, power
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * (1.0 - min(self.total_iters, epoch) / self.total_iters) ** self.power

    def chained_lr(self, lr, base_lr, epoch):
        if epoch == 0 or epoch > self.total_iters:
            return lr
        return lr * ((1.0 - epoch / self.total_iters) / (1.0 - (epoch - 1) / self.total_iters)) ** self.power


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine from the base rate to ``eta_min`` over ``T_0`` epochs, restarting each time;
    each period is ``T_mult`` times the previous (SGDR). ``step(epoch)`` takes fractions."""

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        if T_0 <= 0 or not isinstance(T_0, int) or T_mult < 1 or not isinstance(T_mult, int):
            raise MetajitValueError(f"CosineAnnealingWarmRestarts: T_0 must be a positive int and T_mult an int "
                                    f">= 1, got {T_0}, {T_mult}")
        self.T_0, self.T_i, self.T_mult, self.eta_min, self.T_cur = T_0, T_0, T_mult, eta_min, last_epoch
        super().__init__(optimizer, last_epoch)

    def step(self, epoch=None):
        """Advance one epoch (or go to ``epoch``, which may be fractional); not counted in
        ``_step_count``, as PyTorch's."""
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur, self.T_i = self.T_cur - self.T_i, self.T_i * self.T_mult
        elif epoch >= self.T_0:
            if self.T_mult == 1:
                self.T_cur = epoch % self.T_0
            else:
                restarts = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                self.T_cur = epoch - self.T_0 * (self.T_mult ** restarts - 1) / (self.T_mult - 1)
                self.T_i = self.T_0 * self.T_mult ** restarts
        else:
            self.T_i, self.T_cur = self.T_0, epoch
        self.last_epoch = math.floor(epoch)
        self._set_lrs([self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2
                       for base in self.base_lrs])


class OneCycleLR(LRScheduler):
    """The 1cycle policy, stepped once per batch: the rate rises from ``max_lr /
    div_factor`` to ``max_lr`` over ``pct_start`` of ``total_steps`` (or ``epochs *
    steps_per_epoch``), then falls to ``max_lr / div_factor / final_div_factor`` (cosine or
    linear ``anneal_strategy``; ``three_phase`` as PyTorch's), while momentum (or Adam's
    first beta) moves the opposite way between ``max_momentum`` and ``base_momentum``."""

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None, pct_start=0.3,
                 anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
                 div_factor=25.0, final_div_factor=1e4, three_phase=False, last_epoch=-1):
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise MetajitValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if total_steps <= 0 or not 0 <= pct_start <= 1 or anneal_strategy not in ("cos", "linear"):
            raise MetajitValueError("OneCycleLR: total_steps must be positive, pct_start in [0, 1] and "
                                    "anneal_strategy 'cos' or 'linear'")
        self.total_steps, self._anneal_func_type, self.cycle_momentum = total_steps, anneal_strategy, cycle_momentum
        groups = optimizer.param_groups
        peaks = _per_group("max_lr", optimizer, max_lr)
        up = float(pct_start * total_steps) - 1
        phases = ([(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                   (float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                   (total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
                  if three_phase else
                  [(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                   (total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")])
        self._schedule_phases = [dict(zip(("end_step", "start_lr", "end_lr", "start_momentum", "end_momentum"), phase))
                                 for phase in phases]
        if cycle_momentum:
            self.use_beta1 = _uses_beta1(optimizer, "OneCycleLR")
        if last_epoch == -1:
            for group, peak in zip(groups, peaks):
                group.update(initial_lr=peak / div_factor, max_lr=peak, min_lr=peak / div_factor / final_div_factor)
                group["lr"] = group["initial_lr"]
                if cycle_momentum:
                    group.update(max_momentum=max_momentum, base_momentum=base_momentum)
                    _set_momentum(group, max_momentum, self.use_beta1)
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start, end, fraction):
        if self._anneal_func_type == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)
        return (end - start) * fraction + start

    def get_lr(self):
        """Each group's rate at batch ``last_epoch`` (and its momentum, set here as PyTorch
        sets it); raises `MetajitValueError` past ``total_steps``, as PyTorch's."""
        if self.last_epoch > self.total_steps:
            raise MetajitValueError(f"OneCycleLR: stepped {self.last_epoch} times, past "
                                    f"total_steps={self.total_steps}")
        rates = []
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for index, phase in enumerate(self._schedule_phases):
                end_step = phase["end_step"]
                if self.last_epoch <= end_step or index == len(self._schedule_phases) - 1:
                    fraction = (self.last_epoch - start_step) / (end_step - start_step)
                    rates.append(self._anneal(group[phase["start_lr"]], group[phase["end_lr"]], fraction))
                    if self.cycle_momentum:
                        _set_momentum(group, self._anneal(group[phase["start_momentum"]],
                                                          group[phase["end_momentum"]], fraction), self.use_beta1)
                    break
                start_step = end_step
        return rates


class CyclicLR(LRScheduler):
    """Cyclical learning rates, stepped once per batch: each cycle the rate rises from
    ``base_lr`` to ``max_lr`` over ``step_size_up`` steps and falls back over
    ``step_size_down`` (default: ``step_size_up``), while momentum (or Adam's first beta)
    moves the opposite way between ``max_momentum`` and ``base_momentum``::

        scheduler = CyclicLR(optimizer, base_lr=0.01, max_lr=0.1, step_size_up=10)
        for batch in loader:
            train(batch)
            scheduler.step()

    The cycle's height ``max_lr - base_lr`` is scaled by ``mode``: ``"triangular"`` (not
    scaled), ``"triangular2"`` (halved each cycle) or ``"exp_range"`` (``gamma`` to the power
    of the step), or by ``scale_fn(x)`` with ``x`` the cycle number (``scale_mode="cycle"``)
    or the step (``"iterations"``). Rates and momenta may be given per group (lists). Its state
    holds ``scale_fn`` as PyTorch's: None for a function, a callable object's attributes."""

    separately_saved = ("_scale_fn_custom",)

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None, mode="triangular",
                 gamma=1.0, scale_fn=None, scale_mode="cycle", cycle_momentum=True, base_momentum=0.8,
                 max_momentum=0.9, last_epoch=-1):
        if mode not in ("triangular", "triangular2", "exp_range") and scale_fn is None:
            raise MetajitValueError(f"CyclicLR: mode {mode!r} is not 'triangular', 'triangular2' or 'exp_range'; "
                                    "give one of them or a scale_fn")
        base_lrs = _per_group("base_lr", optimizer, base_lr)
        if last_epoch == -1:
            for group, rate in zip(optimizer.param_groups, base_lrs):
                group["lr"] = rate
        self.max_lrs = _per_group("max_lr", optimizer, max_lr)
        self.total_size = float(step_size_up) + float(step_size_up if step_size_down is None else step_size_down)
        self.step_ratio = float(step_size_up) / self.total_size
        self.mode, self.gamma, self._scale_fn_custom = mode, gamma, scale_fn
        self.scale_mode = scale_mode if scale_fn is not None else "iterations" if mode == "exp_range" else "cycle"
        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            self.use_beta1 = _uses_beta1(optimizer, "CyclicLR")
            self.base_momentums = _per_group("base_momentum", optimizer, base_momentum)
            self.max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            if last_epoch == -1:
                for group, low, high in zip(optimizer.param_groups, self.base_momentums, self.max_momentums):
                    _set_momentum(group, high, self.use_beta1)
                    group.update(max_momentum=high, base_momentum=low)
        super().__init__(optimizer, last_epoch)  # (its first step starts from each group's initial_lr, as PyTorch's)
        self.base_lrs = base_lrs

    def scale_fn(self, x):
        """The factor on the cycle's height at ``x`` (the cycle number or the step, per ``scale_mode``)."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def get_lr(self):
        """Each group's rate at batch ``last_epoch`` (and its momentum, set here as PyTorch sets it)."""
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        position = 1.0 + self.last_epoch / self.total_size - cycle
        if position <= self.step_ratio:
            height = position / self.step_ratio
        else:
            height = (position - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        if self.cycle_momentum:
            for group, low, high in zip(self.optimizer.param_groups, self.base_momentums, self.max_momentums):
                _set_momentum(group, high - (high - low) * height * scale, self.use_beta1)
        return [low + (high - low) * height * scale for low, high in zip(self.base_lrs, self.max_lrs)]

    def state_dict(self):
        """The schedule's state, ``scale_fn`` as PyTorch saves it (`_function_state`)."""
        return dict(super().state_dict(), _scale_fn_custom=_function_state(self._scale_fn_custom))

    def load_state_dict(self, state_dict):
        """Restore a state from `state_dict`; ``scale_fn`` stays this scheduler's own."""
        super().load_state_dict(state_dict)
        saved = state_dict["_scale_fn_custom"]
        if saved is not None and self._scale_fn_custom is not None:
            _restore_functions("CyclicLR", [self._scale_fn_custom], [saved])


def _check_schedulers(owner, schedulers, optimizer):
    """PyTorch's checks of the schedulers a `SequentialLR` or `ChainedScheduler` runs."""
    if len(schedulers) < 1:
        raise MetajitValueError(f"{owner}: give at least one scheduler")
    for index, scheduler in enumerate(schedulers):
        if not hasattr(scheduler, "optimizer"):
            raise MetajitTypeError(f"{owner}: item {index} ({type(scheduler).__name__}) is not a "
                                   "learning-rate scheduler; pass schedulers made on the optimizer")
        if isinstance(scheduler, ReduceLROnPlateau):
            raise MetajitValueError(f"{owner}: item {index} is a ReduceLROnPlateau, whose step needs "
                                    "the metric; step it yourself beside the others")
        if scheduler.optimizer is not optimizer:
            raise MetajitValueError(f"{owner}: item {index} ({type(scheduler).__name__}) belongs to "
                                    "another optimizer; make every scheduler on the same one")


def _undo_first_step(scheduler):
    """Take back the step a scheduler took when made (in each scheduler it runs, if any)."""
    if hasattr(scheduler, "_schedulers"):
        for inner in scheduler._schedulers:
            _undo_first_step(inner)
    elif hasattr(scheduler, "last_epoch"):
        scheduler.last_epoch -= 1


class _SchedulerOfSchedulers(LRScheduler):
    # SequentialLR and ChainedScheduler: the state holds each of ``self._schedulers``' states

    separately_saved = ("_schedulers",)

    def state_dict(self):
        """Its own state with each scheduler's `state_dict` under ``_schedulers`` (as PyTorch's)."""
        return dict(super().state_dict(), _schedulers=[scheduler.state_dict() for scheduler in self._schedulers])

    def load_state_dict(self, state_dict):
        """Restore a state from `state_dict`, each scheduler's too."""
        super().load_state_dict(state_dict)
        saved = state_dict["_schedulers"]
        if len(saved) != len(self._schedulers):
            raise MetajitValueError(f"{type(self).__name__}.load_state_dict: the state holds {len(saved)} "
                                    f"schedulers' states, this one runs {len(self._schedulers)}")
        for scheduler, state in zip(self._schedulers, saved):
            scheduler.load_state_dict(state)


class SequentialLR(_SchedulerOfSchedulers):
    """Run ``schedulers`` one after another, switching at the epochs in ``milestones``
    (each later one starts from its epoch 0)."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        _check_schedulers("SequentialLR", schedulers, optimizer)
        if len(milestones) != len(schedulers) - 1:
            raise MetajitValueError(f"SequentialLR: {len(schedulers)} schedulers need {len(schedulers) - 1} "
                                    f"milestones, got {len(milestones)}")
        self.optimizer, self._schedulers, self._milestones = optimizer, list(schedulers), list(milestones)
        self.last_epoch = last_epoch + 1
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        _undo_first_step(self)
        first = self._schedulers[bisect.bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    def step(self):
        """Advance one epoch on the scheduler whose turn it is."""
        self.last_epoch += 1
        index = bisect.bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler._update_lr(0)
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_SchedulerOfSchedulers):
    """Step every one of ``schedulers`` (all on one optimiser) at each ``step()``, in order,
    so their factors multiply (PyTorch's ``ChainedScheduler``)::

        warm = ConstantLR(optimizer, factor=0.1, total_iters=20)
        decay = ExponentialLR(optimizer, gamma=0.9)
        scheduler = ChainedScheduler([warm, decay], optimizer=optimizer)

    ``ReduceLROnPlateau`` cannot be chained: its ``step`` needs the metric."""

    def __init__(self, schedulers, optimizer=None):
        optimizer = optimizer or (schedulers[0].optimizer if schedulers and hasattr(schedulers[0], "optimizer")
                                  else None)
        _check_schedulers("ChainedScheduler", schedulers, optimizer)
        self.optimizer, self._schedulers = optimizer, list(schedulers)
        self._last_lr = _group_lrs(optimizer)

    def step(self):
        """Step each scheduler once, in order."""
        for scheduler in self._schedulers:
            scheduler.step()
        self._last_lr = _group_lrs(self.optimizer)


class ReduceLROnPlateau(LRScheduler):
    """Multiply the rates by ``factor`` when ``step(metric)`` has not improved for
    ``patience`` epochs (``mode`` ``"min"`` or ``"max"``; improvement beyond ``threshold``,
    relative or absolute per ``threshold_mode``), then wait ``cooldown`` epochs; never below
    ``min_lr`` (a number or one per group), and changes smaller than ``eps`` are skipped."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8):
        if factor >= 1.0:
            raise MetajitValueError(f"ReduceLROnPlateau: factor must be below 1, got {factor}")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise MetajitValueError("ReduceLROnPlateau: mode must be 'min' or 'max' and threshold_mode 'rel' "
                                    "or 'abs'")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown, self.eps = threshold, threshold_mode, cooldown, eps
        self.default_min_lr = None if isinstance(min_lr, (list, tuple)) else min_lr
        self.min_lrs = _per_group("min_lr", optimizer, min_lr)
        self.mode_worse = math.inf if mode == "min" else -math.inf
        self.best, self.num_bad_epochs, self.cooldown_counter, self.last_epoch = self.mode_worse, 0, 0, 0
        self._last_lr = _group_lrs(optimizer)

    def _better(self, value):
        # PyTorch's comparisons, kept exactly (a relative threshold scales ``best`` itself)
        if self.threshold_mode == "rel":
            scale = 1 - self.threshold if self.mode == "min" else 1 + self.threshold
            return value < self.best * scale if self.mode == "min" else value > self.best * scale
        return value < self.best - self.threshold if self.mode == "min" else value > self.best + self.threshold

    def step(self, metrics, epoch=None):
        """Record this epoch's metric (a number or a one-element Var)."""
        value = float(metrics.item() if hasattr(metrics, "item") else metrics)
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self._better(value):
            self.best, self.num_bad_epochs = value, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, floor in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(group["lr"] * self.factor, floor)
                if group["lr"] - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = _group_lrs(self.optimizer)
