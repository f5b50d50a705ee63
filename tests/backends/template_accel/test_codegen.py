"""What template_accel generates: DMA into NRAM before any compute, vector intrinsics,
double buffering, and a clear error when a tile cannot fit."""
import re

import numpy as np
import pytest

import metajit as jt
from metajit.backends.template_accel import renderer
from metajit.backends.template_accel.renderer import AccelRenderer
from metajit.errors import MetajitCodegenError
from metajit.toolkit import codegen

DMA_CALL = re.compile(r"__memcpy(_async)?\(|mj_dma_read\(|__bang_atomic_reduce_\w+\(")
BUFFER = re.compile(r"\b(in|out)\d+\b")


def launched_by(*variables):
    with jt.debug.record_kernels() as launched:
        jt.sync_all() if not variables else [v.sync() for v in variables]
    return launched


def compute_lines(source):
    """The entry's lines (not its signature, not the host stub)."""
    entry = source[source.index("__mlu_entry__"):source.index('extern "C"')]
    return entry.splitlines()[1:]


def assert_gdram_only_through_dma(source):
    lines = compute_lines(source)
    assert "__nram__ char nram_buffer[" in lines[0]
    touching = [line for line in lines if BUFFER.search(line)]
    assert touching, "the kernel never moves its data"
    for line in touching:
        assert DMA_CALL.search(line), f"compute reads or writes GDRAM directly: {line.strip()}"
    assert "GDRAM2NRAM" in source and ("NRAM2GDRAM" in source or "__bang_atomic_reduce_" in source)


def programs(rng):
    """``(Var, numpy/torch result)`` pairs covering each kernel kind: element-wise with a
    broadcast, row/column/full reductions, a gather, a scatter (its gradient), a padded
    convolution (clamped window loads)."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((6, 50)).astype(np.float32)
    bias = rng.standard_normal(50).astype(np.float32)
    index = rng.integers(0, 6, size=9).astype(np.int32)
    rows = rng.standard_normal((9, 50)).astype(np.float32)
    image = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    tx, tb, ti = jt.array(x), jt.array(bias), jt.array(index)
    scattered = np.zeros_like(x)
    np.add.at(scattered, index, rows)
    want_conv = torch.nn.functional.conv2d(torch.from_numpy(image), torch.from_numpy(weight), padding=1).numpy()
    return [((tx * tb + 1).relu(), np.maximum(x * bias + 1, 0)),
            (tx.sum(1), x.sum(1)), (tx.max(0), x.max(0)), (tx.sum(), x.sum()),
            (tx[ti], x[index]),
            (jt.grad((tx[ti] * jt.array(rows)).sum(), tx), scattered),
            (jt.nn.conv2d(jt.array(image), jt.array(weight), padding=1), want_conv)]


def test_every_kernel_reads_and_writes_gdram_only_by_dma(rng):
    for variable, expected in programs(rng):
        launched = launched_by(variable)
        assert launched and all(k.device == "template_accel" for k in launched)
        for kernel in launched:
            if kernel.source is not None:
                assert_gdram_only_through_dma(kernel.source)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_float32_maps_to_vector_intrinsics_and_other_dtypes_to_scalar_loops(rng):
    a, b, c = (jt.array(rng.standard_normal(300).astype(np.float32)) for _ in range(3))
    (kernel,) = launched_by((a * b + c).relu().exp())
    for intrinsic in ("__bang_mul(", "__bang_add(", "__bang_maxequal_scalar(", "__bang_active_exp("):
        assert intrinsic in kernel.source
    i, j = (jt.array(rng.integers(-50, 50, 300).astype(np.int32)) for _ in range(2))
    result = i * j + 3
    (kernel,) = launched_by(result)
    assert not re.search(r"__bang_(add|mul|sub)", kernel.source)
    assert "for (mj_i64 j = 0; j < n; ++j)" in kernel.source
    np.testing.assert_array_equal(result.numpy(), i.numpy() * j.numpy() + 3)


def kernel_of(variable):
    (launched,) = launched_by(variable)
    return launched.kernel


def test_loads_are_double_buffered_when_two_copies_fit(rng):
    x = jt.array(rng.standard_normal((64, 256)).astype(np.float32))
    kernel = kernel_of(x * 2 + 1)
    source = codegen.render_kernel(AccelRenderer, kernel, "k")
    assert "for (mj_i64 s = 0; s <= steps; ++s)" in source  # issue step s, compute step s - 1
    assert "__memcpy_async(ld0[p]" in source
    forms = set()
    for capacity in range(4096, 63, -64):
        small = type("Small", (AccelRenderer,), {"NRAM_CAPACITY": capacity})
        try:
            text = codegen.render_kernel(small, kernel, "k")
        except MetajitCodegenError:
            continue
        forms.add("double" if "s <= steps" in text else "single")
    assert forms == {"double", "single"}


def test_a_kernel_whose_smallest_tile_does_not_fit_is_rejected_clearly(rng):
    values = [jt.array(rng.standard_normal(100).astype(np.float32)) for _ in range(8)]
    total = values[0]
    for value in values[1:]:
        total = total * value + value
    kernel = kernel_of(total)
    tiny = type("Tiny", (AccelRenderer,), {"NRAM_CAPACITY": 1024})
    with pytest.raises(MetajitCodegenError, match=r"needs \d+ bytes of NRAM .* more than the 1024-byte NRAM") as error:
        codegen.render_kernel(tiny, kernel, "k")
    assert "kernel domain=(100,)" in str(error.value)


@pytest.mark.parametrize("capacity", [1536, 3072])
def test_small_scratchpads_tile_every_kernel_kind_correctly(rng, monkeypatch, capacity):
    """Many tiles per row, partial last tiles, single- and double-buffered pipelines."""
    monkeypatch.setattr(AccelRenderer, "NRAM_CAPACITY", capacity)
    shape = (7, 301 + capacity // 512)  # shapes unique per capacity: no kernel reused from another test
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.standard_normal(shape[1]).astype(np.float32)
    index = rng.integers(0, shape[0], 40).astype(np.int32)
    tx, ty, ti = jt.array(x), jt.array(y), jt.array(index)
    checks = [((tx - ty).abs() * 3, np.abs(x - y) * 3), (tx.sum(1), x.sum(1)), (tx.sum(0), x.sum(0)),
              (tx.min(), x.min()), (tx[ti].mean(0), x[index].mean(0))]
    for variable, expected in checks:
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-4, atol=1e-4)
    gradient = jt.grad(tx[ti].sum(), tx)
    np.testing.assert_allclose(gradient.numpy(), np.bincount(index, minlength=shape[0])[:, None]
                               * np.ones(shape, np.float32))


def test_target_constants_are_in_one_place():
    assert AccelRenderer.NRAM_CAPACITY == renderer.NRAM_CAPACITY == 512 * 1024
    assert renderer.TASK_DIM >= 2


@pytest.mark.parametrize("shape,axis", [((60000,), None), ((3, 9000), 1), ((9000, 2), 0)])
def test_reductions_with_few_outputs_are_split_across_tasks(rng, shape, axis):
    data = rng.standard_normal(shape).astype(np.float32)
    x = jt.array(data)
    for reduce, oracle in (("sum", np.sum), ("max", np.max), ("min", np.min)):
        result = getattr(x, reduce)(axis) if axis is not None else getattr(x, reduce)()
        (kernel,) = launched_by(result)
        assert "__sync_all();" in kernel.source and "__bang_atomic_reduce_" in kernel.source
        assert_gdram_only_through_dma(kernel.source)
        np.testing.assert_allclose(result.numpy(), oracle(data.astype(np.float64), axis=axis), rtol=1e-4, atol=1e-3)


def test_reductions_with_many_outputs_write_each_output_once(rng):
    data = rng.standard_normal((64, 300)).astype(np.float32)
    (kernel,) = launched_by(jt.array(data).sum(1))
    assert "__bang_atomic" not in kernel.source and "__sync_all" not in kernel.source
