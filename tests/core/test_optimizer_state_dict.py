"""Optimizer state dicts against torch.optim: a torch checkpoint resumes in metajit and a
metajit checkpoint resumes in torch, both landing where torch's uninterrupted run does;
``optimizer.state[parameter]`` as torch's."""
import io

import numpy as np
import pytest

import metajit as jt

from .test_optim import Problem, assert_params_match

torch = pytest.importorskip("torch")

OPTIMIZERS = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}), ("Adam", {"lr": 0.05, "amsgrad": True}),
    ("AdamW", {"lr": 0.05}), ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01}), ("Adamax", {"lr": 0.05}), ("NAdam", {"lr": 0.05}),
    ("RAdam", {"lr": 0.05}), ("Adadelta", {}), ("ASGD", {"lr": 0.05, "t0": 1}), ("Rprop", {}),
    ("LBFGS", {"max_iter": 3}),
]
IDS = [name for name, _ in OPTIMIZERS]


def make(library, name, kwargs, values):
    """Parameters from ``values`` and an optimiser on them; two groups (the bias at half the
    rate) except for LBFGS, which takes one."""
    if library is torch:
        params = [torch.tensor(np.asarray(v), requires_grad=True) for v in values]
    else:
        params = [jt.array(np.asarray(v)).requires_grad_() for v in values]
    groups = params if name == "LBFGS" else [{"params": params[:1]},
                                             {"params": params[1:], "lr": kwargs.get("lr", 1.0) / 2}]
    return params, getattr(library.optim, name)(groups, **kwargs)


def problem_for(name):
    return Problem(np.float64 if name == "LBFGS" else np.float32)  # (as test_optim: L-BFGS decides on rounding)


def tolerance(name):
    return {"rtol": 1e-9, "atol": 1e-11} if name == "LBFGS" else {"rtol": 1e-5, "atol": 1e-6}


def steps(problem, library, optimizer, params, count):
    for _ in range(count):
        optimizer.step(problem.closure(library, optimizer, params))


@pytest.mark.parametrize("through_file", [True, False], ids=["torch.save then jt.load", "in memory"])
@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=IDS)
def test_a_torch_checkpoint_resumes_in_metajit_as_torch_continues(name, kwargs, through_file):
    problem = problem_for(name)
    tparams, toptimizer = make(torch, name, kwargs, problem.start)
    steps(problem, torch, toptimizer, tparams, 3)
    checkpoint = {"params": [p.detach().clone() for p in tparams], "optimizer": toptimizer.state_dict()}
    if through_file:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        buffer.seek(0)
        checkpoint = jt.load(buffer, map_location="cpu")
    params, optimizer = make(jt, name, kwargs, checkpoint["params"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    steps(problem, jt, optimizer, params, 3)
    steps(problem, torch, toptimizer, tparams, 3)  # (in memory: torch's state changes in place, ours is a copy)
    assert_params_match(params, tparams, **tolerance(name))


@pytest.mark.parametrize("name,kwargs", OPTIMIZERS, ids=IDS)
def test_a_metajit_checkpoint_resumes_in_torch_as_torch_continues(name, kwargs):
    problem = problem_for(name)
    params, optimizer = make(jt, name, kwargs, problem.start)
    tparams, toptimizer = make(torch, name, kwargs, problem.start)  # the uninterrupted run
    steps(problem, jt, optimizer, params, 3)
    steps(problem, torch, toptimizer, tparams, 3)
    buffer = io.BytesIO()
    jt.save({"params": params, "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    resumed_params, resumed = make(torch, name, kwargs, checkpoint["params"])
    resumed.load_state_dict(checkpoint["optimizer"])
    steps(problem, torch, resumed, resumed_params, 3)
    steps(problem, torch, toptimizer, tparams, 3)
    for mine, reference in zip(resumed_params, tparams):
        np.testing.assert_allclose(mine.detach().numpy(), reference.detach().numpy(), **tolerance(name))


@pytest.mark.parametrize("name,kwargs", [case for case in OPTIMIZERS if case[0] in ("SGD", "Adam", "ASGD")],
                         ids=["SGD", "Adam", "ASGD"])
def test_state_is_indexed_by_the_parameter_as_torch(name, kwargs):
    problem = problem_for(name)
    params, optimizer = make(jt, name, kwargs, problem.start)
    tparams, toptimizer = make(torch, name, kwargs, problem.start)
    steps(problem, jt, optimizer, params, 2)
    steps(problem, torch, toptimizer, tparams, 2)
    assert list(optimizer.state) == params and all(p in optimizer.state for p in params)
    for mine, reference in zip(params, tparams):
        theirs = toptimizer.state[reference]
        assert set(theirs) <= set(optimizer.state[mine])  # (metajit's SGD counts steps too)
        for key, value in theirs.items():
            np.testing.assert_allclose(np.asarray(optimizer.state[mine][key]), value.numpy(), rtol=1e-5, atol=1e-6)
        assert optimizer.state[id(mine)] is optimizer.state[mine]  # metajit's earlier key
    assert optimizer.state_dict()["state"].keys() == toptimizer.state_dict()["state"].keys()
    fresh, tfresh = jt.zeros(2), torch.zeros(2)
    assert optimizer.state[fresh] == toptimizer.state[tfresh] == {}  # a defaultdict(dict), as torch's


def test_editing_state_through_the_parameter_changes_the_next_step():
    problem = problem_for("SGD")
    kwargs = {"lr": 0.05, "momentum": 0.9}
    params, optimizer = make(jt, "SGD", kwargs, problem.start)
    tparams, toptimizer = make(torch, "SGD", kwargs, problem.start)
    steps(problem, jt, optimizer, params, 1)
    steps(problem, torch, toptimizer, tparams, 1)
    optimizer.state[params[0]]["momentum_buffer"] = jt.zeros(params[0].shape)
    toptimizer.state[tparams[0]]["momentum_buffer"].zero_()
    steps(problem, jt, optimizer, params, 1)
    steps(problem, torch, toptimizer, tparams, 1)
    assert_params_match(params, tparams, rtol=1e-5, atol=1e-6)


def test_loaded_floating_state_takes_the_parameters_dtype_as_torch():
    wide = torch.ones(3, dtype=torch.float64, requires_grad=True)
    toptimizer = torch.optim.Adam([wide], lr=0.05)
    wide.grad = torch.full((3,), 0.5, dtype=torch.float64)
    toptimizer.step()
    saved = toptimizer.state_dict()  # float64 state
    theirs = torch.optim.Adam([torch.ones(3, requires_grad=True)], lr=0.05)  # float32 parameters
    theirs.load_state_dict(saved)
    parameter = jt.ones(3)
    optimizer = jt.optim.Adam([parameter], lr=0.05)
    optimizer.load_state_dict(saved)
    state, tstate = optimizer.state[parameter], next(iter(theirs.state.values()))
    assert state["exp_avg"].dtype == str(tstate["exp_avg"].dtype).removeprefix("torch.") == "float32"
    np.testing.assert_allclose(state["exp_avg_sq"].numpy(), tstate["exp_avg_sq"].numpy(), rtol=1e-7)
    assert state["step"] == tstate["step"].item() == 1


def test_wrong_state_dicts_raise_naming_the_mistake():
    params = [jt.zeros(3), jt.zeros(2)]
    optimizer = jt.optim.Adam(params, lr=0.1)
    model = jt.nn.Linear(2, 3)
    with pytest.raises(jt.MetajitValueError, match="model.load_state_dict"):
        optimizer.load_state_dict(model.state_dict())
    other = jt.optim.Adam([jt.zeros(3)], lr=0.1).state_dict()
    with pytest.raises(jt.MetajitValueError, match=r"groups of \[1\] parameters, this optimizer \[2\]"):
        optimizer.load_state_dict(other)
    saved = optimizer.state_dict()
    saved["state"] = {5: {"step": 1}}
    with pytest.raises(jt.MetajitValueError, match="state for parameter 5, but the optimizer has 2"):
        optimizer.load_state_dict(saved)
    with pytest.raises(KeyError):  # an id that is no parameter's (torch: a plain KeyError too)
        optimizer.state[12345]
