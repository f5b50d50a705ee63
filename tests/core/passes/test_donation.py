"""Optimiser steps write new parameters and state into the old ones' memory when nothing
else can read the old values, and never when something can."""
import numpy as np
import pytest

import metajit as jt
from metajit.passes import donation, graphwalk

torch = pytest.importorskip("torch")


def model_and_data(rng):
    model = jt.nn.Sequential(jt.nn.Linear(6, 8), jt.nn.ReLU(), jt.nn.Linear(8, 3))
    x = jt.array(rng.standard_normal((5, 6)).astype(np.float32))
    y = jt.array(np.array([0, 1, 2, 0, 1]))
    return model, x, y


def test_steps_match_torch(rng):
    model, x, y = model_and_data(rng)
    theirs = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    model.load_state_dict(theirs.state_dict())
    ours_optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    theirs_optimizer = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    for _ in range(4):
        ours_optimizer.step(jt.nn.cross_entropy(model(x), y))
        theirs_optimizer.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.tensor(x.numpy())), torch.tensor(y.numpy())).backward()
        theirs_optimizer.step()
    for ours, want in zip(model.parameters(), theirs.parameters()):
        np.testing.assert_allclose(ours.numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_a_step_needs_no_second_copy_of_the_parameters(rng, monkeypatch):
    if jt.get_device() != "cpu":
        pytest.skip("measured with the cpu backend's allocator")
    from metajit.backends import cpu
    from metajit.passes import donation

    def step_peak():
        model = jt.nn.Sequential(jt.nn.Linear(512, 512), jt.nn.ReLU(), jt.nn.Linear(512, 4))
        optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x, y = jt.array(rng.standard_normal((2, 512)).astype(np.float32)), jt.array(np.array([0, 3]))
        for _ in range(3):
            optimizer.step(jt.nn.cross_entropy(model(x), y))
        cpu._allocator.reset_peak()
        optimizer.step(jt.nn.cross_entropy(model(x), y))
        return cpu._allocator.peak_bytes - cpu._allocator.allocated_bytes
    donating = step_peak()
    monkeypatch.setattr(donation, "positions", lambda *arguments: ())
    copying = step_peak()
    weights = 512 * 512 * 4
    assert copying - donating >= 2 * weights  # the weight and its momentum, not copied


def test_a_value_still_read_elsewhere_keeps_its_memory(rng):
    model, x, y = model_and_data(rng)
    optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    optimizer.step(jt.nn.cross_entropy(model(x), y))
    weight = model[0].weight
    before = weight.numpy()
    lazy_copy = weight * 1.0          # reads the value before the step, computed after it
    alias = jt.Var.from_node(weight._node)  # holds the very node
    optimizer.step(jt.nn.cross_entropy(model(x), y))
    assert not np.array_equal(weight.numpy(), before)
    np.testing.assert_array_equal(lazy_copy.numpy(), before)
    np.testing.assert_array_equal(alias.numpy(), before)


def test_values_kept_from_the_step_are_those_before_it(rng):
    """The logits a loop keeps for its accuracy are computed with the step, from the
    weights before it (which the step may then reuse)."""
    model, x, y = model_and_data(rng)
    optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    optimizer.step(jt.nn.cross_entropy(model(x), y))
    weights = [p.numpy() for p in model.parameters()]
    logits = model(x)
    optimizer.step(jt.nn.cross_entropy(logits, y))
    with jt.debug.record_kernels() as launched:
        values = logits.numpy()
    assert not launched  # computed with the step, not again from the old weights
    hidden = np.maximum(x.numpy() @ weights[0].T + weights[1], 0)
    np.testing.assert_allclose(values, hidden @ weights[2].T + weights[3], rtol=1e-5, atol=1e-6)


def test_differentiating_a_loss_again_after_its_step_says_why_it_cannot(rng):
    model, x, y = model_and_data(rng)
    optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    optimizer.step(jt.nn.cross_entropy(model(x), y))
    loss = jt.nn.cross_entropy(model(x), y)
    optimizer.step(loss)
    if jt.get_device() == "reference":
        return
    with pytest.raises(jt.MetajitValueError, match="before its step"):
        jt.grad(loss, x).numpy()


@pytest.mark.skipif(graphwalk.native is None, reason="the C extension is not built")
def test_native_and_python_find_the_same_held_values(monkeypatch):
    """A value computed from the donated weight that a Var still holds is held; the target,
    values only the graph holds and values not computed from the weight are not."""
    weight, other = jt.array(np.ones(4, np.float32)).sync(), jt.array(np.ones(4, np.float32)).sync()
    kept = weight * 2.0
    unrelated = other * 3.0
    target = (kept + 1.0) * unrelated + weight.exp()
    order = graphwalk.realised_order([target._node])
    donated = [weight._node]
    native_held, native_walk = donation.held_values(donated, order, [target._node])
    monkeypatch.setattr(graphwalk, "native", None)
    python_held, python_walk = donation.held_values(donated, order, [target._node])
    assert native_held == python_held == [kept._node]
    assert native_walk[1][id(weight._node)] == python_walk[1][id(weight._node)] == 2
