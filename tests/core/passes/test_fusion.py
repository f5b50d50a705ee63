"""Fusion: what becomes one kernel, what is materialised, and fused == unfused results."""
import numpy as np
import pytest

import metajit as jt
from metajit import plugins
from metajit.passes import fusion
from metajit.toolkit import analysis


def kernels_of(var):
    with jt.debug.record_kernels() as launched:
        var.sync()
    return launched


def test_elementwise_chain_with_broadcast_is_one_kernel(rng):
    a, b = jt.array(rng.standard_normal((4, 5))), jt.array(rng.standard_normal((5,)))
    c = jt.array(rng.standard_normal((4, 1)))
    launched = kernels_of(((a * b + c).relu() * 0.5))
    assert len(launched) == 1
    assert launched[0].kernel.domain == (4, 5)


def test_reduction_fuses_its_producers_and_epilogue_is_separate(rng):
    a = jt.array(rng.standard_normal((3, 4)))
    launched = kernels_of((a.exp() * 2).sum(1) + 1)
    assert len(launched) == 2
    reduction = launched[0].kernel
    assert reduction.stores[0].reduce_op == "sum" and reduction.domain == (3, 4)


def test_reindex_reads_fuse_into_consumers(rng):
    x = jt.array(rng.standard_normal((4, 6)))
    y = x.transpose()[1:, ::2] * 3 + x.flip(0).transpose()[1:, ::2]
    launched = kernels_of(y)
    assert len(launched) == 1
    np.testing.assert_allclose(y.numpy(), x.numpy().T[1:, ::2] * 3 + x.numpy()[::-1].T[1:, ::2])


def test_shared_expensive_producer_is_materialised_once(rng):
    x = jt.array(rng.standard_normal((8,)))
    shared = x.exp()
    y = shared * 2 + shared.sin()
    launched = kernels_of(y)
    assert len(launched) == 1
    z = shared.sum() + shared.max()
    launched = kernels_of(z)
    # stored once: by a kernel of its own, or beside the sum that reads it
    # (`FusionCosts.shared_reduction_loops`), then loaded by the max
    assert sum((8,) in [shape for _, shape in k.kernel.outputs] for k in launched) == 1
    assert len(launched) in (3, 4)


def test_out_of_range_reindex_reads_become_selects(rng):
    x = jt.array(np.arange(4.0))
    padded = jt.pad(x, (1, 1), value=-5.0) * 2
    launched = kernels_of(padded)
    assert "select" in str(launched[0].kernel)
    np.testing.assert_array_equal(padded.numpy(), [-10, 0, 2, 4, 6, -10])
    assert "select" not in str(kernels_of(x[1:3] * 2)[0].kernel)


def test_fused_equals_unfused_on_random_graph(rng):
    data = [rng.standard_normal((3, 4)) for _ in range(3)]

    def program(a, b, c):
        t = (a * b).tanh() + c.transpose().reshape(3, 4)
        u = jt.where(t > 0, t.exp(), -t) - a.sum(1, keepdims=True)
        return (u.flip(1)[:, 1:] ** 2).mean(0) + b.max()

    fused = program(*(jt.array(d) for d in data)).numpy()
    jt.flags.lazy_execution = 0
    try:
        unfused = program(*(jt.array(d) for d in data)).numpy()
    finally:
        jt.flags.lazy_execution = 1
    np.testing.assert_allclose(fused, unfused, rtol=1e-12)


def test_plan_is_pure_data():
    x = jt.array([1.0, 2.0]) * 2
    plan = fusion.plan([x._node])
    assert len(plan.steps) == 1
    assert hash(plan.steps[0].kernel) == hash(fusion.plan([x._node]).steps[0].kernel)
    assert "mul" in str(plan.steps[0].kernel)


def test_eager_mode_realises_each_op():
    jt.flags.lazy_execution = 0
    try:
        x = jt.array([1.0, 2.0]) + 1
        assert x._node.buffer is not None
    finally:
        jt.flags.lazy_execution = 1


def test_stored_reshape_shares_its_source_buffer_but_tiles_do_not(rng):
    x = jt.array(rng.standard_normal((4, 6)))
    y = (x * 2).reshape(3, 8)
    launched = kernels_of(y)
    assert len(launched) == 1
    np.testing.assert_array_equal(y.numpy(), (x.numpy() * 2).reshape(3, 8))
    tiled = jt.array([1, 2]).repeat(2, 2)
    np.testing.assert_array_equal(tiled.numpy(), [[1, 2, 1, 2], [1, 2, 1, 2]])


def test_one_cheap_op_over_a_stored_input_is_recomputed_not_stored(rng):
    """x - mean(x) feeding two kernels (BatchNorm's centring) is recomputed in both: no
    kernel writes it, and the results match numpy."""
    data = rng.standard_normal((64, 32))
    x = jt.array(data).sync()

    def spread_and_scaled():  # centered is not a live Var afterwards, so not a target
        centered = x - x.mean(0, keepdims=True)
        return (centered * centered).sum(0), (centered * 3.0).exp()

    spread, scaled = spread_and_scaled()
    with jt.debug.record_kernels() as launched:
        jt.sync_all()
    full_size = [k for k in launched if tuple(k.kernel.outputs[0][1]) == (64, 32)]
    assert len(full_size) == 1  # only exp(3 * centered) itself
    expected = data - data.mean(0, keepdims=True)
    np.testing.assert_allclose(spread.numpy(), (expected ** 2).sum(0), rtol=1e-10)
    np.testing.assert_allclose(scaled.numpy(), np.exp(3 * expected), rtol=1e-10)


def test_a_deeper_chain_shared_by_kernels_is_still_stored(rng):
    data = rng.standard_normal((64, 32))
    x = jt.array(data).sync()

    def first_and_second():
        shared = ((x - x.mean(0, keepdims=True)) * 2.0 + 1.0).exp()
        return shared.sum(0), shared.max(1)

    first, second = first_and_second()
    with jt.debug.record_kernels() as launched:
        jt.sync_all()
    assert any((64, 32) in [tuple(shape) for _, shape in k.kernel.outputs] for k in launched)
    reference = np.exp((data - data.mean(0, keepdims=True)) * 2 + 1)
    np.testing.assert_allclose(first.numpy(), reference.sum(0), rtol=1e-10)
    np.testing.assert_allclose(second.numpy(), reference.max(1), rtol=1e-10)


def test_momentum_buffer_and_parameter_update_share_one_kernel():
    """SGD with momentum: the new buffer is computed and stored by the same loop that
    updates the parameter (two outputs), not by a kernel of its own read back."""
    p = jt.array(np.linspace(-1, 1, 10)).sync()
    buffer = jt.array(np.full(10, 2.0)).sync()
    g = jt.array(np.linspace(0, 3, 10)).sync()
    with jt.no_grad():
        buffer.assign(buffer * 0.9 + g)
        p.assign(p - buffer * 0.1)
    with jt.debug.record_kernels() as launched:
        jt.sync_all()
    assert len(launched) == 1 and len(launched[0].kernel.outputs) == 2
    expected_buffer = 2.0 * 0.9 + np.linspace(0, 3, 10)
    np.testing.assert_allclose(buffer.numpy(), expected_buffer, rtol=1e-12)
    np.testing.assert_allclose(p.numpy(), np.linspace(-1, 1, 10) - 0.1 * expected_buffer, rtol=1e-12)


def test_a_producer_read_earlier_by_another_kernel_keeps_its_own_kernel(rng):
    """When something that runs before the consumer reads the producer's buffer, the
    producer cannot move into the consumer's kernel; either way the values are right."""
    data = rng.standard_normal((16, 8))
    x = jt.array(data).sync()
    for third, reference in (("tanh", np.tanh), ("add_one", lambda v: v + 1.0)):
        def graph():
            produced = (x * 2.0).exp()
            early = (produced * produced).sum(0, keepdims=True)   # a reduction reading it
            late = produced - early                                # a consumer after the reduction
            return early, late, produced.tanh() if third == "tanh" else produced + 1.0
        early, late, other = graph()
        jt.sync_all()
        produced = np.exp(data * 2)
        expected_early = (produced ** 2).sum(0, keepdims=True)
        np.testing.assert_allclose(early.numpy(), expected_early, rtol=1e-12)
        np.testing.assert_allclose(late.numpy(), produced - expected_early, rtol=1e-12)
        np.testing.assert_allclose(other.numpy(), reference(produced), rtol=1e-12)


def test_deep_element_wise_chains_split_into_bounded_kernels():
    x = jt.array(np.zeros(5, np.float32))
    y = x
    for _ in range(300):
        y = y * 1.0 + 1.0
    kernels = kernels_of(y)
    assert 4 <= len(kernels) <= 12, "a 600-op chain is one kernel per ~64 levels"
    np.testing.assert_array_equal(y.numpy(), np.full(5, 300.0))


def test_max_pool_gradient_recomputes_its_mask_instead_of_storing_it(rng):
    data = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    weights = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    x = jt.array(data)
    grad = jt.grad((jt.nn.max_pool2d(x.relu(), 2) * jt.array(weights)).sum(), x)
    window_shape = (2, 3, 4, 4, 2, 2)
    for kernel in kernels_of(grad):
        assert all(shape != window_shape for _, shape in kernel.kernel.outputs), kernel.kernel
    windows = np.maximum(data, 0).reshape(2, 3, 4, 2, 4, 2)
    is_max = windows == windows.max((3, 5), keepdims=True)
    expected = (is_max / is_max.sum((3, 5), keepdims=True) * weights[:, :, :, None, :, None]).reshape(data.shape)
    np.testing.assert_allclose(grad.numpy(), expected * (data > 0), rtol=1e-6)


def test_fusion_limits_come_from_the_backend_description(rng):
    """A backend's `FusionCosts` decide how deep kernels get and whether cheap producers
    are recomputed: a shallower inlining limit gives more kernels, and no duplication
    stores BatchNorm's centring; results stay equal."""
    from metajit.plugins import FusionCosts
    x = jt.array(np.zeros(5, np.float32)).sync()
    y = x
    for _ in range(40):
        y = y * 1.0 + 1.0
    default = fusion.plan([y._node]).steps
    shallow = fusion.plan([y._node], costs=FusionCosts(max_inlined_depth=8)).steps
    assert len(default) == 1 and len(shallow) >= 4
    data = rng.standard_normal((64, 32))
    z = jt.array(data).sync()
    centered = z - z.mean(0, keepdims=True)
    targets = [(centered * centered).sum(0)._node, (centered * 3.0).exp()._node]
    full_size = [s for s in fusion.plan(targets, costs=FusionCosts(duplicate_max_kernels=0)).steps
                 if tuple(s.kernel.outputs[0][1]) == (64, 32)]
    assert len(full_size) == 2  # the centring is stored, not recomputed in both kernels


def test_a_producer_read_by_an_earlier_kernel_is_not_stored_by_a_later_one(rng):
    """A stored element-wise value that another kernel reads through an inlined node
    earlier in the plan must get its own kernel, not be computed late as a sibling of a
    later consumer (conv -> eval BatchNorm -> ReLU6 -> mean -> Linear with its gradients,
    realised together, read such a buffer before it was written)."""
    from metajit import nn
    jt.set_seed(3)
    features = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4).eval(), nn.ReLU6())
    head = nn.Linear(4, 10)
    x = jt.array(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    params = list(features.parameters()) + list(head.parameters())

    def build():
        out = head(features(x).mean((2, 3)))
        return [out] + jt.grad(out.sum(), params)
    together = jt.fetch_sync(build())
    apart = [value.numpy() for value in build()]
    for a, b in zip(together, apart):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_batchnorm_output_before_a_relu_is_recomputed_by_the_backward_pass(rng):
    """Training BatchNorm + ReLU stores the ReLU's output (the next layer's input) but not
    BatchNorm's own output: the ReLU's gradient recomputes it from the stored input and the
    per-channel scale and shift (torch keeps one of the two as well, ReLU being in place)."""
    data = rng.standard_normal((4, 8, 6, 6)).astype(np.float32)
    x = jt.array(data)
    bn, conv = jt.nn.BatchNorm2d(8), jt.nn.Conv2d(8, 4, 1, bias=False)
    hidden = bn(x)
    out = conv(jt.nn.relu(hidden)).sqr().sum()
    gx = jt.grad(out, x)
    full_size = [k for k in kernels_of(gx) if (4, 8, 6, 6) in [shape for _, shape in k.kernel.outputs]]
    forward = [k for k in full_size if [shape for _, shape in k.kernel.outputs].count((4, 8, 6, 6)) > 1]
    assert not forward  # one full-size output per kernel: BatchNorm's is not stored beside the ReLU's
    import torch
    tx = torch.from_numpy(data).requires_grad_()
    tbn, tconv = torch.nn.BatchNorm2d(8), torch.nn.Conv2d(8, 4, 1, bias=False)
    tconv.weight.data = torch.from_numpy(conv.weight.numpy())
    tconv(torch.relu(tbn(tx))).square().sum().backward()
    np.testing.assert_allclose(gx.numpy(), tx.grad.numpy(), rtol=1e-3, atol=1e-4)


def test_a_gradient_spread_over_pooling_windows_is_computed_once(rng):
    """The gradient reaching a max pooling is stored before the pooling's backward spreads
    it over each 3x3 window, not recomputed per window position: the window kernels read
    it (with the input, the maxima and their counts), not the three terms it sums."""
    data = rng.standard_normal((2, 8, 48, 48)).astype(np.float32)
    scales = [rng.standard_normal((2, 8, 24, 24)).astype(np.float32) * 0.1 for _ in range(3)]
    x = jt.array(data)
    pooled = jt.nn.max_pool2d(x, 3, 2, 1)
    loss = sum(((pooled * jt.array(s)).exp()).sum() for s in scales)  # its gradient: three terms
    grad = jt.grad(loss, x)
    window_kernels = [k for k in kernels_of(grad) if len(k.kernel.domain) == 6]
    assert window_kernels and all(len(k.kernel.inputs) <= 4 for k in window_kernels), \
        [k.kernel.inputs for k in window_kernels]
    import torch
    tx = torch.from_numpy(data).requires_grad_()
    tpooled = torch.nn.functional.max_pool2d(tx, 3, 2, 1)
    sum((tpooled * torch.from_numpy(s)).exp().sum() for s in scales).backward()
    np.testing.assert_allclose(grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)


def shares_reduction_loops():
    """Whether the current device renders sibling reductions in one loop nest (the cpu)."""
    return plugins.current().description.fusion_costs.shared_reduction_loops


def test_batchnorm_statistics_and_gradient_sums_read_their_input_once(rng):
    """Training BatchNorm's shifted sum and sum of squares, and the backward's sums of the
    gradient and of the gradient times the input, are each one kernel with two reductions
    (`fusion._sibling_reductions`): one pass over the full-size values per pair; the
    backward's kernel also stores the masked gradient it sums (`fusion._siblings`)."""
    if not shares_reduction_loops():
        pytest.skip("the device renders each reduction on its own (FusionCosts.shared_reduction_loops)")
    data = rng.standard_normal((4, 8, 6, 6)).astype(np.float32)
    x = jt.array(data)
    bn = jt.nn.BatchNorm2d(8)
    out = (jt.nn.relu(bn(x)) * jt.array(rng.standard_normal(data.shape).astype(np.float32))).sum()
    grads = jt.grad(out, [x, bn.weight])
    with jt.debug.record_kernels() as launched:
        jt.fetch_sync(grads)
    paired = [k.kernel for k in launched if k.kernel.domain == data.shape
              and sum(store.reduce_op == "sum" for store in k.kernel.stores) == 2]
    assert len(paired) == 2, [str(k.kernel) for k in launched]


def test_reductions_reading_one_input_fuse_only_where_their_order_allows(rng):
    """Random chains of same-shaped sums, some reading values computed from earlier sums:
    grouped sums run where all their inputs are ready and before all their readers, so
    the fused plan gives the eager (one op at a time) results."""
    if not shares_reduction_loops():
        pytest.skip("the device renders each reduction on its own (FusionCosts.shared_reduction_loops)")
    grouped = 0
    for seed in range(12):
        choices = np.random.default_rng(seed).integers(0, 7, 8)
        data = rng.standard_normal((6, 40))

        def program(x):
            values, sums = [x], []
            for c in choices:
                base = values[int(c) % len(values)]
                total = (base * float(c + 1)).sum(1, keepdims=True)
                sums.append(total)
                values.append(x - total if c % 3 == 0 else x * 0.5 + base)
            return sums + [values[-1] * 2]
        with jt.debug.record_kernels() as launched:
            fused = jt.fetch_sync(program(jt.array(data)))
        grouped += sum(len(k.kernel.outputs) > 1 for k in launched)
        jt.flags.lazy_execution = 0
        try:
            unfused = [v.numpy() for v in program(jt.array(data))]
        finally:
            jt.flags.lazy_execution = 1
        for a, b in zip(fused, unfused):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert grouped >= 6  # sums of x itself (and of values ready early) did share kernels


def test_a_value_read_at_ever_more_positions_is_stored():
    """A scan's step reads the previous one directly and shifted, so inlining every step
    evaluates the first at every earlier position (quadratic work); fusion stores a value
    once one kernel element would evaluate it at more than ``max_inlined_reads`` positions."""
    from metajit.plugins import FusionCosts
    data = np.random.default_rng(0).random((2, 1024)).astype(np.float32)
    running = jt.array(data).cumsum(-1)
    kernels = kernels_of(running)
    assert 2 <= len(kernels) <= 6
    assert all(len(analysis.loads(k.kernel)) <= 2 * FusionCosts().max_inlined_reads for k in kernels)
    np.testing.assert_allclose(running.numpy(), np.cumsum(data, -1), rtol=1e-5)


def test_a_padding_read_keeps_its_producer_inlined_but_a_repeating_read_stores_it(rng):
    """A reindex with more outputs than inputs stores the element-wise chain under it when
    it reads source elements repeatedly (upsampling), not when it reads each at most once
    (zero padding: the gradient pieces of ``chunk`` joined), which inlines the chain."""
    data = rng.standard_normal((4, 5)).astype(np.float32)
    x = jt.array(data).sync()
    padded = x.exp().reindex([6, 9], ["i0-1", "i1-2"])
    assert len(fusion.plan([padded._node]).steps) == 1
    repeated = x.exp().reindex([8, 5], ["i0/2", "i1"])
    assert len(fusion.plan([repeated._node]).steps) == 2
    expected = np.zeros((6, 9), np.float32)
    expected[1:5, 2:7] = np.exp(data)
    np.testing.assert_allclose(padded.numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(repeated.numpy(), np.exp(data).repeat(2, 0), rtol=1e-6)
