"""OpenBLAS products on the kernels' threads: every operand/output layout and both split
directions against numpy, batches, float64, and the numpy fallback."""
import numpy as np
import pytest

import metajit as jt
from metajit.backends.cpu import blas, onednn

needs_blas = pytest.mark.skipif(not blas.available(), reason="scipy-openblas32 not installed")


def strided(rng, shape, layout, dtype=np.float32):
    """An array of ``shape`` stored row-major, column-major or with padded rows."""
    if layout == "row":
        return rng.standard_normal(shape).astype(dtype)
    if layout == "column":
        return rng.standard_normal(shape[::-1]).astype(dtype).T
    padded = rng.standard_normal((shape[0], shape[1] + 3)).astype(dtype)
    return padded[:, 1:shape[1] + 1]


@needs_blas
@pytest.mark.parametrize("a_layout", ["row", "column", "padded"])
@pytest.mark.parametrize("b_layout", ["row", "column", "padded"])
@pytest.mark.parametrize("out_layout", ["row", "column"])
@pytest.mark.parametrize("m,k,n", [(7, 5, 3), (1, 9, 4), (6, 1, 1), (9, 8, 1), (1, 1, 1), (33, 17, 65),
                                   (150, 120, 70), (60, 130, 200)])
def test_gemm_matches_numpy_for_every_layout(rng, a_layout, b_layout, out_layout, m, k, n):
    a, b = strided(rng, (m, k), a_layout), strided(rng, (k, n), b_layout)
    out = np.full((m, n), np.nan, np.float32) if out_layout == "row" else np.full((n, m), np.nan, np.float32).T
    blas.gemm(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-4, atol=1e-4)


@needs_blas
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("m,k,n", [(37, 300, 500), (500, 300, 37), (16, 4096, 16), (1, 300, 3000), (3000, 300, 1)])
def test_products_split_across_threads_cover_every_block(rng, monkeypatch, threads, m, k, n):
    monkeypatch.setattr(jt.flags, "num_threads", threads)
    a = strided(rng, (m, k), "column", np.float64)
    b = strided(rng, (k, n), "row", np.float64)
    out = np.full((m, n), np.nan)
    blas.gemm(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-10)


@needs_blas
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transposed", [True, False], ids=["weight-transposed", "weight-as-stored"])
@pytest.mark.parametrize("m,k,n", [(2, 40, 301), (8, 4099, 70), (16, 33, 100), (5, 7, 64), (3, 16, 5),
                                   (301, 40, 2), (70, 4099, 8), (100, 33, 13), (17, 64, 300), (9, 5, 47)])
def test_fully_connected_products_with_few_rows_match_float64(rng, monkeypatch, threads, dtype, transposed, m, k, n):
    """A row-major A times a weight with 2 to 16 rows (or columns) of C: read transposed (a
    Linear's forward) it runs as dot products of stored rows, read as stored (its input
    gradient) as combinations of the weight's rows. Every block size, a k that is no
    multiple of the vector width, column counts between vector widths, rows that start
    unaligned (padded), both split directions."""
    monkeypatch.setattr(jt.flags, "num_threads", threads)
    a = strided(rng, (m, k), "padded", dtype)
    weight = strided(rng, (n, k), "padded", dtype).T if transposed else strided(rng, (k, n), "padded", dtype)
    out = np.full((m, n), np.nan, dtype)
    blas.gemm(a, weight, out)
    exact = a.astype(np.float64) @ weight.astype(np.float64)
    tolerance = (1e-5 if dtype == np.float32 else 1e-13) * np.sqrt(k)
    np.testing.assert_allclose(out, exact, rtol=tolerance, atol=tolerance)


@needs_blas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_shape,b_shape", [
    ((4, 6, 5), (5, 3)), ((4, 6, 5), (4, 5, 3)), ((1, 6, 5), (4, 5, 3)), ((2, 1, 6, 5), (3, 5, 2)),
    ((300, 1, 10), (300, 10, 1)), ((3, 64, 40), (3, 40, 64)),
])
def test_batched_gemm_broadcasts_like_numpy(rng, dtype, a_shape, b_shape):
    a = rng.standard_normal(a_shape).astype(dtype)
    b = rng.standard_normal(b_shape).astype(dtype)
    expected = a @ b
    out = np.empty(expected.shape, dtype)
    blas.batched_gemm(a, b, out)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@needs_blas
def test_gemm_with_empty_reduction_gives_zeros():
    out = np.full((3, 2), np.nan, np.float32)
    blas.gemm(np.zeros((3, 0), np.float32), np.zeros((0, 2), np.float32), out)
    assert (out == 0).all()


def test_matmul_falls_back_to_numpy_without_openblas(rng, monkeypatch):
    monkeypatch.setitem(blas._state, "library", None)
    a = rng.standard_normal((2, 9, 7)).astype(np.float32)
    b = rng.standard_normal((7, 4)).astype(np.float32)
    product = jt.array(a) @ jt.array(b)
    np.testing.assert_allclose(product.numpy(), a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose((jt.array(a).transpose(0, 2, 1) @ jt.array(a)).numpy(),
                               a.transpose(0, 2, 1) @ a, rtol=1e-5, atol=1e-5)


def test_numpy_chosen_by_environment(monkeypatch):
    monkeypatch.setitem(blas._state, "library", blas._UNLOADED)
    monkeypatch.setenv("METAJIT_BLAS", "numpy")
    assert not blas.available()


def test_onednn_disabled_by_environment(monkeypatch):
    monkeypatch.setattr(onednn, "_library", onednn._UNLOADED)
    monkeypatch.setenv("METAJIT_ONEDNN_LIBRARY", "0")
    assert onednn.library() is None


@needs_blas
@pytest.mark.parametrize("expression", ["a @ b", "a.transpose() @ c", "(a @ b).transpose()",
                                        "batch @ b", "batch.transpose(0, 2, 1) @ batch", "a @ a.transpose()"])
def test_products_replay_their_plan_on_new_buffers(rng, expression):
    """A product's driver calls are recorded once per kernel and replayed on whatever
    buffers the next realisation gives it."""
    from metajit.backends.cpu import library
    programs = set()
    original, original_native = library.MatmulProgram.__call__, library.MatmulProgram.native_calls

    def spying(program, inputs, outputs, parameters):
        programs.add(program)
        original(program, inputs, outputs, parameters)

    def spying_native(program, inputs, outputs):  # replays through the cpu backend's launcher
        programs.add(program)
        return original_native(program, inputs, outputs)

    library.MatmulProgram.__call__ = spying
    library.MatmulProgram.native_calls = spying_native
    try:
        for _ in range(3):
            arrays = {"a": rng.standard_normal((40, 30)), "b": rng.standard_normal((30, 50)),
                      "c": rng.standard_normal((40, 20)), "batch": rng.standard_normal((3, 40, 30))}
            arrays = {name: value.astype(np.float32) for name, value in arrays.items()}
            ours = eval(expression, {}, {name: jt.array(value) for name, value in arrays.items()})
            theirs = eval(expression.replace(".transpose()", ".T"), {}, arrays)
            np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-4, atol=1e-4)
    finally:
        library.MatmulProgram.__call__ = original
        library.MatmulProgram.native_calls = original_native
    assert programs and all(program.plan is not None for program in programs)


def test_a_linear_on_a_sequence_and_its_weight_gradient_are_single_products(rng):
    """(batch, time, in) @ (in, out) runs as one (batch * time, in) product, so the
    weight's gradient sums over one axis and is one product too, not a 4-d reduction."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 7, 5)).astype(np.float32)
    w = rng.standard_normal((3, 5)).astype(np.float32)
    g = rng.standard_normal((4, 7, 3)).astype(np.float32)
    ours, weight = jt.array(x), jt.array(w)
    with jt.debug.record_kernels() as launched:
        out = jt.nn.functional.linear(ours, weight)
        grad_x, grad_w = jt.grad((out * jt.array(g)).sum(), [ours, weight])
        jt.sync([out, grad_x, grad_w])
    products = [k.kernel for k in launched if getattr(k.kernel, "name", None) == "matmul"]
    assert len(products) == 3 and all(not p.attrs.batch for p in products)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    (torch.nn.functional.linear(tx, tw) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(out.numpy(), torch.nn.functional.linear(tx, tw).detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(grad_x.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad_w.numpy(), tw.grad.numpy(), rtol=1e-5, atol=1e-6)
