"""grad, vjp, jvp, jacrev, jacfwd, hessian and functional_call against torch.func on the CPU
(and finite differences), composed with vmap as in PyTorch's tutorials."""
import numpy as np
import pytest
import torch
import torch.func as tf

import metajit as jt
from metajit import nn
from metajit.func import functional_call, grad, grad_and_value, hessian, jacfwd, jacrev, jvp, vjp, vmap


def close(ours, theirs, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol, atol=atol)


def copy_into_torch(ours, theirs):
    theirs.load_state_dict({name: torch.from_numpy(value.numpy()) for name, value in ours.state_dict().items()})


def per_sample_gradients(model, torch_model, x, y, loss_jt, loss_torch):
    params = dict(model.named_parameters())
    torch_params = {k: v.detach() for k, v in torch_model.named_parameters()}

    def compute_loss(p, sample, target):
        return loss_jt(functional_call(model, p, (sample[None],)), target[None])

    def compute_torch_loss(p, sample, target):
        return loss_torch(tf.functional_call(torch_model, p, (sample[None],)), target[None])
    ours = vmap(grad(compute_loss), in_dims=(None, 0, 0))(params, jt.array(x), jt.array(y))
    theirs = tf.vmap(tf.grad(compute_torch_loss), in_dims=(None, 0, 0))(torch_params, torch.from_numpy(x),
                                                                        torch.from_numpy(y))
    assert set(ours) == set(theirs)
    for name in ours:
        close(ours[name], theirs[name])


def test_per_sample_gradients_of_an_mlp(rng):
    jt.set_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    torch_model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    copy_into_torch(model, torch_model)
    x = rng.standard_normal((10, 6)).astype(np.float32)
    y = rng.integers(0, 3, 10).astype(np.int64)
    per_sample_gradients(model, torch_model, x, y, nn.cross_entropy_loss, torch.nn.functional.cross_entropy)


def test_per_sample_gradients_of_a_small_cnn(rng):
    jt.set_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 2))
    torch_model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                      torch.nn.Flatten(), torch.nn.Linear(4 * 3 * 3, 2))
    copy_into_torch(model, torch_model)
    x = rng.standard_normal((5, 1, 8, 8)).astype(np.float32)
    y = rng.standard_normal((5, 2)).astype(np.float32)
    per_sample_gradients(model, torch_model, x, y, nn.mse_loss, torch.nn.functional.mse_loss)


def test_model_ensembling_over_stacked_parameters(rng):
    models = [nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)) for _ in range(3)]
    stacked = {name: jt.stack([dict(m.named_parameters())[name] for m in models]) for name, _ in models[0].named_parameters()}
    x = jt.array(rng.standard_normal((5, 4)).astype(np.float32))
    ours = vmap(lambda p, data: functional_call(models[0], p, (data,)), in_dims=(0, None))(stacked, x)
    for k, model in enumerate(models):
        np.testing.assert_allclose(ours[k].numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    assert models[0][0].weight is dict(models[0].named_parameters())["0.weight"]  # put back afterwards


def predict(weight, bias, x):
    return nn.linear(x, weight, bias).tanh()


def test_jacobians_and_hessian_of_the_seed_example(rng):
    D = 16
    weight, bias, x = (rng.standard_normal(s).astype(np.float32) for s in ((D, D), (D,), (D,)))
    tw, tb, tx = map(torch.from_numpy, (weight, bias, x))
    w, b, v = map(jt.array, (weight, bias, x))

    def torch_predict(weight, bias, x):
        return torch.nn.functional.linear(x, weight, bias).tanh()
    expected = tf.jacrev(torch_predict, argnums=2)(tw, tb, tx)
    close(jacrev(predict, argnums=2)(w, b, v), expected)
    close(jacfwd(predict, argnums=2)(w, b, v), expected)
    _, vjp_fn = vjp(lambda point: predict(w, b, point), v)
    (rows,) = vmap(vjp_fn)(jt.array(np.eye(D, dtype=np.float32)))
    close(rows, expected)
    weight_jacobians = jacrev(predict, argnums=(0, 1))(w, b, v)
    for ours, theirs in zip(weight_jacobians, tf.jacrev(torch_predict, argnums=(0, 1))(tw, tb, tx)):
        close(ours, theirs)
    close(hessian(lambda point: predict(w, b, point).sum(), 0)(v),
          tf.hessian(lambda point: torch_predict(tw, tb, point).sum())(tx), rtol=1e-3, atol=1e-5)


def test_grad_options_and_higher_order():
    x = jt.array([0.5, -1.5, 2.0])
    second = grad(lambda v: grad(lambda u: (u ** 3).sum())(v).sum())(x)
    np.testing.assert_allclose(second.numpy(), 6 * x.numpy())
    gradient, aux = grad(lambda v: ((v * 2).sum(), "note"), has_aux=True)(x)
    np.testing.assert_allclose(gradient.numpy(), [2, 2, 2])
    assert aux == "note"
    # arguments are independent variables, even when one is computed from the other
    (gx, gy), value = grad_and_value(lambda a, b: (a * b).sum(), argnums=(0, 1))(x, x * 3)
    np.testing.assert_allclose(gx.numpy(), 3 * x.numpy())
    np.testing.assert_allclose(gy.numpy(), x.numpy())
    assert value.item() == pytest.approx(float((3 * x.numpy() ** 2).sum()))
    with pytest.raises(jt.MetajitShapeError, match="scalar"):
        grad(lambda v: v * 2)(x)


def test_jvp_against_finite_differences(rng):
    point = rng.standard_normal(4)
    direction = rng.standard_normal(4)

    def f(v):
        return jt.sin(v) * v.sum()
    output, product = jvp(f, (jt.array(point),), (jt.array(direction),))
    eps = 1e-6
    expected = (f(jt.array(point + eps * direction)).numpy() - f(jt.array(point - eps * direction)).numpy()) / (2 * eps)
    np.testing.assert_allclose(product.numpy(), expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(output.numpy(), f(jt.array(point)).numpy())
