"""PyTorch's other optimisers on the `metajit.optimizer.Optimizer` base, re-exported as ``jt.optim.X``:
the element-wise rules `Adamax`, `NAdam`, `RAdam`, `Adadelta`, `ASGD` and `Rprop`, and the
quasi-Newton `LBFGS` (which re-evaluates the model through a closure).

Each follows ``torch.optim``'s update rule, defaults and argument names. As in the base
module, hyperparameters and per-step scalars (bias corrections, step sizes) enter the
kernels as Python floats, i.e. as kernel parameters: a new value never recompiles.
"""
import math

from .errors import MetajitValueError
from .flags import no_grad
from .math_ops import binary, sign, unary, where
from .optimizer import (Optimizer, _state_var, _with_weight_decay, apply_weight_decay, evaluate_closure,
                        is_closure, update_average)
from .var import Var, sync, take_pending_assignments


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm of past gradients in the denominator, as PyTorch.

    Example: ``jt.optim.Adamax(model.parameters(), lr=2e-3, betas=(0.9, 0.999))``."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **options):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay), **options)

    def update(self, parameter, gradient, group, state):
        beta1, beta2 = group["betas"]
        gradient = _with_weight_decay(gradient, parameter, group["weight_decay"])
        average = update_average(_state_var(state, "exp_avg", gradient), gradient, beta1)
        peak = _state_var(state, "exp_inf", gradient)
        peak.assign(binary("maximum", binary("mul", peak, beta2),
                           binary("add", unary("abs", gradient), group["eps"])))
        rate = group["lr"] / (1.0 - beta1 ** state["step"])
        return binary("sub", parameter, binary("mul", binary("div", average, peak), rate))


def _second_moment(state, gradient, beta2):
    """``exp_avg_sq``, the running average of the squared gradient (Adam's second moment)."""
    return update_average(_state_var(state, "exp_avg_sq", gradient), binary("mul", gradient, gradient), beta2)


class NAdam(Optimizer):
    """NAdam: Adam with Nesterov momentum and PyTorch's momentum decay schedule
    (``momentum_decay``); ``decoupled_weight_decay=True`` decays as AdamW (NAdamW).

    Example: ``jt.optim.NAdam(model.parameters(), lr=2e-3, momentum_decay=4e-3)``."""

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, momentum_decay=4e-3,
                 decoupled_weight_decay=False, **options):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay), **options)

    def update(self, parameter, gradient, group, state):
        beta1, beta2 = group["betas"]
        lr, step, momentum_decay = group["lr"], state["step"], group["momentum_decay"]
        parameter, gradient = apply_weight_decay(parameter, gradient, group, group["decoupled_weight_decay"])
        mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
        mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
        mu_product = state["mu_product"] = float(state.get("mu_product", 1.0)) * mu
        average = update_average(_state_var(state, "exp_avg", gradient), gradient, beta1)
        denominator = binary("add", unary("sqrt", binary("div", _second_moment(state, gradient, beta2),
                                                         1.0 - beta2 ** step)), group["eps"])
        parameter = binary("sub", parameter, binary("mul", binary("div", gradient, denominator),
                                                    lr * (1.0 - mu) / (1.0 - mu_product)))
        return binary("sub", parameter, binary("mul", binary("div", average, denominator),
                                               lr * mu_next / (1.0 - mu_product * mu_next)))


class RAdam(Optimizer):
    """RAdam: Adam with the variance of the adaptive rate rectified, plain momentum SGD
    while the rectification term is undefined (``rho_t <= 5``), as PyTorch;
    ``decoupled_weight_decay=True`` decays as AdamW.

    Example: ``jt.optim.RAdam(model.parameters(), lr=1e-3)``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled_weight_decay=False, **options):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay), **options)

    def update(self, parameter, gradient, group, state):
        beta1, beta2 = group["betas"]
        lr, step = group["lr"], state["step"]
        parameter, gradient = apply_weight_decay(parameter, gradient, group, group["decoupled_weight_decay"])
        average = update_average(_state_var(state, "exp_avg", gradient), gradient, beta1)
        second = _second_moment(state, gradient, beta2)
        correction1, correction2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
        rho_inf = 2.0 / (1.0 - beta2) - 1.0
        rho_t = rho_inf - 2.0 * step * beta2 ** step / correction2
        if rho_t <= 5.0:
            return binary("sub", parameter, binary("mul", average, lr / correction1))
        rectification = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        adaptive = binary("div", average, binary("add", unary("sqrt", second), group["eps"]))
        return binary("sub", parameter, binary(
            "mul", adaptive, lr * rectification * math.sqrt(correction2) / correction1))


class Adadelta(Optimizer):
    """Adadelta: steps scaled by the ratio of running RMS of updates and of gradients, as PyTorch.

    Example: ``jt.optim.Adadelta(model.parameters(), lr=1.0, rho=0.9, eps=1e-6)``."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, **options):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay), **options)

    def update(self, parameter, gradient, group, state):
        rho, eps = group["rho"], group["eps"]
        gradient = _with_weight_decay(gradient, parameter, group["weight_decay"])
        square = update_average(_state_var(state, "square_avg", gradient), binary("mul", gradient, gradient), rho)
        accumulated = _state_var(state, "acc_delta", gradient)
        delta = binary("mul", binary("div", unary("sqrt", binary("add", accumulated, eps)),
                                     unary("sqrt", binary("add", square, eps))), gradient)
        update_average(accumulated, binary("mul", delta, delta), rho)
        return binary("sub", parameter, binary("mul", delta, group["lr"]))


class ASGD(Optimizer):
    """Averaged SGD, as PyTorch: the state keeps the step size ``eta``, the averaging rate
    ``mu`` (Python floats; torch's 0-d tensors) and the running average ``ax`` of the
    parameter, which averages from step ``t0`` on.

    Example: ``jt.optim.ASGD(model.parameters(), lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6)``."""

    def __init__(self, params, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6, weight_decay=0.0, **options):
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay),
                         **options)

    def update(self, parameter, gradient, group, state):
        lr, lambd, step = group["lr"], group["lambd"], state["step"]
        gradient = _with_weight_decay(gradient, parameter, group["weight_decay"])
        eta, mu = float(state.get("eta", lr)), float(state.get("mu", 1.0))
        average = _state_var(state, "ax", parameter)
        parameter = binary("sub", binary("mul", parameter, 1.0 - lambd * eta), binary("mul", gradient, eta))
        average.assign(parameter if mu == 1 else
                       binary("add", average, binary("mul", binary("sub", parameter, average), mu)))
        state["eta"] = lr / (1.0 + lambd * lr * step) ** group["alpha"]
        state["mu"] = 1.0 / max(1.0, step - group["t0"])
        return parameter


class Rprop(Optimizer):
    """Resilient backpropagation, as PyTorch: a per-element step size grows by ``etas[1]``
    while the gradient keeps its sign and shrinks by ``etas[0]`` when it flips (skipping
    that step), within ``step_sizes``; only the gradient's sign is used.

    Example: ``jt.optim.Rprop(model.parameters(), lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50))``."""

    def __init__(self, params, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), **options):
        super().__init__(params, dict(lr=lr, etas=etas, step_sizes=step_sizes), **options)

    def update(self, parameter, gradient, group, state):
        shrink, grow = group["etas"]
        smallest, largest = group["step_sizes"]
        previous = _state_var(state, "prev", gradient)
        size = _state_var(state, "step_size", gradient, group["lr"])
        agreement = binary("mul", gradient, previous)
        flipped = binary("lt", agreement, 0)
        scaled = where(binary("gt", agreement, 0), binary("mul", size, grow),
                       where(flipped, binary("mul", size, shrink), size))
        size.assign(binary("minimum", binary("maximum", scaled, smallest), largest))
        previous.assign(where(flipped, 0.0, gradient))
        return binary("sub", parameter, binary("mul", sign(previous), size))


def _dot(a, b):
    """The inner product of two flat Vars (lazy, 0-d)."""
    from .reductions import sum as reduce_sum
    return reduce_sum(binary("mul", a, b))


def _absolute_max(x):
    """The largest magnitude in flat Var ``x``, as a Python float (reads it)."""
    from .reductions import max as reduce_max
    return reduce_max(unary("abs", x)).item()


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser within ``bounds`` of the cubic through two points with their values and
    slopes (the midpoint when it has none), as PyTorch's LBFGS line search."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square < 0:
        return (low + high) / 2.0
    d2 = math.sqrt(d2_square)
    if x1 <= x2:
        position = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        position = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(position, low), high)


def _strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """PyTorch's strong-Wolfe line search along ``d`` from step ``t``: ``evaluate(t)`` gives
    the loss (a float) and flat gradient at ``x + t d``; ``f``, ``g``, ``gtd`` are those and
    the slope at ``x``. Returns ``(loss, gradient, t, evaluations)``."""
    d_norm = _absolute_max(d)
    f_new, g_new = evaluate(t)
    evaluations = 1
    gtd_new = _dot(g_new, d).item()
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    iteration = 0
    # bracket an interval containing a point satisfying the conditions
    while iteration < max_ls:
        decreased = not (f_new > (f + c1 * t * gtd) or (iteration > 1 and f_new >= f_prev))
        if decreased and abs(gtd_new) <= -c2 * gtd:  # both conditions hold at t
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if not decreased or gtd_new >= 0:  # the minimum lies between t_prev and t
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        # extrapolate
        min_step, max_step = t + 0.01 * (t - t_prev), t * 10
        t_prev, t = t, _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        f_prev, g_prev, gtd_prev = f_new, g_new, gtd_new
        f_new, g_new = evaluate(t)
        evaluations += 1
        gtd_new = _dot(g_new, d).item()
        iteration += 1
    if iteration == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]
    # zoom into the bracket until a point satisfies the conditions
    insufficient_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and iteration < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        # a point too near an end of the bracket moves inside it (after one such step)
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insufficient_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new = evaluate(t)
        evaluations += 1
        gtd_new = _dot(g_new, d).item()
        iteration += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new, gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new, gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], evaluations


class LBFGS(Optimizer):
    """L-BFGS, as PyTorch's: up to ``max_iter`` quasi-Newton iterations per `step` (at most
    ``max_eval`` loss evaluations), from the last ``history_size`` steps and gradient
    changes, with a fixed step ``lr`` or a strong-Wolfe line search
    (``line_search_fn="strong_wolfe"``). The parameters form one group and are treated as
    one flat vector in their dtype; the iteration's decisions read scalars from the device,
    as torch's ``.item()`` calls do. `step` needs PyTorch's closure, which it may call many
    times, and returns the closure's first loss. Example::

        optimizer = jt.optim.LBFGS(model.parameters(), line_search_fn="strong_wolfe")
        def closure():
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            return loss
        optimizer.step(closure)
    """

    _NEEDS_CLOSURE = ("LBFGS.step needs a closure that re-evaluates the loss (it may call it many times): "
                      "def closure(): optimizer.zero_grad(); loss = ...; loss.backward(); return loss "
                      "and then optimizer.step(closure)")

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        if line_search_fn not in (None, "strong_wolfe"):
            raise MetajitValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', not {line_search_fn!r}")
        super().__init__(params, dict(lr=lr, max_iter=max_iter,
                                      max_eval=max_iter * 5 // 4 if max_eval is None else max_eval,
                                      tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                                      history_size=history_size, line_search_fn=line_search_fn))
        self._only_group()

    def _only_group(self):
        if len(self.param_groups) != 1:
            raise MetajitValueError("LBFGS takes a single parameter group (no per-group options), "
                                    "as PyTorch's: pass one list of parameters")
        return self.param_groups[0]

    def _flat_gradient(self):
        from .creation import zeros
        from .shape_ops import concat, reshape
        return concat([zeros(p.numel(), dtype=p.dtype) if p.grad is None else reshape(p.grad, (p.numel(),))
                       for p in self.param_groups[0]["params"]])

    def _evaluate(self, closure):
        """``(loss as returned, loss as a float, flat gradient)``, computed in one realisation."""
        loss = evaluate_closure(closure)
        self.gradient_averager.average(self.params)
        gradient = self._flat_gradient()
        sync([gradient] + ([loss] if isinstance(loss, Var) else []) + take_pending_assignments())
        return loss, float(loss), gradient

    def _set_parameters(self, values):
        sync([p.assign(v) for p, v in zip(self.param_groups[0]["params"], values)])

    def _moved_parameters(self, t, direction):
        """The parameters plus ``t * direction`` (the flat direction split into their shapes)."""
        from .shape_ops import reshape, split
        params = self.param_groups[0]["params"]
        pieces = split(direction, [p.numel() for p in params])
        return [binary("add", p, binary("mul", reshape(piece, p.shape), t)) for p, piece in zip(params, pieces)]

    def step(self, closure=None):
        """Run up to ``max_iter`` iterations; ``closure`` is required. Returns its first loss."""
        if not is_closure(closure):
            raise MetajitValueError(self._NEEDS_CLOSURE)
        group = self._only_group()
        with no_grad():
            return self._iterate(closure, group)

    def _iterate(self, closure, group):
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]
        params = group["params"]
        # all state on the first parameter, as torch's
        state = self.state.setdefault(id(params[0]), {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        original_loss, loss, flat_grad = self._evaluate(closure)
        current_evals = 1
        state["func_evals"] += 1
        optimal = _absolute_max(flat_grad) <= tolerance_grad
        if optimal:
            return original_loss
        d, t, old_dirs, old_stps, ro, h_diag, prev_flat_grad, prev_loss = (
            state.get(name) for name in ("d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad",
                                         "prev_loss"))
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = unary("neg", flat_grad).sync()
                old_dirs, old_stps, ro, h_diag = [], [], [], 1.0
            else:
                y, s = binary("sub", flat_grad, prev_flat_grad), binary("mul", d, t)
                sync([y, s])
                ys = _dot(y, s).item()
                if ys > 1e-10:  # a curvature pair only where the curvature is positive
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / _dot(y, y).item()
                if "al" not in state:
                    state["al"] = [None] * history_size
                d = _two_loop_direction(flat_grad, old_dirs, old_stps, ro, h_diag, state["al"])
            prev_flat_grad, prev_loss = flat_grad, loss
            if state["n_iter"] == 1:
                from .reductions import sum as reduce_sum
                t = min(1.0, 1.0 / reduce_sum(unary("abs", flat_grad)).item()) * lr
            else:
                t = lr
            gtd = _dot(flat_grad, d).item()
            if gtd > -tolerance_change:  # not a descent direction
                break
            evaluations = 0
            if group["line_search_fn"] is not None:
                start = [p.detach() for p in params]

                def along(step_length):
                    self._set_parameters(self._moved_parameters(step_length, d))
                    _, value, gradient = self._evaluate(closure)
                    self._set_parameters(start)
                    return value, gradient
                loss, flat_grad, t, evaluations = _strong_wolfe(along, t, d, loss, flat_grad, gtd,
                                                                max_ls=max_eval - current_evals)
                self._set_parameters(self._moved_parameters(t, d))
                optimal = _absolute_max(flat_grad) <= tolerance_grad
            else:
                self._set_parameters(self._moved_parameters(t, d))
                if n_iter != max_iter:  # the last iteration's loss is the next step's first
                    _, loss, flat_grad = self._evaluate(closure)
                    optimal = _absolute_max(flat_grad) <= tolerance_grad
                    evaluations = 1
            current_evals += evaluations
            state["func_evals"] += evaluations
            if (n_iter == max_iter or current_evals >= max_eval or optimal
                    or _absolute_max(binary("mul", d, t)) <= tolerance_change
                    or abs(loss - prev_loss) < tolerance_change):
                break
        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=h_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return original_loss


def _two_loop_direction(flat_grad, old_dirs, old_stps, ro, h_diag, al):
    """L-BFGS's two-loop recursion: the direction ``-H grad`` from the curvature pairs
    (gradient changes ``old_dirs``, steps ``old_stps``, ``ro = 1 / (y . s)``), filling
    ``al``. Each vector is realised as it is made, so every iteration runs the same kernels."""
    q = unary("neg", flat_grad)
    for i in range(len(old_dirs) - 1, -1, -1):
        al[i] = binary("mul", _dot(old_stps[i], q), ro[i])
        q = binary("sub", q, binary("mul", old_dirs[i], al[i]))
        sync([al[i], q])
    r = binary("mul", q, h_diag).sync()
    for i in range(len(old_dirs)):
        be_i = binary("mul", _dot(old_dirs[i], r), ro[i])
        r = binary("add", r, binary("mul", old_stps[i], binary("sub", al[i], be_i))).sync()
    return r
