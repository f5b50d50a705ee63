"""``jt.autograd``: PyTorch's ``grad``, ``backward`` and ``Function``, against torch."""
import numpy as np
import pytest
import torch

import metajit as jt

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=np.float32)
W = np.array([[1.0, 2.0, -1.0], [0.5, -0.5, 3.0]], dtype=np.float32)


def _pair(values):
    return jt.array(values).requires_grad_(), torch.tensor(values, requires_grad=True)


def test_grad_of_scalar_and_weighted_outputs():
    x, t = _pair(X)
    (jx,) = jt.autograd.grad((x.exp() * x).sum(), x)
    (tx,) = torch.autograd.grad((t.exp() * t).sum(), t)
    np.testing.assert_allclose(jx.numpy(), tx.numpy(), rtol=1e-6)
    assert not jx.requires_grad and not tx.requires_grad
    jx, jw = jt.autograd.grad([x.sin(), x * 3], [x, x], grad_outputs=[jt.array(W), jt.array(W) * 2])
    tx, tw = torch.autograd.grad([t.sin(), t * 3], [t, t], grad_outputs=[torch.tensor(W), torch.tensor(W) * 2])
    np.testing.assert_allclose(jx.numpy(), tx.numpy(), rtol=1e-6)
    np.testing.assert_allclose(jw.numpy(), tw.numpy(), rtol=1e-6)


def test_grad_with_create_graph_differentiates_again():
    x, t = _pair(X)
    (jx,) = jt.autograd.grad((x ** 3).sum(), x, create_graph=True)
    (tx,) = torch.autograd.grad((t ** 3).sum(), t, create_graph=True)
    (jxx,) = jt.autograd.grad((jx * jt.array(W)).sum(), x)
    (txx,) = torch.autograd.grad((tx * torch.tensor(W)).sum(), t)
    np.testing.assert_allclose(jxx.numpy(), txx.numpy(), rtol=1e-6)


def test_grad_of_unused_inputs():
    (x, t), (y, u) = _pair(X), _pair(W)
    with pytest.raises(RuntimeError):
        torch.autograd.grad((t * 2).sum(), [t, u])
    with pytest.raises(ValueError, match="allow_unused"):
        jt.autograd.grad((x * 2).sum(), [x, y])
    jx, jy = jt.autograd.grad((x * 2).sum(), [x, y], allow_unused=True)
    tx, ty = torch.autograd.grad((t * 2).sum(), [t, u], allow_unused=True)
    assert jy is None and ty is None
    np.testing.assert_array_equal(jx.numpy(), tx.numpy())
    _, jy = jt.autograd.grad((x * 2).sum(), [x, y], materialize_grads=True)
    _, ty = torch.autograd.grad((t * 2).sum(), [t, u], materialize_grads=True)
    np.testing.assert_array_equal(jy.numpy(), ty.numpy())


def test_grad_of_a_non_scalar_output_needs_its_weights():
    x, t = _pair(X)
    with pytest.raises(RuntimeError, match="scalar"):
        torch.autograd.grad(t * 2, t)
    with pytest.raises(ValueError, match="grad_outputs"):
        jt.autograd.grad(x * 2, x)


def test_backward_of_several_outputs_and_of_chosen_inputs():
    (x, t), (y, u) = _pair(X), _pair(W)
    jt.autograd.backward([(x * y).sum(), x.exp()], [None, jt.array(W)])
    torch.autograd.backward([(t * u).sum(), t.exp()], [None, torch.tensor(W)])
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(y.grad.numpy(), u.grad.numpy(), rtol=1e-6)
    (x, t), (y, u) = _pair(X), _pair(W)
    jt.autograd.backward((x * y).sum(), inputs=[y])
    torch.autograd.backward((t * u).sum(), inputs=[u])
    assert x.grad is None and t.grad is None
    np.testing.assert_allclose(y.grad.numpy(), u.grad.numpy())


def _exp_function(library):
    class Exp(library.autograd.Function):
        @staticmethod
        def forward(ctx, x, scale):
            y = x.exp() * scale
            ctx.save_for_backward(y)
            ctx.scale = scale
            return y

        @staticmethod
        def backward(ctx, grad_output):
            (y,) = ctx.saved_tensors
            assert ctx.needs_input_grad == (True, False)
            return grad_output * y, None
    return Exp


def _split_function(library, materialize):
    class Split(library.autograd.Function):
        @staticmethod
        def forward(x):
            return x * 2, x * 3

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.set_materialize_grads(materialize)

        @staticmethod
        def backward(ctx, first, second):
            if second is None:
                return first * 2
            return first * 2 + second * 3
    return Split


def test_function_with_context():
    x, t = _pair(X)
    (_exp_function(jt).apply(x, 2.0) * jt.array(W)).sum().backward()
    (_exp_function(torch).apply(t, 2.0) * torch.tensor(W)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-6)
    with jt.autograd.no_grad():
        np.testing.assert_allclose(_exp_function(jt).apply(jt.array(X), 2.0).numpy(), 2 * np.exp(X), rtol=1e-6)


@pytest.mark.parametrize("materialize", [True, False])
def test_function_with_setup_context_and_an_unused_output(materialize):
    x, t = _pair(X)
    first, _ = _split_function(jt, materialize).apply(x)
    expected, _ = _split_function(torch, materialize).apply(t)
    (first * jt.array(W)).sum().backward()
    (expected * torch.tensor(W)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy())
