"""Gradients of every differentiable op against finite differences, and higher orders."""
import numpy as np
import pytest

import metajit as jt
from tests.oracle import numeric_grad


def check_grad(function, *arrays, rtol=1e-5, atol=1e-7):
    """Compare jt.grad of sum(function(...)) with central differences, in float64."""
    variables = [jt.array(np.asarray(a, np.float64)) for a in arrays]
    loss = function(*variables).sum()
    grads = jt.grad(loss, variables)
    for position, (array, grad) in enumerate(zip(arrays, grads)):
        def scalar(values, position=position):
            inputs = [jt.array(values if k == position else np.asarray(a, np.float64))
                      for k, a in enumerate(arrays)]
            return function(*inputs).sum().item()
        expected = numeric_grad(scalar, array)
        assert grad.shape == np.shape(array)
        np.testing.assert_allclose(grad.numpy(), expected, rtol=rtol, atol=atol)


UNARY = ["exp", "log", "sqrt", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
         "asinh", "acosh", "atanh", "sigmoid", "erf", "abs", "neg"]
DOMAIN = {"log": (0.2, 2), "sqrt": (0.2, 2), "asin": (-0.8, 0.8), "acos": (-0.8, 0.8),
          "acosh": (1.2, 3), "atanh": (-0.8, 0.8), "abs": (0.1, 1)}


@pytest.mark.parametrize("name", UNARY)
def test_unary_grad(name, rng):
    low, high = DOMAIN.get(name, (-1.5, 1.5))
    data = rng.uniform(low, high, (2, 3))
    if name == "abs":
        data *= rng.choice([-1, 1], data.shape)
    check_grad(getattr(jt, name), data)


def test_rounding_ops_have_zero_grad():
    x = jt.array([0.3, 1.7])
    for name in ("floor", "ceil", "round"):
        np.testing.assert_array_equal(jt.grad(getattr(jt, name)(x).sum(), x).numpy(), [0, 0])


BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "maximum": jt.maximum,
    "minimum": jt.minimum, "mod": lambda a, b: a % b,
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_grad_with_broadcasting(name, rng):
    a = rng.uniform(0.5, 2.0, (2, 3))
    b = rng.uniform(0.6, 1.9, (3,))
    check_grad(BINARY[name], a, b)


def test_maximum_splits_ties():
    a, b = jt.array([1.0, 2.0]), jt.array([1.0, 3.0])
    ga, gb = jt.grad(jt.maximum(a, b).sum(), [a, b])
    np.testing.assert_array_equal(ga.numpy(), [0.5, 0])
    np.testing.assert_array_equal(gb.numpy(), [0.5, 1])


def test_where_and_clamp_grad(rng):
    data = rng.uniform(-1, 1, (4,))
    check_grad(lambda x: jt.where(x > 0, x * 3, x * x), data)
    check_grad(lambda x: x.clamp(-0.5, 0.5) * x, data)


def test_clamp_and_relu_gradients_at_their_bounds_are_pytorchs():
    """clamp passes the gradient on the closed interval, relu not at 0 (torch's rules,
    checked by hand: finite differences are undefined at the kinks); nan stays nan, and
    clamp passes it no gradient, as torch's."""
    x = jt.array([-1.0, -0.5, 0.0, 0.5, 1.0, float("nan")])
    (clamped,) = jt.grad(x.clamp(-0.5, 0.5).sum(), [x])
    np.testing.assert_array_equal(clamped.numpy(), [0, 1, 1, 1, 0, 0])
    (floored,) = jt.grad(x.clamp(min=-0.5).sum(), [x])
    np.testing.assert_array_equal(floored.numpy(), [0, 1, 1, 1, 1, 0])
    (rectified,) = jt.grad(jt.relu(x).sum(), [x])
    np.testing.assert_array_equal(rectified.numpy()[:5], [0, 0, 0, 1, 1])
    assert np.isnan(x.clamp(-0.5, 0.5).numpy()[5]) and np.isnan(jt.relu(x).numpy()[5])
    np.testing.assert_array_equal(x.clamp(1.0, -1.0).numpy()[:5], [-1.0] * 5)  # low > high: high


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod"])
@pytest.mark.parametrize("dims", [None, 1, (0, 2)])
def test_reduction_grad(name, dims, rng):
    data = rng.uniform(0.5, 1.5, (2, 3, 4))
    check_grad(lambda x: getattr(x, name)(dims=dims) * 1.0, data)


def test_prod_grad_with_zeros():
    for values in ([0.0, 2.0, 3.0], [0.0, 0.0, 3.0], [1.0, 2.0, 3.0]):
        check_grad(lambda x: x.prod(), np.array(values))


def test_norm_var_std_grad(rng):
    data = rng.standard_normal((3, 4))
    check_grad(lambda x: x.norm(), data)
    check_grad(lambda x: x.var(dim=1), data)
    check_grad(lambda x: x.std(), data)


def test_shape_op_grads(rng):
    data = rng.standard_normal((2, 3, 4))
    check_grad(lambda x: x.reshape(6, 4) * jt.arange(4).float64(), data)
    check_grad(lambda x: x.transpose(2, 0, 1)[1:, :, ::-1] * 2, data)
    check_grad(lambda x: jt.concat([x, x * x], dim=1), data)
    check_grad(lambda x: jt.stack([x, x.flip(0)], 0), data)
    check_grad(lambda x: jt.pad(x, (1, 2), mode="reflect") ** 2, data)
    check_grad(lambda x: x.repeat(2, 1, 1) ** 2, data)
    check_grad(lambda x: x.broadcast_to((5, 2, 3, 4)) ** 2, data)
    check_grad(lambda x: x.split(2, dim=2)[1] ** 3, data)


def test_indexing_grads(rng):
    data = rng.standard_normal((3, 4))
    check_grad(lambda x: x[[0, 2, 0]] ** 2, data)
    check_grad(lambda x: x[:, 1] * x[2, :3], data)
    check_grad(lambda x: x[x > 0] ** 2, data)


def test_setitem_grad_flows_to_both():
    x = jt.array([1.0, 2.0, 3.0])
    v = jt.array([10.0])
    y = x * 1
    y[1:2] = v * 2
    gx, gv = jt.grad((y * y).sum(), [x, v])
    np.testing.assert_allclose(gx.numpy(), [2, 0, 6])
    np.testing.assert_allclose(gv.numpy(), [2 * 2 * 20])


def test_reindex_and_reindex_reduce_grads(rng):
    data = rng.standard_normal((4, 3))
    check_grad(lambda x: x.reindex([5, 3], ["i0-1", "i1"], overflow_value=7.0) ** 2, data)
    check_grad(lambda x: x.reindex_reduce("add", [2, 3], ["i0 % 2", "i1"]) ** 2, data)
    check_grad(lambda x: x.reindex_reduce("maximum", [2, 3], ["i0 / 2", "i1"]) * 3, data)
    check_grad(lambda x: x.reindex_reduce("multiply", [2, 3], ["i0 % 2", "i1"]), data)


def test_matmul_grad(rng):
    check_grad(lambda a, b: a @ b, rng.standard_normal((3, 4)), rng.standard_normal((4, 2)))
    check_grad(lambda a, b: a @ b, rng.standard_normal((2, 3, 4)), rng.standard_normal((4,)))


def test_higher_order_derivatives_of_polynomial():
    x = jt.array([0.5, -1.0, 2.0], dtype="float64")
    y = (x ** 4).sum()
    first = jt.grad(y, x)
    second = jt.grad(first.sum(), x)
    third = jt.grad(second.sum(), x)
    data = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(first.numpy(), 4 * data ** 3)
    np.testing.assert_allclose(second.numpy(), 12 * data ** 2)
    np.testing.assert_allclose(third.numpy(), 24 * data)


@pytest.mark.parametrize("function,d1,d2,d3", [
    (jt.sin, np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x)),
    (jt.exp, np.exp, np.exp, np.exp),
    (jt.tanh, lambda x: 1 - np.tanh(x) ** 2, lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2),
     lambda x: (6 * np.tanh(x) ** 2 - 2) * (1 - np.tanh(x) ** 2)),
    (jt.sigmoid, lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2, None, None),
])
def test_higher_order_against_analytic(function, d1, d2, d3):
    data = np.array([-0.7, 0.2, 1.3])
    x = jt.array(data)
    grads = [jt.grad(function(x).sum(), x)]
    for _ in range(2):
        grads.append(jt.grad(grads[-1].sum(), x))
    for computed, analytic in zip(grads, (d1, d2, d3)):
        if analytic is not None:
            np.testing.assert_allclose(computed.numpy(), analytic(data), rtol=1e-10)
    second_numeric = numeric_grad(
        lambda v: jt.grad(function(t := jt.array(v)).sum(), t).sum().item(), data)
    third_numeric = numeric_grad(
        lambda v: jt.grad(jt.grad(function(t := jt.array(v)).sum(), t).sum(), t).sum().item(), data)
    np.testing.assert_allclose(grads[1].numpy(), second_numeric, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(grads[2].numpy(), third_numeric, rtol=1e-4, atol=1e-6)


def test_mixed_second_derivative():
    x, y = jt.array(2.0, dtype="float64"), jt.array(3.0, dtype="float64")
    f = x * x * y + jt.sin(x * y)
    dfdx = jt.grad(f, x)
    d2 = jt.grad(dfdx, y)
    np.testing.assert_allclose(d2.item(), 2 * 2 + np.cos(6) - 6 * np.sin(6))


def test_stop_grad_detach_and_no_grad():
    x = jt.array([1.0, 2.0])
    y = x * 3
    np.testing.assert_array_equal(jt.grad((y.detach() * x).sum(), x).numpy(), [3, 6])
    z = x * 2
    z.stop_grad()
    np.testing.assert_array_equal(jt.grad((z * x).sum(), x).numpy(), [2, 4])
    with jt.no_grad():
        w = x * x
    assert not w.requires_grad
    np.testing.assert_array_equal(jt.grad((w + x).sum(), x).numpy(), [1, 1])


def test_grad_of_unrelated_target_is_zero_and_of_int_loss_raises():
    x, unrelated = jt.array([1.0, 2.0]), jt.array([5.0])
    gx, gu = jt.grad((x * x).sum(), [x, unrelated])
    np.testing.assert_array_equal(gu.numpy(), [0])
    with pytest.raises(jt.MetajitError, match="float loss"):
        jt.grad(jt.array([1, 2]).sum(), x)


def test_grad_after_realisation_and_nonscalar_loss():
    x = jt.array([1.0, 2.0, 3.0])
    y = x * x
    y.sync()
    np.testing.assert_array_equal(jt.grad(y, x).numpy(), [2, 4, 6])


def test_float16_grad_keeps_dtype():
    x = jt.array(np.array([1.0, 2.0], np.float16))
    g = jt.grad((x * x).sum(), x)
    assert g.dtype == "float16"
    np.testing.assert_array_equal(g.numpy(), [2, 4])


def test_vjp_and_jvp(rng):
    data = rng.standard_normal((3,))
    x = jt.array(data)
    out, (pulled,) = jt.vjp(lambda v: v * v, [x], [jt.array([1.0, 2.0, 3.0], dtype="float64")])
    np.testing.assert_allclose(out.numpy(), data ** 2)
    np.testing.assert_allclose(pulled.numpy(), 2 * data * [1, 2, 3])
    out, pushed = jt.jvp(lambda v: jt.sin(v), [x], [jt.ones(3, dtype="float64")])
    np.testing.assert_allclose(pushed.numpy(), np.cos(data))


def test_grads_of_scalars_and_zero_size_dims():
    s = jt.array(2.0)
    assert jt.grad(s * s * s, s).item() == 12.0
    empty = jt.zeros((0, 3))
    g = jt.grad((empty * 2).sum() + (empty.exp()).mean(dims=0).sum(), empty)
    assert g.shape == (0, 3)
    row = jt.array([1.0, 2.0, 3.0])
    g_row = jt.grad((empty + row).sum() + row.sum(), row)
    np.testing.assert_array_equal(g_row.numpy(), [1, 1, 1])


def test_negative_axes_in_grads(rng):
    data = rng.standard_normal((2, 3, 4))
    check_grad(lambda x: x.max(dims=-1) * x.sum(-2).mean(-1, keepdims=True), data)
    check_grad(lambda x: x.unsqueeze(-1).transpose(-1, -3).squeeze(-3) ** 2, data)


def test_non_overlapping_window_gradient_is_a_gather(rng):
    data = rng.standard_normal((2, 6, 5))
    windows = lambda x: x.reindex([2, 3, 2, 2, 2], ["i0", "i1*2+i3", "i2*2+i4"])
    check_grad(lambda x: windows(x).max(dims=(3, 4)) * 2, data)
    x = jt.array(data)
    g = jt.grad(windows(x).sum(), x)
    with jt.debug.record_kernels() as launched:
        g.sync()
    assert all(k.kernel.stores[0].reduce_op is None for k in launched)
    np.testing.assert_array_equal(g.numpy()[:, :, 4], 0)


@pytest.mark.parametrize("case", ["linear", "batched", "3-d permute"])
def test_gradient_of_a_transposed_product_is_summed_in_the_target_layout(case):
    """x @ W.T: W's gradient is the product summed straight into W's (out, in) layout,
    not into W.T's and then read transposed by every consumer."""
    rng = np.random.default_rng(3)
    x_data = rng.standard_normal((5, 7, 6) if case == "batched" else (5, 6))
    w_data = rng.standard_normal((4, 6))
    x, w = jt.array(x_data), jt.array(w_data)
    if case == "3-d permute":
        w3 = jt.array(rng.standard_normal((2, 4, 6)))
        y = (x @ w3.permute(0, 2, 1)).tanh()
        g = jt.grad(y.sum(), w3)
        out = np.tanh(np.einsum("bi,noi->nbo", x_data, w3.numpy()))
        expected = np.einsum("nbo,bi->noi", 1 - out ** 2, x_data)
        target_shape = (2, 4, 6)
    else:
        y = (x @ w.transpose()).tanh()
        g = jt.grad(y.sum(), w)
        out = np.tanh(x_data @ w_data.T)
        expected = (1 - out ** 2).reshape(-1, 4).T @ x_data.reshape(-1, 6)
        target_shape = (4, 6)
    with jt.debug.record_kernels() as launched:
        np.testing.assert_allclose(g.numpy(), expected, rtol=1e-10, atol=1e-10)
    shapes = [tuple(k.kernel.outputs[0][1]) for k in launched if hasattr(k.kernel, "outputs")]
    assert target_shape in shapes and target_shape[::-1] not in shapes


def test_backward_grads_are_plain_values_unless_create_graph(rng):
    """PyTorch's default: after ``loss.backward()`` (and an optimiser step) ``.grad`` holds a
    value with no history, so the step's graph is freed; ``create_graph=True`` keeps it
    differentiable. Oracle: torch.autograd with the same flags."""
    import torch
    data = rng.standard_normal(5).astype(np.float32)
    w = jt.array(data).requires_grad_()
    (w * w * w).sum().backward()
    w.grad.sync()
    assert w.grad._node.inputs == ()  # realised without history
    np.testing.assert_allclose(w.grad.numpy(), 3 * data ** 2, rtol=1e-6)
    v = jt.array(data).requires_grad_()
    (v * v * v).sum().backward(create_graph=True)
    second = jt.grad(v.grad.sum(), v)
    tv = torch.tensor(data, requires_grad=True)
    (tv ** 3).sum().backward(create_graph=True)
    (expected,) = torch.autograd.grad(tv.grad.sum(), tv)
    np.testing.assert_allclose(second.numpy(), expected.numpy(), rtol=1e-5)


def test_optimizer_step_realises_grads_and_frees_the_old_graph():
    from metajit import nn, optim
    model = nn.Linear(4, 3)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = jt.array(np.ones((2, 4), np.float32))
    for _ in range(2):
        optimizer.step(model(x).sum())
    for parameter in model.parameters():
        assert parameter.grad._node.is_realised and parameter.grad._node.inputs == ()
    np.testing.assert_allclose(model.bias.grad.numpy(), [2.0, 2.0, 2.0])


def test_grad_with_respect_to_any_float_var_in_the_graph(rng):
    """Jittor: every float Var is differentiable, even one cast from integers or computed
    from a stopped Var; gradients still stop at the integer and the stopped Var. Oracle:
    torch.autograd.grad with those Vars as leaves."""
    import torch
    ints = rng.integers(-5, 5, 6).astype(np.int32)
    f = jt.array(ints).float32()
    g = (jt.array(ints).float32().stop_grad() * 2.0).sin()
    loss = (f * f * g).sum()
    df, dg = jt.grad(loss, [f, g])
    tf = torch.tensor(ints, dtype=torch.float32, requires_grad=True)
    tg = (torch.tensor(ints, dtype=torch.float32) * 2.0).sin().requires_grad_()
    expected_f, expected_g = torch.autograd.grad((tf * tf * tg).sum(), [tf, tg])
    np.testing.assert_allclose(df.numpy(), expected_f.numpy(), rtol=1e-6)
    np.testing.assert_allclose(dg.numpy(), expected_g.numpy(), rtol=1e-6)
    stopped = jt.array(rng.standard_normal(3).astype(np.float32)).stop_grad()
    assert not jt.grad(((stopped * 3.0) ** 2).sum(), stopped).numpy().any()
    matrix = jt.ones((3, 2)).stop_grad()
    scaled, product = stopped * stopped, stopped @ matrix  # the graph builders' fast paths, stopped inputs
    np.testing.assert_allclose(jt.grad((scaled * scaled).sum(), scaled).numpy(), 2 * scaled.numpy(), rtol=1e-6)
    np.testing.assert_allclose(jt.grad((product * product).sum(), product).numpy(), 2 * product.numpy(),
                               rtol=1e-6)
