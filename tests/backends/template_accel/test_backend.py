"""template_accel as a whole: conformance, the digits demo, independent graphs in threads."""
import numpy as np
import pytest

import metajit as jt
from metajit.conformance import runner
from tests.threads import run_in_threads


def test_conformance_smoke_tier_passes():
    results, _ = runner.run("template_accel", "smoke", None, 20261202, None, [], None)
    failed = [f"{r.name}: {r.message}\n{r.snippet}" for r in results if r.status == "failed"]
    assert not failed, "\n\n".join(failed)
    assert sum(r.status == "passed" for r in results) >= 45


@pytest.mark.slow
def test_conformance_standard_tier_passes():
    results, _ = runner.run("template_accel", "standard", None, 12, None, [], None)
    failed = [f"{r.name}: {r.message}\n{r.snippet}" for r in results if r.status == "failed"]
    assert not failed, "\n\n".join(failed)
    assert not [r.name for r in results if r.status == "unsupported"]


@pytest.mark.slow  # 24 s on two cores; the conformance smoke tier covers the kernels in the default run
def test_the_digits_demo_learns_on_the_emulated_accelerator(capsys):
    pytest.importorskip("sklearn")
    from metajit.examples import train_digits
    accuracy = train_digits.main(epochs=2)
    assert accuracy >= 0.97
    assert "device template_accel" in capsys.readouterr().out


def test_independent_graphs_in_threads(rng):
    data = [rng.standard_normal((40, 70)).astype(np.float32) for _ in range(4)]

    def work(k):
        jt.set_device("template_accel")
        x = jt.array(data[k])
        for _ in range(5):
            value = ((x * (k + 1)).exp().sum(1) / 70).log()
        return value.numpy()
    results = run_in_threads(work, 4)
    for k in range(4):
        expected = np.log(np.exp(data[k].astype(np.float64) * (k + 1)).sum(1) / 70)
        np.testing.assert_allclose(results[k], expected, rtol=1e-4)


@pytest.mark.parametrize("a_shape,b_shape,transpose_a", [((5, 7), (7, 4), False), ((3, 5, 7), (7, 4), False),
                                                         ((2, 7, 5), (2, 7, 4), True), ((1, 6), (6, 1), False)])
def test_matrix_products_run_in_the_device_library(rng, a_shape, b_shape, transpose_a):
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape).astype(np.float32)
    x, w = jt.array(a), jt.array(b)
    product = (x.transpose(0, 2, 1) if transpose_a else x) @ w
    with jt.debug.record_kernels() as launched:
        product.sync()
    assert [k.source for k in launched] == [None]  # a library call, not a generated kernel
    want = (a.transpose(0, 2, 1) if transpose_a else a) @ b
    np.testing.assert_allclose(product.numpy(), want, rtol=1e-5, atol=1e-5)
    torch = pytest.importorskip("torch")
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    ((ta.transpose(1, 2) if transpose_a else ta) @ tb).square().sum().backward()
    ga, gb = jt.grad(product.sqr().sum(), [x, w])
    np.testing.assert_allclose(ga.numpy(), ta.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gb.numpy(), tb.grad.numpy(), rtol=1e-4, atol=1e-4)
