"""Module.register_full_backward_hook / register_full_backward_pre_hook against torch's."""
import warnings

import numpy as np
import torch

import metajit as jt


def _pair():
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 5, 3), torch.nn.ReLU())
    ours = jt.nn.Sequential(jt.nn.Conv2d(3, 4, 3), jt.nn.ReLU(), jt.nn.Conv2d(4, 5, 3), jt.nn.ReLU())
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _numpy(values):
    return [None if v is None else v.detach().numpy().copy() if isinstance(v, torch.Tensor) else v.numpy()
            for v in values]


def _backward_with_hooks(model, image):
    """The hooks' records (doubling grad_input, tripling grad_output) and the first conv's weight gradient,
    after one backward pass with the hooks and one after removing them."""
    records = []

    def hook(module, grad_input, grad_output):
        records.append(("full", _numpy(grad_input), _numpy(grad_output)))
        return tuple(None if g is None else g * 2 for g in grad_input)

    def pre_hook(module, grad_output):
        records.append(("pre", _numpy(grad_output)))
        return tuple(g * 3 for g in grad_output)
    handles = [model[2].register_full_backward_hook(hook), model[2].register_full_backward_pre_hook(pre_hook),
               model[0].register_full_backward_hook(hook)]
    out = model(image)
    (out * out).sum().backward()
    hooked = model[0].weight.grad.numpy().copy()
    for handle in handles:
        handle.remove()
    model.zero_grad()
    out = model(image)
    (out * out).sum().backward()
    return records, hooked, model[0].weight.grad.numpy()


def test_backward_hooks_see_and_replace_gradients_as_torch():
    ours, theirs = _pair()
    image = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that the first conv's hook fires at its outputs
        expected = _backward_with_hooks(theirs, torch.from_numpy(image))
    got = _backward_with_hooks(ours, jt.array(image))
    assert [r[0] for r in got[0]] == [r[0] for r in expected[0]] == ["pre", "full", "full"]
    for theirs_record, ours_record in zip(expected[0], got[0]):
        for theirs_values, ours_values in zip(theirs_record[1:], ours_record[1:]):
            assert len(theirs_values) == len(ours_values)
            for a, b in zip(theirs_values, ours_values):
                assert (a is None) == (b is None)
                if a is not None:
                    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-4, atol=1e-4)
    assert not np.allclose(got[1], got[2])  # the hooks changed the gradient


class _TwoInputs:
    """A module of two inputs, one of which needs no gradient: (a * b + a).sum-able."""

    @staticmethod
    def build(nn):
        class Mix(nn.Module):
            def forward(self, a, b, scale=1.0):
                return a * b * scale + a
        return Mix()


def test_a_hook_of_a_module_with_two_inputs_gets_one_gradient_per_input():
    values = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    results = []
    for library in (torch, jt):
        a = torch.tensor(values, requires_grad=True) if library is torch else jt.array(values).requires_grad_()
        b = torch.tensor(values * 2) if library is torch else jt.array(values * 2).stop_grad()
        seen = []
        module = _TwoInputs.build(library.nn)
        module.register_full_backward_hook(lambda m, gi, go: seen.append(_numpy(gi)))
        (module(a, b, scale=0.5) ** 2).sum().backward()
        results.append((seen, a.grad.numpy()))
    (theirs, theirs_grad), (ours, ours_grad) = results
    assert len(ours) == len(theirs) == 1
    for expected, got in zip(theirs[0], ours[0]):  # b's is zeros, as torch's
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(ours_grad, theirs_grad, rtol=1e-5)
