"""Which Vars are leaves, and what in-place changes under no_grad do to them, against torch."""

import numpy as np
import pytest
import torch

import metajit as jt
from metajit.errors import MetajitTypeError, MetajitValueError


def _train_one_step(library, weights, bias, edit):
    """A Linear with these parameters, ``edit`` applied under no_grad, one SGD step: its
    parameters and their ``requires_grad``."""
    linear = library.nn.Linear(3, 2)
    with library.no_grad():
        linear.weight.copy_(library.tensor(weights))
        linear.bias.copy_(library.tensor(bias))
        edit(linear)
    optimizer = library.optim.SGD(linear.parameters(), lr=0.5)
    x = library.tensor(np.arange(6, dtype=np.float32).reshape(2, 3) / 5)
    loss = (linear(x) ** 2).sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    parameters = (linear.weight, linear.bias)
    return [p.detach().numpy() for p in parameters], [p.requires_grad for p in parameters]


EDITS = {
    "mul_": lambda m: m.weight.mul_(0.5),
    "fill_": lambda m: m.bias.fill_(0.25),
    "zero_": lambda m: m.bias.zero_(),
    "isub": lambda m: m.weight.__isub__(0.1),
    "setitem": lambda m: m.weight.__setitem__(1, 0.0),
    "clamp_": lambda m: m.weight.clamp_(-0.2, 0.2),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_parameters_changed_in_place_under_no_grad_still_train(edit):
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((2, 3)).astype(np.float32)
    bias = rng.standard_normal(2).astype(np.float32)
    theirs, their_flags = _train_one_step(torch, weights, bias, EDITS[edit])
    ours, our_flags = _train_one_step(jt, weights, bias, EDITS[edit])
    assert our_flags == their_flags == [True, True]
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine, reference, rtol=1e-5, atol=1e-6)


def test_in_place_under_no_grad_keeps_a_leaf():
    weight = jt.nn.Linear(3, 2).weight
    with jt.no_grad():
        weight.mul_(2)
    assert weight.is_leaf and weight.requires_grad


@pytest.mark.parametrize("make", ["ones", "zeros", "randn", "rand", "eye", "arange_float", "full"])
def test_factories_make_leaves(make):
    factories = {"ones": lambda m: m.ones(3), "zeros": lambda m: m.zeros(3), "randn": lambda m: m.randn(3),
                 "rand": lambda m: m.rand(3), "eye": lambda m: m.eye(3),
                 "arange_float": lambda m: m.arange(0.0, 3.0), "full": lambda m: m.full((2,), 1.5)}
    assert factories[make](jt).is_leaf == factories[make](torch).is_leaf is True
    assert not (factories[make](jt) * 2).is_leaf  # a float Var needs gradients in Jittor's sense


def test_norm_layer_parameters_are_leaves():
    for layer in (jt.nn.BatchNorm2d(3), jt.nn.LayerNorm(4), jt.nn.GroupNorm(2, 4)):
        assert all(p.is_leaf for p in layer.parameters())


def test_optimizer_updates_a_plain_var_from_backward():
    start = np.array([1.0, -2.0, 3.0], np.float32)
    ours = jt.array(start)
    theirs = torch.tensor(start, requires_grad=True)
    for library, x in ((jt, ours), (torch, theirs)):
        optimizer = library.optim.SGD([x], lr=0.1, momentum=0.9)
        for _ in range(3):
            optimizer.zero_grad()
            (x * x * x).sum().backward()
            optimizer.step()
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-6)


def test_backward_of_a_non_scalar_needs_its_gradient():
    x = jt.ones(3).requires_grad_()
    with pytest.raises(MetajitValueError, match=r"shape \(3,\) needs its gradient"):
        (x * 2).backward()
    (x * 2).backward(jt.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])


def test_an_argmax_tuple_is_no_operand():
    scores = jt.array(np.array([[0.1, 0.9], [0.8, 0.2]], np.float32))
    labels = jt.array(np.array([1, 1], np.int32))
    with pytest.raises(MetajitTypeError, match=r"argmax\(-1\)\[0\]"):
        scores.argmax(-1) == labels
    accuracy = (scores.argmax(-1)[0] == labels).float().mean().item()
    assert accuracy == 0.5


def test_zero_grad_keeping_tensors_steps_an_unreached_parameter_as_torch():
    """``zero_grad(set_to_none=False)`` leaves zeros, so momentum and weight decay still move
    a parameter the next loss does not reach."""
    start = np.array([[0.5, -1.0, 2.0]], np.float32)
    results = []
    for library in (torch, jt):
        used, unused = library.nn.Linear(3, 1, bias=False), library.nn.Linear(3, 1, bias=False)
        with library.no_grad():
            used.weight.copy_(library.tensor(start))
            unused.weight.copy_(library.tensor(start))
        optimizer = library.optim.SGD([used.weight, unused.weight], lr=0.1, momentum=0.9, weight_decay=0.1)
        x = library.tensor(np.ones((2, 3), np.float32))
        for loss in (lambda: (used(x) + unused(x)).sum(), lambda: used(x).sum()):
            optimizer.zero_grad(set_to_none=False)
            loss().backward()
            optimizer.step()
        results.append([w.detach().numpy() for w in (used.weight, unused.weight)])
        assert np.array_equal(unused.weight.grad.numpy(), np.zeros((1, 3), np.float32))
    for ours, theirs in zip(results[1], results[0]):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_torch_uses_of_an_argmax_tuple_say_what_it_is():
    scores = jt.array(np.array([[0.1, 0.9], [0.8, 0.2]], np.float32))
    result = scores.argmax(1)
    indices, values = result
    assert result.indices is indices and result.values is values and len(result) == 2
    with pytest.raises(AttributeError, match=r"\(indices, values\).*no attribute 'item'"):
        result.item()
    with pytest.raises(TypeError, match="a tuple is not a number"):
        int(jt.argmax(scores[0], 0))
    with pytest.raises(MetajitTypeError, match="used as an index"):
        jt.ones(4, 3)[result]
    assert not hasattr(result, "eq")
