"""jt.optim's Adamax, NAdam, RAdam, Adadelta, ASGD, Rprop and LBFGS, and ``step(closure)``,
against torch.optim on the CPU: the parameters after several steps from the same start."""
import math

import numpy as np
import pytest

import metajit as jt

torch = pytest.importorskip("torch")


class Problem:
    """A small least-squares fit of ``(W, b)`` (shapes (3, 4) and (4,)) through ``tanh``
    (``convex=False``) or not, plus ``0.1 * sum(W ** 4)``, built alike in both libraries."""

    def __init__(self, dtype=np.float32, convex=False):
        rng = np.random.default_rng(7)
        self.start = [rng.standard_normal(shape).astype(dtype) for shape in ((3, 4), (4,))]
        self.inputs, self.targets = (rng.standard_normal(shape).astype(dtype) for shape in ((5, 3), (5, 4)))
        self.convex = convex

    def loss(self, library, weight, bias):
        convert = torch.tensor if library is torch else jt.array
        outputs = convert(self.inputs) @ weight + bias
        if not self.convex:
            outputs = library.tanh(outputs)
        return ((outputs - convert(self.targets)) ** 2).sum() + 0.1 * (weight ** 4).sum()

    def theirs(self, name, kwargs):
        params = [torch.tensor(value, requires_grad=True) for value in self.start]
        return params, getattr(torch.optim, name)(params, **kwargs)

    def ours(self, name, kwargs):
        params = [jt.array(value).requires_grad_() for value in self.start]
        return params, getattr(jt.optim, name)(params, **kwargs)

    def closure(self, library, optimizer, params):
        def closure():
            optimizer.zero_grad()
            loss = self.loss(library, *params)
            loss.backward()
            return loss
        return closure


def assert_params_match(ours, theirs, rtol, atol):
    for mine, reference in zip(ours, theirs):
        assert mine.dtype == str(reference.dtype).replace("torch.", "")  # the parameters keep their dtype
        np.testing.assert_allclose(mine.numpy(), reference.detach().numpy(), rtol=rtol, atol=atol)


ELEMENTWISE = [
    ("Adamax", {}), ("Adamax", {"lr": 0.1, "betas": (0.8, 0.99), "weight_decay": 0.1, "maximize": True}),
    ("NAdam", {"lr": 0.05}), ("NAdam", {"lr": 0.05, "weight_decay": 0.1, "momentum_decay": 0.01}),
    ("NAdam", {"lr": 0.05, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("RAdam", {"lr": 0.05}), ("RAdam", {"lr": 0.05, "weight_decay": 0.1, "maximize": True}),
    ("RAdam", {"lr": 0.05, "betas": (0.9, 0.99), "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adadelta", {}), ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.1, "maximize": True}),
    ("ASGD", {"lr": 0.05}), ("ASGD", {"lr": 0.05, "lambd": 0.01, "alpha": 0.5, "t0": 2, "weight_decay": 0.1}),
    ("Rprop", {}), ("Rprop", {"lr": 0.05, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.2), "maximize": True}),
]


@pytest.mark.parametrize("name,kwargs", ELEMENTWISE, ids=[f"{n}{k}" for n, k in ELEMENTWISE])
def test_elementwise_optimizer_trajectory_matches_torch(name, kwargs):
    """Eight steps (RAdam's rectification starts at the sixth with beta2 = 0.999), Jittor's
    ``step(loss)`` here, torch's ``zero_grad(); backward(); step()`` there."""
    problem = Problem()
    params, optimizer = problem.ours(name, kwargs)
    tparams, toptimizer = problem.theirs(name, kwargs)
    for _ in range(8):
        optimizer.step(problem.loss(jt, *params))
        toptimizer.step(problem.closure(torch, toptimizer, tparams))
    assert_params_match(params, tparams, rtol=1e-5, atol=1e-6)
    if name == "ASGD":  # the running average and torch's scalar state, too
        state, tstate = optimizer.state[id(params[0])], toptimizer.state[tparams[0]]
        np.testing.assert_allclose(state["ax"].numpy(), tstate["ax"].numpy(), rtol=1e-5, atol=1e-6)
        assert (state["eta"], state["mu"]) == pytest.approx((tstate["eta"].item(), tstate["mu"].item()), rel=1e-6)


LBFGS_CASES = [  # (kwargs, convex): the full defaults on the convex fit, where lr=1 without a line search is stable
    ({}, True), ({"line_search_fn": "strong_wolfe"}, True),
    ({"lr": 0.5, "max_iter": 4, "history_size": 3}, False),
    ({"max_iter": 5, "history_size": 3, "line_search_fn": "strong_wolfe"}, False),
    ({"max_iter": 6, "max_eval": 7, "tolerance_change": 1e-4, "line_search_fn": "strong_wolfe"}, False),
]


@pytest.mark.parametrize("kwargs,convex", LBFGS_CASES, ids=[str(k) for k, _ in LBFGS_CASES])
def test_lbfgs_trajectory_matches_torch(kwargs, convex):
    """float64, as L-BFGS's tolerance tests and line search turn rounding into different
    decisions; the losses the steps return and torch's counters must match too."""
    problem = Problem(np.float64, convex)
    params, optimizer = problem.ours("LBFGS", kwargs)
    tparams, toptimizer = problem.theirs("LBFGS", kwargs)
    for _ in range(5):
        loss = optimizer.step(problem.closure(jt, optimizer, params))
        tloss = toptimizer.step(problem.closure(torch, toptimizer, tparams))
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-9)
    assert_params_match(params, tparams, rtol=1e-7, atol=1e-9)
    state, tstate = optimizer.state[id(params[0])], toptimizer.state[tparams[0]]
    assert (state["n_iter"], state["func_evals"], len(state["old_dirs"])) == (
        tstate["n_iter"], tstate["func_evals"], len(tstate["old_dirs"]))


LINE_FUNCTIONS = {  # one-dimensional losses along the search direction and their slopes
    "wall": (lambda x: -x + math.exp(4 * (x - 2)), lambda x: -1 + 4 * math.exp(4 * (x - 2))),
    "quartic": (lambda x: (x - 1.3) ** 4 - x, lambda x: 4 * (x - 1.3) ** 3 - 1),
    "wiggle": (lambda x: -x + 0.3 * math.sin(9 * x) + 0.05 * x * x, lambda x: -1 + 2.7 * math.cos(9 * x) + 0.1 * x),
    "flat": (lambda x: -1e-3 * math.tanh(x - 5), lambda x: -1e-3 / math.cosh(x - 5) ** 2),
}
LINE_SEARCHES = [  # together they take every branch of the bracketing and of the zoom
    ("wall", 0.01, {}), ("wall", 30.0, {}), ("wall", 1e-4, {"max_ls": 3}), ("quartic", 30.0, {}),
    ("wiggle", 0.3, {}), ("wiggle", 1.0, {}), ("wiggle", 3.0, {"tolerance_change": 1e-3}), ("flat", 1.0, {}),
]


@pytest.mark.parametrize("name,t,options", LINE_SEARCHES, ids=[f"{n}-{t}-{o}" for n, t, o in LINE_SEARCHES])
def test_strong_wolfe_line_search_matches_torch(name, t, options):
    """The line search alone, against torch's, on losses chosen to reach each of its cases
    (along a direction of length 2 from 0: the loss at step ``t`` is ``loss(2 t)``)."""
    from metajit.optim_rules import _strong_wolfe
    theirs = pytest.importorskip("torch.optim.lbfgs")._strong_wolfe
    loss, slope = LINE_FUNCTIONS[name]

    def evaluate_theirs(x, step, d):
        return loss(2 * step), torch.tensor([slope(2 * step)], dtype=torch.float64)

    def evaluate_ours(step):
        return loss(2 * step), jt.array(np.array([slope(2 * step)]))
    start = torch.zeros(1, dtype=torch.float64)
    want = theirs(evaluate_theirs, [start], t, torch.full((1,), 2.0, dtype=torch.float64), loss(0),
                  torch.tensor([slope(0)], dtype=torch.float64), 2 * slope(0), **options)
    got = _strong_wolfe(evaluate_ours, t, jt.array(np.full(1, 2.0)), loss(0), jt.array(np.array([slope(0)])),
                        2 * slope(0), **options)
    assert (got[0], got[2], got[3]) == pytest.approx((float(want[0]), float(want[2]), want[3]), rel=1e-12)
    np.testing.assert_allclose(got[1].numpy(), want[1].numpy(), rtol=1e-12)


def test_lbfgs_keeps_float32_parameters_and_matches_torch():
    problem = Problem(np.float32)
    kwargs = {"max_iter": 4, "history_size": 3, "line_search_fn": "strong_wolfe"}
    params, optimizer = problem.ours("LBFGS", kwargs)
    tparams, toptimizer = problem.theirs("LBFGS", kwargs)
    for _ in range(3):
        optimizer.step(problem.closure(jt, optimizer, params))
        toptimizer.step(problem.closure(torch, toptimizer, tparams))
    assert_params_match(params, tparams, rtol=1e-4, atol=1e-5)


def test_lbfgs_needs_a_closure_and_one_group():
    weight = jt.zeros(3)
    optimizer = jt.optim.LBFGS([weight])
    with pytest.raises(jt.MetajitValueError, match=r"optimizer.step\(closure\)"):
        optimizer.step()
    with pytest.raises(jt.MetajitValueError, match="closure"):
        optimizer.step((weight * weight).sum())
    with pytest.raises(jt.MetajitValueError, match="single parameter group"):
        jt.optim.LBFGS([{"params": [weight]}, {"params": [jt.zeros(2)], "lr": 0.1}])
    with pytest.raises(jt.MetajitValueError, match="strong_wolfe"):
        jt.optim.LBFGS([weight], line_search_fn="backtracking")


@pytest.mark.parametrize("name,kwargs", [("SGD", {"lr": 0.01, "momentum": 0.9}), ("Adam", {"lr": 0.05}),
                                         ("NAdam", {"lr": 0.05, "maximize": True})])
def test_step_with_a_closure_matches_torch_and_returns_its_loss(name, kwargs):
    problem = Problem()
    params, optimizer = problem.ours(name, kwargs)
    tparams, toptimizer = problem.theirs(name, kwargs)
    for _ in range(4):
        closure = problem.closure(jt, optimizer, params)
        returned = []
        loss = optimizer.step(lambda: returned.append(closure()) or returned[0])
        tloss = toptimizer.step(problem.closure(torch, toptimizer, tparams))
        assert loss is returned[0]
        with jt.debug.record_kernels() as launched:  # computed with the step, before the update
            assert loss.item() == pytest.approx(tloss.item(), rel=1e-5)
        assert not launched
    assert_params_match(params, tparams, rtol=1e-5, atol=1e-6)


def test_closure_runs_with_gradients_enabled_and_loss_style_step_returns_none():
    weight = jt.array(np.ones(3, np.float32)).requires_grad_()
    optimizer = jt.optim.SGD([weight], lr=0.1)

    def closure():
        assert jt.is_grad_enabled()
        optimizer.zero_grad()
        loss = (weight * weight).sum()
        loss.backward()
        return loss
    with jt.no_grad():
        assert optimizer.step(closure).item() == pytest.approx(3.0)
    np.testing.assert_allclose(weight.numpy(), 0.8, rtol=1e-6)
    assert optimizer.step((weight * weight).sum()) is None
    np.testing.assert_allclose(weight.numpy(), 0.64, rtol=1e-6)


@pytest.mark.parametrize("name,kwargs", [("NAdam", {"lr": 0.05}), ("ASGD", {"lr": 0.05, "t0": 1}),
                                         ("Rprop", {}), ("LBFGS", {"max_iter": 3})])
def test_state_dict_round_trip_resumes_as_torch(name, kwargs):
    """Two steps, then a fresh optimiser on the same parameters loads the state and takes
    two more: the same parameters as torch's four uninterrupted steps."""
    problem = Problem(np.float64)
    params, first = problem.ours(name, kwargs)
    tparams, toptimizer = problem.theirs(name, kwargs)
    for step in range(4):
        if step == 2:
            resumed = getattr(jt.optim, name)(params, **kwargs)
            resumed.load_state_dict(first.state_dict())
        optimizer = first if step < 2 else resumed
        optimizer.step(problem.closure(jt, optimizer, params))
        toptimizer.step(problem.closure(torch, toptimizer, tparams))
    assert_params_match(params, tparams, rtol=1e-7, atol=1e-9)


def test_new_optimizers_are_exported_with_torch_defaults():
    import inspect
    for name in ("Adamax", "NAdam", "RAdam", "Adadelta", "ASGD", "Rprop", "LBFGS"):
        ours, theirs = inspect.signature(getattr(jt.optim, name)), inspect.signature(getattr(torch.optim, name))
        for parameter in ours.parameters.values():
            if parameter.default is not inspect.Parameter.empty:
                assert parameter.default == theirs.parameters[parameter.name].default, (name, parameter.name)
