"""The executor's ``on_ready`` callbacks: called between launches as soon as the watched
values are produced, on every backend; values against numpy."""
import numpy as np
import pytest

import metajit as jt
from metajit.passes import executor


def logged_launches(monkeypatch):
    """Record each launch call of the current device as ``("launch", kernels, plan key)``
    (``plan key`` None for single launches) in the returned list."""
    events = []
    handle = jt.plugins.current()
    launch, sequence = handle.launch, handle.launch_sequence

    def logged_launch(program, inputs, outputs, parameters):
        events.append(("launch", 1, None))
        return launch(program, inputs, outputs, parameters)

    def logged_sequence(launches, plan_key):
        events.append(("launch", len(launches), plan_key))
        return sequence(launches, plan_key)
    monkeypatch.setattr(handle, "launch", logged_launch)
    if sequence is not None:
        monkeypatch.setattr(handle, "launch_sequence", logged_sequence)
    return events


def three_reductions(x):
    first = x.sum(0)
    second = (x * first).sum(1)
    third = (x.exp() * second.reshape(-1, 1)).sum(0)
    return first, second, third


def expected_reductions(a):
    first = a.sum(0)
    second = (a * first).sum(1)
    return first, second, (np.exp(a) * second[:, None]).sum(0)


def test_a_callback_runs_between_the_launch_producing_its_values_and_the_next(monkeypatch, rng):
    a = rng.standard_normal((6, 5)).astype(np.float32)
    for attempt in range(2):  # the second realisation replays the cached plan: same segment keys
        values = three_reductions(jt.array(a))
        events = logged_launches(monkeypatch)
        executor.realise([v._node for v in values], [([values[0]._node], lambda: events.append("first ready"))])
        ready = events.index("first ready")
        assert sum(e[1] for e in events[:ready]) >= 1 and sum(e[1] for e in events[ready + 1:]) >= 2
        keys = [e[2] for e in events if e != "first ready"]
        assert attempt == 0 or keys == first_keys
        first_keys = keys
        for value, expected in zip(values, expected_reductions(a)):
            np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)
        monkeypatch.undo()


def test_callbacks_for_values_that_exist_run_at_once(rng):
    x = jt.array(rng.standard_normal(4).astype(np.float32))
    done = (x * 2).sync()
    called = []
    executor.realise([done._node], [([done._node], lambda: called.append("now"))])
    assert called == ["now"]
    later = x + 1
    executor.realise([later._node, done._node], [([done._node], lambda: called.append("before launching"))])
    assert called == ["now", "before launching"]
    np.testing.assert_allclose(later.numpy(), x.numpy() + 1)


def test_a_failing_callback_keeps_the_finished_launches_and_a_retry_runs_the_rest(rng):
    a = rng.standard_normal((6, 5)).astype(np.float32)
    values = three_reductions(jt.array(a))

    def fail():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        executor.realise([v._node for v in values], [([values[0]._node], fail)])
    assert values[0]._node.buffer is not None and values[2]._node.buffer is None
    for value, expected in zip(values, expected_reductions(a)):
        np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5)


def test_stored_results_a_live_var_holds_are_kept_for_later_reads(rng):
    """A forward hook reading ``output.abs().mean().item()`` after every layer: each layer's
    output, held by a Var, keeps its value, so every read computes only the new layer."""
    data = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    layers = [jt.nn.Conv2d(3, 3, 3, padding=1) for _ in range(4)]
    x, seen = jt.array(data), []
    with jt.debug.record_kernels() as launched:
        for layer in layers:
            x = layer(x)
            seen.append(x.abs().mean().item())
    convolutions = [k for k in launched if "conv" in str(getattr(k.kernel, "name", ""))]
    assert len(convolutions) == len(layers) or not convolutions  # (a device without the library op)
    expected = jt.array(data)
    for layer, value in zip(layers, seen):
        expected = layer(expected)
        assert value == pytest.approx(np.abs(expected.numpy()).mean(), rel=1e-5)


def test_a_live_var_computed_from_a_stored_result_is_kept(rng):
    """``relu(linear(x))`` read after each layer: the Var holds the relu, not the stored
    product below it, and keeping the relu's value is what saves every product above it
    from being computed again at the next read."""
    x, seen = jt.array(rng.standard_normal((4, 16)).astype(np.float32)), []
    layers = [jt.nn.Linear(16, 16) for _ in range(5)]
    with jt.debug.record_kernels() as launched:
        for layer in layers:
            x = jt.nn.relu(layer(x))
            seen.append(x.abs().mean().item())
    products = [k for k in launched if "matmul" in str(getattr(k.kernel, "name", ""))]
    assert len(products) == len(layers) or not products
    expected = x.numpy()
    assert seen[-1] == pytest.approx(np.abs(expected).mean(), rel=1e-6)


def test_a_held_view_keeps_the_value_it_reads(rng):
    """A live broadcast or transpose of a computed value keeps that value, not a copy of
    the view (a broadcast's copy can be far larger)."""
    x = jt.array(rng.standard_normal((64, 64)).astype(np.float32))
    mean = x.mean(1, keepdims=True)
    spread = mean.broadcast_to((64, 64))
    flipped = (x.exp() @ x).transpose()
    (x - spread).sum().sync()
    (flipped * 2.0).sum().sync()
    assert mean._node.buffer is not None and spread._node.buffer is None
    assert flipped._node.buffer is None and flipped._node.inputs[0].buffer is not None
    expected = x.numpy().astype(np.float64).mean(1, keepdims=True)
    np.testing.assert_allclose(spread.numpy(), np.broadcast_to(expected, (64, 64)), rtol=1e-5, atol=1e-6)


def test_a_value_no_var_holds_is_not_kept(rng):
    x = jt.array(rng.standard_normal((4, 4)).astype(np.float32))
    total = (x @ x).sum()  # the product's result is no Var's
    total.sync()
    assert total._node.inputs == () or all(node.buffer is None for node in total._node.inputs
                                           if node.op in ("library", "reduce"))
