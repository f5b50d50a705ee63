"""Merging contiguous loop axes: which pairs merge, and the merged kernel computing what
numpy computes (run by the reference interpreter, and by the cpu backend end to end)."""
import numpy as np
import pytest

import metajit as jt
from metajit.backends.reference.interpreter import run_kernel
from metajit.passes import fusion
from metajit.toolkit import axis_merge


def kernels_of(*variables):
    return [step.kernel for step in fusion.plan([v._node for v in variables]).steps if step.kernel is not None]


def run(kernel, inputs):
    buffers = [np.ascontiguousarray(a).reshape(-1).view(np.uint8).copy() for a in inputs]
    outputs = [np.zeros(int(np.prod(shape)) * dtype.itemsize, np.uint8) for dtype, shape in kernel.outputs]
    run_kernel(kernel, buffers, outputs, ())
    return [o.view(d.numpy) for o, (d, _) in zip(outputs, kernel.outputs)]


def silu(x, s):
    return x * x.sigmoid()


def channel_scale(x, s):  # a squeeze-excitation multiply: s is (n, c, 1, 1)
    return x * s


def transposed_sum(x, s):
    return x + x.transpose(0, 1, 3, 2)


def channel_sums(x, s):
    return x.sum((2, 3))


CASES = {  # (function, merged domain, numpy oracle)
    silu: ((1, 3 * 5 * 7, 1, 1), lambda x, s: x / (1 + np.exp(-x))),
    channel_scale: ((1, 3, 5 * 7, 1), lambda x, s: x * s),
    transposed_sum: ((1, 3, 7, 7), lambda x, s: x + x.transpose(0, 1, 3, 2)),
    channel_sums: ((1, 3, 7, 7), lambda x, s: x.sum((2, 3))),  # reductions are left as they are
}


@pytest.mark.parametrize("make", list(CASES), ids=lambda f: f.__name__)
def test_contiguous_pairs_merge_and_the_kernel_computes_the_same(make, rng):
    shape = (1, 3, 7, 7) if make in (transposed_sum, channel_sums) else (1, 3, 5, 7)
    data = rng.standard_normal(shape).astype(np.float32)
    scale = rng.standard_normal((1, 3, 1, 1)).astype(np.float32)
    jt.set_device("reference")
    try:
        (kernel,) = kernels_of(make(jt.array(data), jt.array(scale)))
    finally:
        jt.set_device("cpu")
    merged = axis_merge.merge_contiguous_axes(kernel)
    expected_domain, oracle = CASES[make]
    assert merged.domain == expected_domain
    if merged is kernel:
        return
    inputs = [data if s == data.shape else scale for _, s in kernel.inputs]
    (before,), (after,) = run(kernel, inputs), run(merged, inputs)
    np.testing.assert_array_equal(after, before)
    np.testing.assert_allclose(after.reshape(before.shape), oracle(data, scale).reshape(-1), rtol=1e-6)
    result = make(jt.array(data), jt.array(scale))  # the cpu backend renders the merged kernel
    np.testing.assert_allclose(result.numpy(), oracle(data, scale), rtol=1e-5, atol=1e-6)


def test_an_index_value_over_the_pair_blocks_the_merge(rng):
    x = jt.array(rng.standard_normal((4, 6)).astype(np.float32))
    jt.set_device("reference")
    try:
        (kernel,) = kernels_of(x.triu())
    finally:
        jt.set_device("cpu")
    assert axis_merge.merge_contiguous_axes(kernel) is kernel
    np.testing.assert_array_equal(x.triu().numpy(), np.triu(x.numpy()))
