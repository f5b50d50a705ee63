"""jt.Function: user-written gradients, checked by finite differences and Jittor's examples."""
import numpy as np
import pytest

import metajit as jt
from metajit import Function


class MulDiv(Function):
    def execute(self, x, y):
        self.x, self.y = x, y
        return x * y, x / y

    def grad(self, grad0, grad1):
        dx = dy = None
        if grad0 is not None:
            dx, dy = grad0 * self.y, grad0 * self.x
        if grad1 is not None:
            dx = (0 if dx is None else dx) + grad1 / self.y
            dy = (0 if dy is None else dy) - grad1 * self.x / (self.y * self.y)
        return dx, dy


def test_jittor_example_multiple_outputs():
    class MyFunc(Function):
        def execute(self, x, y):
            self.x, self.y = x, y
            return x * y, x / y

        def grad(self, grad0, grad1):
            return grad0 * self.y, grad1 * self.x
    a, b = jt.array(3.0), jt.array(4.0)
    c, d = MyFunc()(a, b)
    da, db = jt.grad(c + d * 3, [a, b])
    assert da.item() == 4 and db.item() == 9


def test_an_output_without_gradient_gets_none():
    class MyFunc(Function):
        def execute(self, x, y):
            self.x, self.y = x, y
            return x * y, x / y

        def grad(self, grad0, grad1):
            assert grad1 is None
            return grad0 * self.y, None
    a, b = jt.array(3.0), jt.array(4.0)
    c, d = MyFunc()(a, b)
    d.stop_grad()
    da, db = jt.grad(c + d * 3, [a, b])
    assert da.item() == 4 and db.item() == 0


def test_gradients_match_finite_differences(rng):
    x, y = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    weights = rng.standard_normal(6)

    def loss(a, b):
        product, quotient = MulDiv.apply(a, b)
        return (product * jt.array(weights) + jt.sin(quotient)).sum()
    va, vb = jt.array(x), jt.array(y)
    ga, gb = jt.grad(loss(va, vb), [va, vb])
    eps = 1e-6
    for value, grad, which in ((x, ga, 0), (y, gb, 1)):
        expected = np.zeros(6)
        for k in range(6):
            plus, minus = value.copy(), value.copy()
            plus[k] += eps
            minus[k] -= eps
            args_plus = (plus, y) if which == 0 else (x, plus)
            args_minus = (minus, y) if which == 0 else (x, minus)
            expected[k] = (loss(*map(jt.array, args_plus)).item() - loss(*map(jt.array, args_minus)).item()) / (2 * eps)
        np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-5, atol=1e-8)


def test_the_forward_graph_is_not_differentiated():
    class StraightThrough(Function):
        def execute(self, x):
            return jt.round(x)

        def grad(self, g):
            return g
    x = jt.array([0.2, 1.7, -0.6])
    np.testing.assert_array_equal(StraightThrough()(x).numpy(), [0, 2, -1])
    (grad,) = jt.grad((StraightThrough()(x) * jt.array([1.0, 2.0, 3.0])).sum(), [x])
    np.testing.assert_array_equal(grad.numpy(), [1, 2, 3])


def test_non_var_arguments_and_training_with_optim_step():
    class Scale(Function):
        def execute(self, x, factor):
            self.factor = factor
            return x * factor

        def grad(self, g):
            return g * self.factor, None
    model = jt.nn.Linear(3, 1)
    optimizer = jt.optim.SGD(model.parameters(), lr=0.1)
    inputs = jt.array(np.eye(3, dtype=np.float32))
    target = jt.array([[1.0], [2.0], [3.0]])
    losses = []
    for _ in range(50):
        loss = ((Scale.apply(model(inputs), 2.0) - target) ** 2).mean()
        optimizer.step(loss)
        losses.append(loss.item())
    assert losses[-1] < 1e-3 < losses[0]


def test_wrong_gradient_count_is_a_clear_error():
    class Broken(Function):
        def execute(self, x, y):
            return x + y

        def grad(self, g):
            return g
    x, y = jt.array([1.0]), jt.array([2.0])
    with pytest.raises(jt.MetajitValueError, match="returned 1 gradients for 2 execute arguments"):
        jt.grad(Broken()(x, y).sum(), [x, y])


def test_second_order_through_a_differentiable_grad():
    class Cube(Function):
        def execute(self, x):
            self.x = x
            return x * x * x

        def grad(self, g):
            return g * 3 * self.x * self.x
    x = jt.array([1.5, -2.0])
    (first,) = jt.grad(Cube()(x).sum(), [x])
    np.testing.assert_allclose(first.numpy(), 3 * np.array([1.5, -2.0]) ** 2, rtol=1e-6)
    (second,) = jt.grad(first.sum(), [x])
    np.testing.assert_allclose(second.numpy(), 6 * np.array([1.5, -2.0]), rtol=1e-6)


def test_the_arguments_are_not_kept_alive_by_the_function():
    """Only what ``execute`` saves stays alive: a value the caller dropped is not counted
    as held (a held value is stored at each read), and wrong gradient shapes still name
    the argument's shape."""
    class Double(Function):
        def execute(self, x):
            return x * 2.0

        def grad(self, grad):
            return grad * 2.0

    a = jt.array(np.ones((8, 8), np.float32))
    a.requires_grad = True
    inner = (a @ a).exp()
    exp_node = inner._node
    out = Double()(inner)
    del inner
    out.sum().sync()
    assert exp_node.buffer is None  # inlined into the sum, as without the Function
    np.testing.assert_allclose(jt.grad(out.sum(), a).numpy(), np.full((8, 8), 2.0 * 2 * 8 * np.exp(8.0)),
                               rtol=1e-5)
