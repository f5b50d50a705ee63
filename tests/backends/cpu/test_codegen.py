"""What the cpu backend generates and runs: OpenMP loops, BLAS matmul, threads, plan cache."""
import os

import numpy as np
import pytest

import metajit as jt
from metajit.passes import fusion


def launched_by(var):
    with jt.debug.record_kernels() as launched:
        var.sync()
    return launched


def test_fused_elementwise_kernel_is_parallel_and_vectorised(rng):
    a, b, c = (jt.array(rng.standard_normal(1 << 16).astype(np.float32)) for _ in range(3))
    y = (a * b + c).relu() * 0.5
    (kernel,) = launched_by(y)
    assert "#pragma omp parallel for simd" in kernel.source
    assert kernel.device == "cpu"
    np.testing.assert_allclose(y.numpy(), np.maximum(a.numpy() * b.numpy() + c.numpy(), 0) * 0.5,
                               rtol=1e-6)


def test_reductions_use_register_accumulators_or_partials(rng):
    data = rng.standard_normal((300, 200)).astype(np.float32)
    x = jt.array(data)
    (rows,) = launched_by(x.sum(1))
    assert "lanes[l]" in rows.source  # interleaved float partials per block, folded into a double
    np.testing.assert_allclose(x.sum(1).numpy(), data.sum(1, dtype=np.float64), rtol=1e-5, atol=1e-5)
    (columns,) = launched_by(x.sum(0))
    assert "partial" in columns.source
    np.testing.assert_allclose(x.sum(0).numpy(), data.sum(0), rtol=1e-4)
    np.testing.assert_allclose(x.sum().item(), data.sum(dtype=np.float64), rtol=1e-4)


@pytest.mark.parametrize("a_shape,b_shape,transpose_a,transpose_b", [
    ((64, 32), (32, 48), False, False), ((32, 64), (32, 48), True, False),
    ((64, 32), (48, 32), False, True), ((3, 16, 8), (3, 8, 4), False, False),
    ((16, 8), (8,), False, False), ((8,), (8, 5), False, False), ((2, 16, 8), (8, 4), False, False),
])
def test_matmul_runs_as_a_library_kernel(rng, a_shape, b_shape, transpose_a, transpose_b):
    a_data = rng.standard_normal(a_shape).astype(np.float32)
    b_data = rng.standard_normal(b_shape).astype(np.float32)
    a, b = jt.array(a_data), jt.array(b_data)
    a_operand = a.transpose(-1, -2) if transpose_a else a
    b_operand = b.transpose(-1, -2) if transpose_b else b
    product = a_operand @ b_operand
    launched = launched_by(product)
    assert [k.source for k in launched] == [None]
    expected = (a_data.swapaxes(-1, -2) if transpose_a else a_data) @ (
        b_data.swapaxes(-1, -2) if transpose_b else b_data)
    np.testing.assert_allclose(product.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_matmul_gradients_run_as_library_kernels(rng):
    a = jt.array(rng.standard_normal((32, 16)).astype(np.float32))
    b = jt.array(rng.standard_normal((16, 8)).astype(np.float32))
    ga, gb = jt.grad(((a @ b).tanh()).sum(), [a, b])
    with jt.debug.record_kernels() as launched:
        jt.sync_all()
        ga.sync(), gb.sync()
    assert sum(k.source is None for k in launched) >= 2
    upstream = 1 - np.tanh(a.numpy() @ b.numpy()) ** 2
    np.testing.assert_allclose(ga.numpy(), upstream @ b.numpy().T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gb.numpy(), a.numpy().T @ upstream, rtol=1e-4, atol=1e-5)


def test_matmul_of_fused_producer_materialises_operand(rng):
    x = jt.array(rng.standard_normal((8, 4)).astype(np.float32))
    w = jt.array(rng.standard_normal((4, 3)).astype(np.float32))
    y = x.relu() @ w
    launched = launched_by(y)
    assert len(launched) == 2 and launched[1].source is None
    np.testing.assert_allclose(y.numpy(), np.maximum(x.numpy(), 0) @ w.numpy(), rtol=1e-5)


def test_thread_count_flag_gives_same_results(rng):
    data = rng.standard_normal(1 << 17).astype(np.float32)
    saved = jt.flags.num_threads
    try:
        jt.flags.num_threads = 1
        single = (jt.array(data).exp() * 2).sum().item()
        jt.flags.num_threads = 2
        double = (jt.array(data).exp() * 2).sum().item()
    finally:
        jt.flags.num_threads = saved
    assert single == pytest.approx(double, rel=1e-5)
    assert single == pytest.approx(float(np.exp(data.astype(np.float64)).sum() * 2), rel=1e-4)


def test_constants_are_parameters_so_one_kernel_serves_every_value():
    x = jt.array(np.arange(4, dtype=np.float32))
    (first,) = launched_by(x * 2.0 + 1.0)
    (second,) = launched_by(x * 7.0 + 3.0)
    assert first.kernel == second.kernel
    np.testing.assert_array_equal((x * 7.0 + 3.0).numpy(), np.arange(4) * 7 + 3)


def test_repeated_step_skips_fusion(monkeypatch, rng):
    w = jt.array(rng.standard_normal((8, 4)).astype(np.float32))

    def step():
        loss = ((w.exp() * 3).sum(1) ** 2).mean()
        grad = jt.grad(loss, w)
        grad.sync()
        return grad

    step()
    step()  # the first step also uploads w, so its graph differs from later ones
    calls = []
    original = fusion._fuse
    monkeypatch.setattr(fusion, "_fuse", lambda *a: calls.append(1) or original(*a))
    for _ in range(3):
        step()
    assert calls == []


@pytest.mark.parametrize("dtype", ["float16", "int8", "uint8", "int16", "int64", "bool"])
def test_small_dtypes_compile_and_match_reference(dtype, rng):
    data = rng.integers(0, 3, size=(5, 7)).astype(dtype)
    x = jt.array(data)
    if dtype == "bool":
        y = (x | jt.array(data.T).transpose()).any(1)
        expected = (data | data).any(1)
    else:
        y = (x * 3 + x).max(1)
        expected = (data * 3 + data).max(1)
    np.testing.assert_array_equal(y.numpy(), expected)


def test_kernels_with_identical_source_in_one_batch_compile_once(rng):
    # a size-1 axis read through a loop index or a constant 0 renders identically
    x = jt.array(rng.standard_normal((1, 4)).astype(np.float32))
    first = x + 1.0
    second = jt.broadcast_to(x[0], (1, 4)) + 1.0
    jt.sync_all()
    np.testing.assert_array_equal(first.numpy(), second.numpy())


def _vectorised_lines(source, tmp_path):
    """Source lines (1-based, within ``source``) of the loops GCC reports it vectorised."""
    import importlib
    import re
    import subprocess

    from metajit.toolkit import codegen, host_compiler
    compiler = importlib.import_module("metajit.backends.cpu.compiler")  # the package's `compiler` is a function
    prelude = codegen.prelude()
    unit = tmp_path / "kernel.cpp"
    unit.write_text(prelude + "\n" + source)
    result = subprocess.run(host_compiler.compiler_command() + list(compiler.FLAGS) + [
        "-fopt-info-vec-optimized", str(unit), "-o", str(tmp_path / "kernel.so")],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    offset = prelude.count("\n") + 1
    return {int(m.group(1)) - offset for m in re.finditer(r"kernel\.cpp:(\d+):\d+: optimized: loop vectorized",
                                                          result.stderr)}


@pytest.mark.skipif("g++" not in os.environ.get("CXX", "g++"), reason="reads GCC's vectoriser report")
def test_comparisons_in_float_kernels_vectorise(rng, tmp_path):
    # GCC refuses to vectorise a loop with `bool` locals next to floats: relu's gradient
    # (x > 0) * g ran 5x slower than the forward before comparisons got int locals
    x = jt.array(rng.standard_normal((64, 256)).astype(np.float32))
    g = jt.array(rng.standard_normal((64, 256)).astype(np.float32))
    cases = [(x > 0).float32() * g, jt.where(x > g, x, g * 2), ((x > 0) & (g < 1)).float32() + x]
    for var in cases:
        (kernel,) = launched_by(var)
        simd_loops = [n + 2 for n, line in enumerate(kernel.source.splitlines()) if "#pragma omp simd" in line]
        vectorised = _vectorised_lines(kernel.source, tmp_path)
        assert simd_loops and all(any(n + k in vectorised for k in range(4)) for n in simd_loops), kernel.source
    np.testing.assert_array_equal(cases[0].numpy(), (x.numpy() > 0) * g.numpy())


@pytest.mark.skipif("g++" not in os.environ.get("CXX", "g++"), reason="reads GCC's vectoriser report")
def test_pooling_over_a_fused_affine_chain_vectorises(rng, tmp_path):
    # -fno-trapping-math (tried for selects) made GCC vectorise only the 2x2 window and
    # not the loop over output columns: eval-mode conv-bn-relu-pool ran 2x slower
    x = jt.array(rng.standard_normal((32, 32, 32, 32)).astype(np.float32))  # the bench convnet's shape
    variance = jt.array(rng.random(32).astype(np.float32) + 0.5)
    scale = (1.0 / (variance + 1e-5).sqrt()).reshape(1, 32, 1, 1)
    pooled = jt.nn.max_pool2d((x * scale + 0.5).relu(), 2)
    (kernel,) = launched_by(pooled)
    assert len(_vectorised_lines(kernel.source, tmp_path)) >= 2, kernel.source  # the fill and the pool loop


def test_short_window_sums_accumulate_plainly_and_exactly(rng):
    data = rng.standard_normal((64, 32, 2, 2)).astype(np.float32)
    x = jt.array(data)
    (kernel,) = launched_by(x.sum((2, 3)))
    assert "lanes" not in kernel.source and "simd reduction" not in kernel.source, kernel.source
    # four float adds: within an ulp of the inputs' scale of the exact sum
    np.testing.assert_allclose(x.sum((2, 3)).numpy(), data.sum((2, 3), dtype=np.float64), rtol=1e-6, atol=1e-6)
    long_rows = rng.standard_normal((8, 3, 5000)).astype(np.float32)  # still blocked, in double
    np.testing.assert_allclose(jt.array(long_rows).sum((1, 2)).numpy(), long_rows.sum((1, 2), dtype=np.float64),
                               rtol=1e-6)


@pytest.mark.parametrize("shape", [(8, 16, 56, 56), (4, 32, 7, 7), (2, 8, 300, 33)])
def test_sums_over_short_rows_keep_a_lane_per_row_position(shape, rng):
    """BatchNorm-style statistics (over batch and both spatial axes) whose rows are short or
    not a whole number of lanes: one float lane per row position, folded into double
    (`renderer._row_lanes`); against numpy in float64, within float rounding of the
    magnitudes summed, also with a large offset (a float chain over all values would drift
    far past that)."""
    data = rng.standard_normal(shape).astype(np.float32)
    for values in (data, data + np.float32(1e4)):
        x = jt.array(values)
        (kernel,) = launched_by(x.sum((0, 2, 3)))
        assert f"float lanes[{shape[3]}]" in kernel.source, kernel.source
        exact = values.sum((0, 2, 3), dtype=np.float64)
        scale = np.abs(values).sum((0, 2, 3), dtype=np.float64)  # float partials of at most 32 values each
        assert np.all(np.abs(x.sum((0, 2, 3)).numpy() - exact) <= 1e-6 * scale)


@pytest.mark.parametrize("op", ["max", "min"])
def test_float_max_min_reductions_propagate_nan_through_the_flag(op, rng):
    data = rng.standard_normal((6, 5, 7, 33)).astype(np.float32)
    data[1, 2, 3, 4] = np.nan
    data[4, 0, 0, 32] = np.nan
    data[2, 1] = -np.inf if op == "max" else np.inf
    x = jt.array(data)
    for axes in [(3,), (2, 3), (1, 2, 3)]:
        got = getattr(x, op)(axes).numpy()
        np.testing.assert_array_equal(got, getattr(data, op)(axes))  # nan where numpy has nan
    torch = pytest.importorskip("torch")
    windows = jt.nn.max_pool2d(x, 3, 2, 1).numpy()
    np.testing.assert_array_equal(windows, torch.nn.functional.max_pool2d(torch.from_numpy(data), 3, 2, 1).numpy())


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_window_reductions_vectorise_across_output_columns(pool, rng):
    torch = pytest.importorskip("torch")
    data = rng.standard_normal((2, 3, 37, 41)).astype(np.float32)
    data[0, 1, 5, 7] = np.nan
    x = jt.array(data)
    ours = getattr(jt.nn, f"{pool}_pool2d")(x, 3, 2, 1)
    (kernel,) = [k for k in launched_by(ours) if any(store.reduce_op for store in k.kernel.stores)]
    assert "acc[" in kernel.source, kernel.source  # one accumulator per output column
    theirs = getattr(torch.nn.functional, f"{pool}_pool2d")(torch.from_numpy(data), 3, 2, 1)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)


def test_floor_division_scatters_render_as_reductions_without_atomics(rng):
    """The gradient of nearest upsampling is a scatter through ``i // 2``; the cpu backend
    renders it as a reduction (toolkit.analysis.as_reduction). Oracle: torch's gradient."""
    import torch
    data = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    upstream = rng.standard_normal((2, 3, 10, 12)).astype(np.float32)
    x = jt.array(data)
    gradient = jt.grad((jt.nn.interpolate(x, scale_factor=2, mode="nearest") * jt.array(upstream)).sum(), x)
    launched = launched_by(gradient)
    assert launched and all("omp atomic" not in (k.source or "") for k in launched)
    tx = torch.tensor(data, requires_grad=True)
    (torch.nn.functional.interpolate(tx, scale_factor=2, mode="nearest") * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(gradient.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_overlapping_window_gradients_scatter_in_parallel_without_atomics(rng):
    """A 3x3 stride-2 max pooling's gradient scatters into windows that overlap; its batch
    and channel loops write disjoint planes, so they run in parallel with plain adds.
    Oracle: torch's gradient (normal data: no ties within a window)."""
    import torch
    data = rng.standard_normal((2, 8, 13, 15)).astype(np.float32)
    upstream = rng.standard_normal((2, 8, 7, 8)).astype(np.float32)
    x = jt.array(data)
    gradient = jt.grad((jt.nn.max_pool2d(x, 3, 2, 1) * jt.array(upstream)).sum(), x)
    (scatter,) = [k for k in launched_by(gradient) if k.kernel.outputs[0][1] == data.shape]
    assert "collapse(2)" in scatter.source and "omp atomic" not in scatter.source, scatter.source
    tx = torch.tensor(data, requires_grad=True)
    (torch.nn.functional.max_pool2d(tx, 3, 2, 1) * torch.tensor(upstream)).sum().backward()
    np.testing.assert_allclose(gradient.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["add", "maximum"])
def test_scatters_with_a_disjoint_loop_run_it_in_parallel(op, rng):
    """``out[i0, (3*i1) % 5]``: rows never collide, so the row loop is parallel even for
    an operator with no atomic form. Oracle: numpy's unbuffered ufunc.at."""
    data = rng.standard_normal((32, 12)).astype(np.float32)
    scattered = jt.array(data).reindex_reduce(op, [32, 5], ["i0", "(3*i1)%5"])
    (kernel,) = launched_by(scattered)
    assert "collapse(1)" in kernel.source and "omp atomic" not in kernel.source, kernel.source
    expected = np.full((32, 5), 0.0 if op == "add" else -np.inf, np.float32)
    rows = np.repeat(np.arange(32), 12)
    getattr(np, op).at(expected, (rows, np.tile((3 * np.arange(12)) % 5, 32)), data.ravel())
    np.testing.assert_allclose(scattered.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("shape,axis", [((1, 5, 9, 14), 1), ((2, 7, 3, 10), 2), ((4, 3, 5), 0)])
def test_concat_reads_one_input_per_inner_run(rng, shape, axis):
    """A concat's select tree is tested once per inner run (a case per piece), so each
    inner loop loads only its own piece; a consumer fused after it still sees every piece."""
    sizes = [2, 5, 1, 3, 4, 2]
    arrays = []
    for size in sizes:
        piece = list(shape)
        piece[axis] = size
        arrays.append(rng.standard_normal(piece).astype(np.float32))
    y = (jt.concat([jt.array(a) for a in arrays], axis) * 2.0 + 1.0).relu()
    (kernel,) = launched_by(y)
    np.testing.assert_allclose(y.numpy(), np.maximum(np.concatenate(arrays, axis) * 2 + 1, 0), rtol=1e-6)
    loop_indices = [line.split()[2] for line in kernel.source.splitlines() if line.strip().startswith("for (")]
    assert loop_indices.count(loop_indices[-1]) == len(sizes)  # the outer loops, then one inner loop per piece


def test_concat_along_the_inner_axis_keeps_one_body(rng):
    arrays = [rng.standard_normal((3, size)).astype(np.float32) for size in (4, 2, 5)]
    y = jt.concat([jt.array(a) for a in arrays], 1) + 1.0
    (kernel,) = launched_by(y)
    assert kernel.source.count("for (") == 2
    np.testing.assert_allclose(y.numpy(), np.concatenate(arrays, 1) + 1, rtol=1e-6)


@pytest.mark.parametrize("shape,axes,dtype", [
    ((8, 16, 56, 56), (0, 2, 3), np.float32),   # BatchNorm statistics: a lane per row position, partial outputs
    ((40, 2048), (1,), np.float32),             # blocked float lanes, parallel over the kept rows
    ((1000, 64), (0,), np.float32),             # no innermost reduced axis: private partial outputs
    ((1 << 17,), (0,), np.float32),             # everything into one value: a parallel reduction clause
    ((300, 200), (1,), np.float64),             # not widened: a SIMD reduction clause
    ((50, 70), (1,), np.int32),
])
def test_sibling_sums_accumulate_in_one_loop_nest(shape, axes, dtype, rng):
    """Sums of one domain reading one input become one kernel with an accumulator (lanes,
    partial outputs) per sum (`fusion._sibling_reductions`, `renderer._reduce_together`);
    each against numpy in float64."""
    data = (rng.standard_normal(shape) * 3).astype(dtype)
    x = jt.array(data)
    shifted = x - x.reshape(-1)[0]
    with jt.debug.record_kernels() as launched:
        total, squares = jt.fetch_sync([shifted.sum(axes), (shifted * shifted).sum(axes)])
    (kernel,) = [k for k in launched if len(k.kernel.outputs) == 2]
    assert all(store.reduce_op == "sum" for store in kernel.kernel.stores)
    assert "acc1" in kernel.source or "partial1" in kernel.source, kernel.source  # the second accumulator
    d = data.astype(np.float64) - data.reshape(-1)[0]
    tolerance = {np.float32: 1e-5, np.float64: 1e-12, np.int32: 0}[dtype]
    np.testing.assert_allclose(total, d.sum(axes), rtol=tolerance, atol=tolerance * np.abs(d).sum(axes).max())
    np.testing.assert_allclose(squares, (d * d).sum(axes), rtol=tolerance)


def test_sibling_products_and_logical_reductions_share_a_kernel(rng):
    data = rng.uniform(0.5, 1.5, (40, 20)).astype(np.float32)
    x = jt.array(data)
    with jt.debug.record_kernels() as launched:
        product, half = jt.fetch_sync([x.prod(1), (x * 0.5).prod(1)])
        high, low = jt.fetch_sync([(x > 1.4).any(1), (x < 0.6).any(1)])
    assert sum(len(k.kernel.outputs) == 2 for k in launched) == 2
    np.testing.assert_allclose(product, data.astype(np.float64).prod(1), rtol=1e-5)
    np.testing.assert_allclose(half, (data.astype(np.float64) * 0.5).prod(1), rtol=1e-5)
    np.testing.assert_array_equal(high, (data > 1.4).any(1))
    np.testing.assert_array_equal(low, (data < 0.6).any(1))


@pytest.mark.parametrize("shape,axes", [((8, 16, 56, 56), (0, 2, 3)), ((40, 2048), (1,)), ((1000, 64), (0,)),
                                        ((1 << 17,), (0,)), ((30, 20, 7), (1, 2))])
def test_a_reduction_kernel_stores_the_value_it_sums_for_later_readers(shape, axes, rng):
    """A value summed by two reductions and read by a later kernel is stored by the
    reductions' loop nest as it passes (`fusion._siblings` over a reduction), not by a
    kernel of its own read back: one kernel with the two sums and the full-size value."""
    data = rng.standard_normal(shape).astype(np.float32)
    x = jt.array(data)
    grown = (x * 0.5).exp()
    with jt.debug.record_kernels() as launched:
        total, weighted, doubled = jt.fetch_sync([grown.sum(axes), (grown * x).sum(axes), grown * 2.0])
    (kernel,) = [k for k in launched if len(k.kernel.outputs) == 3]
    assert [store.reduce_op for store in kernel.kernel.stores].count("sum") == 2
    assert shape in [tuple(s) for _, s in kernel.kernel.outputs]
    exact = np.exp(data.astype(np.float64) * 0.5)
    np.testing.assert_allclose(total, exact.sum(axes), rtol=1e-5)
    np.testing.assert_allclose(weighted, (exact * data).sum(axes), rtol=1e-5, atol=1e-5 * np.abs(exact * data).sum(axes).max())
    np.testing.assert_allclose(doubled, exact * 2, rtol=1e-6)


@pytest.mark.parametrize("op", ["max", "min"])
def test_a_max_reduction_stores_the_value_it_reduces_in_the_same_loops(op, rng):
    """A float max (min) beside the element-wise value it reduces: one loop nest with its
    nan flag (`renderer._reduce_together`), nan propagating as numpy's."""
    data = rng.standard_normal((6, 40, 50)).astype(np.float32)
    data[2, 3, 4] = np.nan
    x = jt.array(data)
    grown = (x * 0.5).exp()
    with jt.debug.record_kernels() as launched:
        extreme, doubled = jt.fetch_sync([getattr(grown, op)((0, 2)), grown * 2.0])
    (kernel,) = [k for k in launched if len(k.kernel.outputs) == 2]
    assert "nan_seen" in kernel.source and "out1[" in kernel.source
    exact = np.exp(data.astype(np.float64) * 0.5)
    np.testing.assert_allclose(extreme, getattr(exact, op)((0, 2)), rtol=1e-6)  # nan in column 3
    np.testing.assert_allclose(doubled, exact * 2, rtol=1e-6)


def test_float_exp_is_within_one_ulp_and_keeps_expfs_special_values():
    """The vectorised float exp of the host prelude (`mj_host_expf`) against the correctly
    rounded value (numpy in float64, rounded once): every exponent's range, subnormal
    results, overflow, and the special values."""
    bits = np.arange(0, 2 ** 32, 4099, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = np.concatenate([x[np.isfinite(x) & (np.abs(x) < 110)],
                        np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72283, 88.72284, -87.33655,
                                  -103.97207, -103.97208, -104.5], np.float32)])
    got = jt.array(x).exp().numpy()
    with np.errstate(over="ignore"):
        expected = np.exp(x.astype(np.float64)).astype(np.float32)
    finite = np.isfinite(expected)
    ulps = np.abs(got[finite].view(np.int32).astype(np.int64) - expected[finite].view(np.int32).astype(np.int64))
    assert ulps.max() <= 1
    np.testing.assert_array_equal(got[~finite], expected[~finite])
    sigmoid = jt.array(np.array([-200.0, -20.0, 0.0, 20.0, 200.0, np.nan], np.float32)).sigmoid().numpy()
    with np.errstate(over="ignore"):
        expected = (1 / (1 + np.exp(-np.array([-200.0, -20.0, 0.0, 20.0, 200.0, np.nan])))).astype(np.float32)
    np.testing.assert_allclose(sigmoid, expected, rtol=1e-6)


def _ulps(got, expected):
    return np.abs(got.view(np.int32).astype(np.int64) - expected.view(np.int32).astype(np.int64))


@pytest.mark.parametrize("name", ["erf", "tanh"])
def test_float_erf_and_tanh_are_within_two_ulps_and_keep_the_special_values(name):
    """The vectorised float erf and tanh of the host prelude (`mj_host_erff`, `mj_host_tanhf`;
    checked exhaustively to 1.25 and 1.05 ulp when written) against torch in float64 rounded
    once, on floats of every exponent, both signs, and the special values."""
    import torch
    bits = np.arange(0, 2 ** 32, 4099, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = np.concatenate([x[np.isfinite(x)], np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 0.875, -0.875, 3.92,
                                                      4.0, 9.01, 10.0, 1e-40, -1e-40], np.float32)])
    got = getattr(jt.array(x), name)().numpy()
    expected = getattr(torch, name)(torch.from_numpy(x.astype(np.float64))).numpy().astype(np.float32)
    finite = np.isfinite(x)
    assert _ulps(got[finite], expected[finite]).max() <= 2
    np.testing.assert_array_equal(np.signbit(got[finite]), np.signbit(expected[finite]))
    np.testing.assert_array_equal(got[~finite], expected[~finite])


@pytest.mark.skipif("g++" not in os.environ.get("CXX", "g++"), reason="reads GCC's vectoriser report")
@pytest.mark.parametrize("shape", [(1000,), (3, 5000), (7, 7, 3072)])
def test_small_and_short_outer_elementwise_kernels_vectorise(shape, rng, tmp_path):
    # GCC 12 leaves a `parallel for simd` loop scalar when its `if` clause is a false constant:
    # GELU on a (7, 7, 3072) feature map ran one float at a time (2.5 ms against 0.2 vectorised)
    data = rng.standard_normal(shape).astype(np.float32) * 3
    x = jt.array(data)
    y = x * 0.5 * (1 + (x * 0.7071067811865476).erf()) + x.tanh()
    (kernel,) = launched_by(y)
    simd_loops = [n + 2 for n, line in enumerate(kernel.source.splitlines()) if "omp simd" in line
                  or "parallel for simd" in line]
    vectorised = _vectorised_lines(kernel.source, tmp_path)
    assert simd_loops and all(any(n + k in vectorised for k in range(4)) for n in simd_loops), kernel.source
    import torch
    t = torch.from_numpy(data)
    np.testing.assert_allclose(y.numpy(), torch.nn.functional.gelu(t) + torch.tanh(t), rtol=1e-5, atol=1e-6)
