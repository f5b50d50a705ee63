"""jt.numpy_code: numpy callbacks as operators, with optional gradients."""
import numpy as np

import metajit as jt


def test_jittor_example_one_output_with_gradient(rng):
    def forward(np, data):
        a = data["inputs"][0]
        np.add(a, a, out=data["outputs"][0])

    def backward(np, data):
        np.copyto(data["outputs"][0], data["dout"] * 2.0)
    x = rng.standard_normal((5, 1)).astype(np.float32)
    a = jt.array(x)
    b = jt.numpy_code(a.shape, a.dtype, [a], forward, [backward])
    np.testing.assert_allclose(b.numpy(), 2 * x)
    (grad,) = jt.grad((b * jt.array(x)).sum(), [a])
    np.testing.assert_allclose(grad.numpy(), 2 * x, rtol=1e-6)


def test_two_outputs_with_out_index_and_user_data(rng):
    def forward(np, data):
        a, b = data["inputs"]
        c, d = data["outputs"]
        np.add(a, b, out=c)
        np.subtract(a, b, out=d)
        c *= data["gain"]

    def backward_a(np, data):
        scale = data["gain"] if data["out_index"] == 0 else 1.0
        np.copyto(data["outputs"][0], data["dout"] * scale)

    def backward_b(np, data):
        if data["out_index"] == 0:
            np.copyto(data["outputs"][0], data["dout"] * data["gain"])
        else:
            np.negative(data["dout"], data["outputs"][0])
    x, y = rng.standard_normal(4), rng.standard_normal(4)
    a, b = jt.array(x), jt.array(y)
    c, d = jt.numpy_code([a.shape, a.shape], [a.dtype, a.dtype], [a, b], forward, [backward_a, backward_b],
                         data={"gain": 3.0})
    np.testing.assert_allclose(c.numpy(), 3 * (x + y))
    np.testing.assert_allclose(d.numpy(), x - y)
    ga, gb = jt.grad((c * 2).sum() + (d * 5).sum(), [a, b])
    np.testing.assert_allclose(ga.numpy(), np.full(4, 11.0))
    np.testing.assert_allclose(gb.numpy(), np.full(4, 1.0))


def test_pout_and_lazy_inputs(rng):
    def forward(np, data):
        np.exp(data["inputs"][0], out=data["outputs"][0])

    def backward(np, data):
        np.multiply(data["dout"], data["pout"], out=data["outputs"][0])
    x = rng.standard_normal(6)
    a = jt.array(x)
    out = jt.numpy_code(a.shape, a.dtype, [a * 2], forward, [backward])
    np.testing.assert_allclose((out + 1).numpy(), np.exp(2 * x) + 1, rtol=1e-12)
    (grad,) = jt.grad(out.sum(), [a])
    np.testing.assert_allclose(grad.numpy(), 2 * np.exp(2 * x), rtol=1e-12)
