"""jt.code on template_accel: the cpu_src runs on the cpu backend and its values move to
the accelerator (and back) like any Var used on another device."""
import numpy as np

import metajit as jt


def test_code_outputs_feed_accelerator_kernels_and_gradients(rng):
    x = rng.standard_normal(64).astype(np.float32)
    value = jt.array(x)
    doubled = jt.code(value.shape, value.dtype, [value * 3],
                      cpu_src="for (int i=0;i<in0_shape0;i++) @out(i) = @in0(i) * 2;",
                      cpu_grad_src=["for (int i=0;i<in0_shape0;i++) @out(i) = @dout(i) * 2;"])
    np.testing.assert_allclose(jt.exp(doubled).numpy(), np.exp(6 * x), rtol=1e-5)
    (grad,) = jt.grad(doubled.sum(), [value])
    np.testing.assert_allclose(grad.numpy(), np.full(64, 6.0))
