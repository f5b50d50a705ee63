"""Kernel analysis against brute force: kernel classes, per-load strides, tile footprints,
32-bit index safety, and scatters rewritten as reductions computing the same values."""
import itertools

import numpy as np
import pytest

import metajit as jt
from metajit.ir import dtypes, indexexpr, kernel as K
from metajit.passes import fusion
from metajit.backends.reference.interpreter import run_kernel
from metajit.toolkit import analysis


@pytest.fixture(autouse=True)
def reference_device():
    previous = jt.get_device()
    jt.set_device("reference")
    yield
    jt.set_device(previous)


def kernels_of(*variables):
    return [step.kernel for step in fusion.plan([v._node for v in variables]).steps if step.kernel is not None]


def test_classify_elementwise_reduction_and_scatter(rng):
    x = jt.array(rng.standard_normal((4, 5)).astype(np.float32))
    (elementwise,) = kernels_of(x.exp() + 1)
    assert analysis.classify(elementwise).kind == "elementwise"
    (rows,) = kernels_of(x.sum(1))
    shape = analysis.classify(rows)
    assert (shape.kind, shape.reduce_op, shape.kept_axes, shape.reduced_axes) == ("reduction", "sum", (0,), (1,))
    assert (shape.kept_size, shape.reduced_size) == (4, 5)
    labels = jt.array(np.array([2, 0, 2, 1], np.int32))
    (scattered,) = kernels_of(x.reindex_reduce("add", [3, 5], ["@e0(i0)", "i1"], extras=[labels]))
    assert analysis.classify(scattered).kind == "scatter"


def brute_force_offsets(kernel, load):
    slot, index = load.args
    shape = kernel.inputs[slot][1]
    strides = analysis.row_major_strides(shape)
    offsets = {}
    for point in itertools.product(*(range(n) for n in kernel.domain)):
        coordinates = [int(indexexpr.evaluate(e, [np.int64(p) for p in point])) for e in index]
        offsets[point] = sum(c * s for c, s in zip(coordinates, strides))
    return offsets


def test_load_strides_contiguity_and_broadcast_match_brute_force(rng):
    a = jt.array(rng.standard_normal((6, 4)).astype(np.float32))
    b = jt.array(rng.standard_normal((4,)).astype(np.float32))
    (kernel,) = kernels_of(a.transpose(1, 0) * b.reshape(4, 1) + a.transpose(1, 0)[:, ::-1])
    accesses = analysis.load_accesses(kernel)
    assert len(accesses) == 3
    for access, load in zip(accesses, analysis.loads(kernel)):
        offsets = brute_force_offsets(kernel, load)
        for point, offset in offsets.items():
            assert offset == access.offset + sum(s * p for s, p in zip(access.strides, point))
        assert not access.data_dependent and access.in_bounds
    by_slot = {(a.slot, a.strides): a for a in accesses}
    transposed = [a for a in accesses if a.strides == (1, 4)]
    assert transposed and transposed[0].contiguous_axis is None  # innermost loop axis steps by 4
    broadcast = [a for a in accesses if a.broadcast_axes == (1,)]
    assert broadcast and broadcast[0].strides == (1, 0) and broadcast[0].contiguous_axis == 0
    assert len(by_slot) == 3


def test_gathers_are_data_dependent_and_padded_reads_not_in_bounds(rng):
    x = jt.array(rng.standard_normal(10).astype(np.float32))
    index = jt.array(np.array([3, 1, 4], np.int32))
    (kernel,) = kernels_of(x[index] * 2)
    gather = [a for a in analysis.load_accesses(kernel) if a.data_dependent]
    assert gather and gather[0].strides is None
    padded = x.reindex([12], ["i0 - 1"], overflow_value=0.0)
    (kernel,) = kernels_of(padded + 1)
    assert [a.in_bounds for a in analysis.load_accesses(kernel)] == [False]


def test_tile_footprint_equals_brute_force(rng):
    x = jt.array(rng.standard_normal((1, 2, 9, 9)).astype(np.float32))
    windows = x.reindex([1, 2, 4, 4, 3, 3], ["i0", "i1", "i2*2+i4", "i3*2+i5"])  # 3x3 windows, stride 2
    (kernel,) = kernels_of(windows.max([4, 5]))
    (load,) = analysis.loads(kernel)
    tile = [(0, 1), (1, 2), (1, 3), (0, 2), (0, 3), (0, 3)]
    points = itertools.product(*(range(start, stop) for start, stop in tile))
    seen = np.array([[int(indexexpr.evaluate(e, [np.int64(p) for p in point])) for e in load.args[1]]
                     for point in points])
    expected = tuple((int(low), int(high)) for low, high in zip(seen.min(0), seen.max(0)))
    assert analysis.footprint(kernel, load, tile) == expected
    assert analysis.index_bounds(load.args[1][2], tile) == (2, 6)


def test_fits_int32():
    i = indexexpr.loop
    small = K.Kernel((64, 64), [(dtypes.float32, (64, 64))], [(dtypes.float32, (64, 64))],
                     [K.Store(0, (i(0), i(1)), K.load(0, (i(0), i(1)), dtypes.float32))])
    assert analysis.fits_int32(small)
    huge = K.Kernel((1 << 16, 1 << 16), [(dtypes.float32, (1 << 16, 1 << 16))],
                    [(dtypes.float32, (1 << 16, 1 << 16))],
                    [K.Store(0, (i(0), i(1)), K.load(0, (i(0), i(1)), dtypes.float32))])
    assert not analysis.fits_int32(huge)
    scaled = K.Kernel((1000,), [(dtypes.float32, (1000,))], [(dtypes.float32, (1000,))],
                      [K.Store(0, (i(0),), K.load(0, ((i(0) * 5_000_000) % 1000,), dtypes.float32))])
    assert not analysis.fits_int32(scaled)  # an intermediate product passes 2**31


def run(kernel, inputs, parameters=()):
    buffers = [np.ascontiguousarray(a).reshape(-1).view(np.uint8).copy() for a in inputs]
    outputs = [np.zeros(int(np.prod(shape)) * dtype.itemsize, np.uint8) for dtype, shape in kernel.outputs]
    run_kernel(kernel, buffers, outputs, parameters)
    return [o.view(d.numpy).reshape(s) for o, (d, s) in zip(outputs, kernel.outputs)]


def block_sums(x, rng):
    """2x2 block sums written as Jittor would: a scatter through floor divisions."""
    return x.reindex_reduce("add", [2, 3, 2, 3], ["i0", "i1", "i2/2", "i3/2"])


def nearest_upsampling_gradient(x, rng):
    out = jt.nn.interpolate(x, scale_factor=2, mode="nearest")
    return jt.grad((out * jt.array(rng.standard_normal(out.shape).astype(np.float32))).sum(), x)


@pytest.mark.parametrize("make", [block_sums, nearest_upsampling_gradient], ids=lambda f: f.__name__)
def test_floor_division_scatters_become_equal_reductions(make, rng):
    x = jt.array(rng.standard_normal((2, 3, 4, 6)).astype(np.float32))
    scatters = [k for k in kernels_of(make(x, rng)) if analysis.classify(k).kind == "scatter"]
    assert len(scatters) == 1
    (kernel,) = scatters
    rewritten = analysis.as_reduction(kernel)
    assert rewritten is not None and analysis.classify(rewritten).kind == "reduction"
    inputs = [rng.standard_normal(shape).astype(dtype.numpy) for dtype, shape in kernel.inputs]
    parameters = tuple(0.25 for _ in kernel.parameters)
    (expected,) = run(kernel, inputs, parameters)
    (actual,) = run(rewritten, inputs, parameters)
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)
    if make is block_sums:  # numpy oracle for the original meaning
        blocks = inputs[0].reshape(2, 3, 2, 2, 3, 2).sum((3, 5))
        np.testing.assert_allclose(actual, blocks, rtol=1e-5, atol=1e-6)


def test_other_kernels_are_not_rewritten(rng):
    x = jt.array(rng.standard_normal((4, 6)).astype(np.float32))
    (kernel,) = kernels_of(x.sum(1))
    assert analysis.as_reduction(kernel) is None


@pytest.mark.parametrize("case", ["plain", "transposed_a", "transposed_b", "batched", "broadcast_batch",
                                  "matrix_vector", "vector_matrix"])
def test_matmul_attrs_describe_the_product_as_strides(case, rng):
    """The strides in `MatmulAttrs`, applied to the raw buffers with numpy, give the product
    numpy computes (the oracle) for every layout ``a @ b`` and its gradients produce."""
    shapes = {"plain": ((5, 3), (3, 4)), "transposed_a": ((3, 5), (3, 4)), "transposed_b": ((5, 3), (4, 3)),
              "batched": ((2, 5, 3), (2, 3, 4)), "broadcast_batch": ((5, 3), (2, 3, 4)),  # ((2, 5, 3) @ (3, 4): 2-d
              "matrix_vector": ((5, 3), (3,)), "vector_matrix": ((3,), (3, 4))}[case]
    a_data, b_data = (rng.standard_normal(s).astype(np.float32) for s in shapes)
    a, b = jt.array(a_data), jt.array(b_data)
    left = a.transpose(1, 0) if case == "transposed_a" else a
    right = b.transpose(1, 0) if case == "transposed_b" else b
    product = left @ right
    (kernel,) = [k for k in kernels_of(product) if analysis.matmul_attrs(k) is not None]
    attrs = analysis.matmul_attrs(kernel)
    flat = {attrs.a_slot: a_data.reshape(-1), attrs.b_slot: b_data.reshape(-1)}
    if attrs.a_slot != attrs.b_slot and kernel.inputs[attrs.a_slot][1] != a_data.shape:
        flat = {attrs.a_slot: b_data.reshape(-1), attrs.b_slot: a_data.reshape(-1)}
    out = np.zeros(int(np.prod(kernel.outputs[0][1])), np.float32)
    for index in np.ndindex(*attrs.batch, attrs.m, attrs.n):
        *batch, m, n = index
        total = 0.0
        for k in range(attrs.k):
            a_offset = sum(i * s for i, s in zip(batch + [m, k], attrs.a_strides))
            b_offset = sum(i * s for i, s in zip(batch + [k, n], attrs.b_strides))
            total += flat[attrs.a_slot][a_offset] * flat[attrs.b_slot][b_offset]
        out[sum(i * s for i, s in zip(batch + [m, n], attrs.c_strides))] = total
    expected = np.matmul(a_data.T if case == "transposed_a" else a_data,
                         b_data.T if case == "transposed_b" else b_data)
    np.testing.assert_allclose(out.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)
    assert analysis.as_matmul_call(kernel).name == "matmul"


def test_reads_in_place_only_for_element_wise_reads_at_the_written_position():
    f32 = dtypes.float32
    loops = (indexexpr.loop(0), indexexpr.loop(1))
    swapped = (indexexpr.loop(1), indexexpr.loop(0))
    square = [(f32, (4, 4)), (f32, (4, 4))]

    def kernel(value, stores=None):
        return K.Kernel((4, 4), square, [(f32, (4, 4))], stores or [K.Store(0, loops, value)])
    update = K.apply("sub", [K.load(0, loops, f32), K.load(1, loops, f32)], f32)
    assert analysis.reads_in_place(kernel(update), 0) and analysis.reads_in_place(kernel(update), 1)
    transposed = K.apply("sub", [K.load(0, swapped, f32), K.load(1, loops, f32)], f32)
    assert not analysis.reads_in_place(kernel(transposed), 0)
    assert analysis.reads_in_place(kernel(transposed), 1)
    total = K.Store(0, (indexexpr.loop(0), indexexpr.const(0)), K.load(0, loops, f32), reduce_op="sum")
    assert not analysis.reads_in_place(kernel(None, [total]), 0)
