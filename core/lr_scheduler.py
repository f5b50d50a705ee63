"""Learning-rate schedulers (``jt.lr_scheduler``, also ``jt.optim.lr_scheduler``), as in
PyTorch and Jittor: call ``step()`` once per epoch (`ReduceLROnPlateau`: ``step(metric)``)::

    scheduler = jt.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    for epoch in range(epochs):
        train(...)
        scheduler.step()

A scheduler changes ``lr`` in the optimiser's ``param_groups`` only.
"""
import bisect
import math

from .errors import MetajitTypeError, MetajitValueError


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


class LRScheduler:
    """Base of learning-rate schedulers: ``step()`` once per epoch sets each group's ``lr``.

    As PyTorch's, a step changes each group's current rate (`chained_lr`), so two
    schedulers on one optimiser compose and a rate set by hand carries on; ``step(epoch)``
    jumps to an epoch with the closed form (`lr_at`). ``state_dict`` / ``load_state_dict``
    save and restore the schedule for a resumed run."""

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        self.base_lrs = [group.setdefault("initial_lr", group["lr"]) for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr, epoch):
        """The learning rate of a group with ``base_lr`` at ``epoch`` (closed form)."""
        raise NotImplementedError

    def chained_lr(self, lr, base_lr, epoch):
        """The rate at ``epoch`` of a group whose rate is ``lr`` now (PyTorch's recursive
        form); defaults to the closed form."""
        return self.lr_at(base_lr, epoch)

    def step(self, epoch=None):
        """Advance one epoch (or go to ``epoch``) and set the new learning rates."""
        if epoch is None:
            self.last_epoch += 1
            rates = [self.chained_lr(group["lr"], base, self.last_epoch)
                     for group, base in zip(self.optimizer.param_groups, self.base_lrs)]
        else:
            self.last_epoch = epoch
            rates = [self.lr_at(base, epoch) for base in self.base_lrs]
        for group, rate in zip(self.optimizer.param_groups, rates):
            group["lr"] = rate

    def get_last_lr(self):
        """The current learning rate of each group."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """The schedule's state (everything but the optimiser and functions), as PyTorch's."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer" and not callable(value)
                and not (isinstance(value, list) and value and all(callable(v) for v in value))}

    def load_state_dict(self, state_dict):
        """Restore a state from `state_dict`."""
        self.__dict__.update(state_dict)


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
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, epoch):
        return base_lr * self.gamma ** sum(1 for m in self.milestones if m <= epoch)

    def chained_lr(self, lr, base_lr, epoch):
        return lr * self.gamma ** self.milestones.count(epoch)


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
    """The base rate times ``lr_lambda(epoch)`` (one function, or one per group)."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.lr_lambdas = _per_group("lr_lambda", optimizer, lr_lambda)
        super().__init__(optimizer, last_epoch)

    def step(self, epoch=None):
        """Advance one epoch (or go to ``epoch``): each group's base rate times its function."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        for group, base, function in zip(self.optimizer.param_groups, self.base_lrs, self.lr_lambdas):
            group["lr"] = base * function(self.last_epoch)


class MultiplicativeLR(LambdaLR):
    """Multiply each group's current rate by ``lr_lambda(epoch)`` every epoch after the first."""

    def step(self, epoch=None):
        """Advance one epoch: each group's rate times its function of the new epoch."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.last_epoch > 0:
            for group, function in zip(self.optimizer.param_groups, self.lr_lambdas):
                group["lr"] = group["lr"] * function(self.last_epoch)


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
            raise ValueError("LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1]")
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
            raise ValueError("ConstantLR: factor must be in [0, 1]")
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
            raise ValueError(f"CosineAnnealingWarmRestarts: T_0 must be a positive int and T_mult an int >= 1, "
                             f"got {T_0}, {T_mult}")
        self.T_0, self.T_i, self.T_mult, self.eta_min, self.T_cur = T_0, T_0, T_mult, eta_min, last_epoch
        super().__init__(optimizer, last_epoch)

    def step(self, epoch=None):
        """Advance one epoch (or go to ``epoch``, which may be fractional)."""
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
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2


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
                raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if total_steps <= 0 or not 0 <= pct_start <= 1 or anneal_strategy not in ("cos", "linear"):
            raise ValueError("OneCycleLR: total_steps must be positive, pct_start in [0, 1] and anneal_strategy "
                             "'cos' or 'linear'")
        self.total_steps, self.anneal_strategy, self.cycle_momentum = total_steps, anneal_strategy, cycle_momentum
        groups = optimizer.param_groups
        peaks = _per_group("max_lr", optimizer, max_lr)
        up = float(pct_start * total_steps) - 1
        self.phases = ([(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                        (float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr", "base_momentum",
                         "max_momentum"),
                        (total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
                       if three_phase else
                       [(up, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                        (total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")])
        self.use_beta1 = _uses_beta1(optimizer, "OneCycleLR") if cycle_momentum else "betas" in optimizer.defaults
        if last_epoch == -1:
            for group, peak in zip(groups, peaks):
                group.update(initial_lr=peak / div_factor, max_lr=peak, min_lr=peak / div_factor / final_div_factor)
                group["lr"] = group["initial_lr"]
                if cycle_momentum:
                    group.update(max_momentum=max_momentum, base_momentum=base_momentum)
                    _set_momentum(group, max_momentum, self.use_beta1)
        super().__init__(optimizer, last_epoch)

    def _anneal(self, start, end, fraction):
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * fraction) + 1)
        return (end - start) * fraction + start

    def step(self, epoch=None):
        """Advance one batch; raises ValueError past ``total_steps``, as PyTorch's."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        if self.last_epoch > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {self.last_epoch} times, past total_steps={self.total_steps}")
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for index, (end_step, lr_from, lr_to, momentum_from, momentum_to) in enumerate(self.phases):
                if self.last_epoch <= end_step or index == len(self.phases) - 1:
                    fraction = (self.last_epoch - start_step) / (end_step - start_step)
                    group["lr"] = self._anneal(group[lr_from], group[lr_to], fraction)
                    if self.cycle_momentum:
                        _set_momentum(group, self._anneal(group[momentum_from], group[momentum_to], fraction),
                                      self.use_beta1)
                    break
                start_step = end_step


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
    or the step (``"iterations"``). Rates and momenta may be given per group (lists)."""

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

    def step(self, epoch=None):
        """Advance one batch (or go to batch ``epoch``) and set the rates and momenta."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        position = 1.0 + self.last_epoch / self.total_size - cycle
        if position <= self.step_ratio:
            height = position / self.step_ratio
        else:
            height = (position - 1) / (self.step_ratio - 1)
        scale = self.scale_fn(cycle if self.scale_mode == "cycle" else self.last_epoch)
        for group, low, high in zip(self.optimizer.param_groups, self.base_lrs, self.max_lrs):
            group["lr"] = low + (high - low) * height * scale
        if self.cycle_momentum:
            for group, low, high in zip(self.optimizer.param_groups, self.base_momentums, self.max_momentums):
                _set_momentum(group, high - (high - low) * height * scale, self.use_beta1)


class _SchedulerOfSchedulers(LRScheduler):
    # SequentialLR and ChainedScheduler: the state holds each of ``self.schedulers``' states

    def state_dict(self):
        """Its own state with each scheduler's `state_dict` (as PyTorch's)."""
        state = {key: value for key, value in super().state_dict().items() if key != "schedulers"}
        return dict(state, schedulers=[scheduler.state_dict() for scheduler in self.schedulers])

    def load_state_dict(self, state_dict):
        """Restore a state from `state_dict`, each scheduler's too."""
        state = dict(state_dict)
        for scheduler, saved in zip(self.schedulers, state.pop("schedulers")):
            scheduler.load_state_dict(saved)
        self.__dict__.update(state)


class SequentialLR(_SchedulerOfSchedulers):
    """Run ``schedulers`` one after another, switching at the epochs in ``milestones``
    (each later one starts from its epoch 0)."""

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: {len(schedulers)} schedulers need {len(schedulers) - 1} milestones, "
                             f"got {len(milestones)}")
        self.optimizer, self.schedulers, self.milestones = optimizer, list(schedulers), list(milestones)
        self.last_epoch = last_epoch + 1
        for group in optimizer.param_groups:  # undo the first steps the schedulers took when made
            group["lr"] = group["initial_lr"]
        for scheduler in self.schedulers:
            scheduler.last_epoch -= 1
        self.schedulers[0].step()
        self.base_lrs = self.schedulers[0].base_lrs

    def step(self, epoch=None):
        """Advance one epoch on the scheduler whose turn it is."""
        self.last_epoch += 1
        index = bisect.bisect_right(self.milestones, self.last_epoch)
        if index > 0 and self.milestones[index - 1] == self.last_epoch:
            self.schedulers[index].step(0)
        else:
            self.schedulers[index].step()


class ChainedScheduler(_SchedulerOfSchedulers):
    """Step every one of ``schedulers`` (all on one optimiser) at each ``step()``, in order,
    so their factors multiply (PyTorch's ``ChainedScheduler``)::

        warm = ConstantLR(optimizer, factor=0.1, total_iters=20)
        decay = ExponentialLR(optimizer, gamma=0.9)
        scheduler = ChainedScheduler([warm, decay], optimizer=optimizer)

    ``ReduceLROnPlateau`` cannot be chained: its ``step`` needs the metric."""

    def __init__(self, schedulers, optimizer=None):
        if len(schedulers) < 1:
            raise MetajitValueError("ChainedScheduler: give at least one scheduler to chain")
        optimizer = optimizer or schedulers[0].optimizer
        for index, scheduler in enumerate(schedulers):
            if not hasattr(scheduler, "optimizer"):
                raise MetajitTypeError(f"ChainedScheduler: item {index} ({type(scheduler).__name__}) is not a "
                                       "learning-rate scheduler; pass schedulers made on the optimizer")
            if isinstance(scheduler, ReduceLROnPlateau):
                raise MetajitValueError(f"ChainedScheduler: item {index} is a ReduceLROnPlateau, whose step needs "
                                        "the metric; step it yourself beside the chain")
            if scheduler.optimizer is not optimizer:
                raise MetajitValueError(f"ChainedScheduler: item {index} ({type(scheduler).__name__}) belongs to "
                                        "another optimizer; make every chained scheduler on the same one")
        self.optimizer, self.schedulers = optimizer, list(schedulers)

    def step(self):
        """Step each scheduler once, in order."""
        for scheduler in self.schedulers:
            scheduler.step()


class ReduceLROnPlateau(LRScheduler):
    """Multiply the rates by ``factor`` when ``step(metric)`` has not improved for
    ``patience`` epochs (``mode`` ``"min"`` or ``"max"``; improvement beyond ``threshold``,
    relative or absolute per ``threshold_mode``), then wait ``cooldown`` epochs; never below
    ``min_lr`` (a number or one per group), and changes smaller than ``eps`` are skipped."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel",
                 cooldown=0, min_lr=0, eps=1e-8):
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be below 1, got {factor}")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError("ReduceLROnPlateau: mode must be 'min' or 'max' and threshold_mode 'rel' or 'abs'")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown, self.eps = threshold, threshold_mode, cooldown, eps
        self.min_lrs = _per_group("min_lr", optimizer, min_lr)
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_epochs, self.cooldown_counter, self.last_epoch = 0, 0, 0

    def _better(self, value):
        # PyTorch's comparisons, kept exactly (a relative threshold scales ``best`` itself)
        if self.threshold_mode == "rel":
            scale = 1 - self.threshold if self.mode == "min" else 1 + self.threshold
            return value < self.best * scale if self.mode == "min" else value > self.best * scale
        return value < self.best - self.threshold if self.mode == "min" else value > self.best + self.threshold

    def step(self, metric):
        """Record this epoch's ``metric`` (a number or a one-element Var)."""
        value = float(metric.item() if hasattr(metric, "item") else metric)
        self.last_epoch += 1
        if self._better(value):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            for group, floor in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(group["lr"] * self.factor, floor)
                if group["lr"] - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter, self.bad_epochs = self.cooldown, 0
