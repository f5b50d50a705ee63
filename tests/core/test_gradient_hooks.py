"""Var.register_hook, retain_grad and is_leaf against torch.autograd on the same values."""
import numpy as np
import pytest
import torch

import metajit as jt
from metajit.errors import MetajitValueError


def _leaf(library, values):
    if library is torch:
        return torch.tensor(values, requires_grad=True)
    return jt.array(values).requires_grad_()


def _hooked_backward(library, values):
    """Two backward passes with hooks on a leaf and on a computed value, one removed in between."""
    x = _leaf(library, values)
    seen = []
    y = x * 2
    y.retain_grad()
    z = y.tanh()
    scale = z.register_hook(lambda g: g * 3)
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    loss = (z * z).sum() + (y * y).sum()
    loss.backward(retain_graph=True)
    first = x.grad.numpy().copy(), y.grad.numpy().copy()
    scale.remove()
    (z * y).sum().backward()
    return first, (x.grad.numpy(), y.grad.numpy()), seen


def test_hooks_see_and_replace_gradients_and_retain_grad_fills_computed_values_as_torch():
    values = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    theirs, ours = _hooked_backward(torch, values), _hooked_backward(jt, values)
    for expected, got in zip(theirs[0] + theirs[1], ours[0] + ours[1]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert len(ours[2]) == len(theirs[2]) == 2
    for expected, got in zip(theirs[2], ours[2]):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_a_hook_runs_in_jt_grad_and_in_every_pass_of_a_repeated_graph():
    x = jt.array([1.0, -2.0, 3.0])
    calls = []
    y = x * x

    def flip(g):
        calls.append(1)
        return -g
    y.register_hook(flip)
    for _ in range(3):  # the backward template cache must not skip the hook
        np.testing.assert_allclose(jt.grad(y.sum(), x).numpy(), [-2.0, 4.0, -6.0])
    assert len(calls) == 3


def test_is_leaf_matches_torch():
    x = jt.array([1.0, 2.0]).requires_grad_()
    assert x.is_leaf and not (x * 2).is_leaf and (x * 2).detach().is_leaf
    assert jt.array([1, 2]).is_leaf and not (x * 2).retains_grad


def test_hook_mistakes_raise_and_name_them():
    x = jt.array([1.0, 2.0]).requires_grad_()
    y = x * 3
    y.register_hook(lambda g: g.sum())
    with pytest.raises(MetajitValueError, match="shape"):
        y.sum().backward()
    with pytest.raises(MetajitValueError, match="does not require gradients"):
        jt.array([1, 2]).register_hook(lambda g: g)
    with pytest.raises(MetajitValueError, match="function"):
        x.register_hook(3)


def test_a_parameter_keeps_its_hook_across_optimiser_steps_as_torch():
    values = np.array([[0.5, -1.5], [2.0, 0.25]], dtype=np.float32)
    results = []
    for library in (torch, jt):
        weight = _leaf(library, values)
        optimizer = library.optim.SGD([weight], lr=0.1)
        handle = weight.register_hook(lambda g: g.clamp(-0.5, 0.5))
        for step in range(3):
            if step == 2:
                handle.remove()
            optimizer.zero_grad()
            (weight ** 3).sum().backward()
            optimizer.step()
        results.append(weight.detach().numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)


def test_post_accumulate_grad_hooks_run_after_each_backward_as_torch():
    results = []
    for library in (torch, jt):
        weight = _leaf(library, np.array([1.0, -3.0], dtype=np.float32))
        seen = []
        handle = weight.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.numpy().copy()))
        (weight * weight).sum().backward()
        (weight ** 3).sum().backward()
        handle.remove()
        (weight * weight).sum().backward()
        results.append((seen, weight.grad.numpy()))
    (theirs, theirs_grad), (ours, ours_grad) = results
    assert len(ours) == len(theirs) == 2
    for expected, got in zip(theirs + [theirs_grad], ours + [ours_grad]):
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    with pytest.raises(MetajitValueError, match="leaf"):
        (jt.array([1.0]).requires_grad_() * 2).register_post_accumulate_grad_hook(lambda p: None)
