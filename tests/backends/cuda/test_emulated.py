"""The CUDA renderer's kernels run on host threads (`emulated_backend`): every schedule
against numpy. The conformance tiers on the emulated device are behind the `slow` marker."""
import numpy as np
import pytest

import metajit as jt
from metajit.conformance import runner

from . import emulated_backend

jt.plugins.register_backend(emulated_backend, emulated_backend.NAME)


@pytest.fixture(autouse=True)
def device():
    previous = jt.get_device()
    jt.set_device(emulated_backend.NAME)
    yield
    jt.set_device(previous)


@pytest.mark.parametrize("op, shape, axes", [
    ("sum", (4, 300), 1), ("sum", (300, 5), 1), ("sum", (3, 70000), 1), ("sum", (6, 7, 40), (0, 2)),
    ("sum", (200,), 0), ("max", (4, 300), 1), ("max", (3, 70000), 1), ("min", (300, 5), 1),
    ("min", (6, 7, 40), (0, 2)), ("prod", (4, 300), 1), ("prod", (3, 70000), 1)])
def test_reductions_match_numpy(rng, op, shape, axes):
    """Block-per-row, thread-per-row and split schedules; nan propagates through max/min."""
    data = rng.uniform(0.999, 1.001, shape).astype(np.float32)
    if op in ("max", "min"):
        data.flat[7] = np.nan
    ours = getattr(jt.array(data), op)(axes).numpy()
    expected = getattr(np, op)(data.astype(np.float64), axis=axes)
    np.testing.assert_allclose(ours, expected, rtol=2e-5)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8", "int64",
                                   pytest.param("float64", marks=pytest.mark.slow),
                                   pytest.param("bool", marks=pytest.mark.slow)])
def test_scatters_combine_atomically(rng, dtype):
    index = rng.integers(0, 5, 600)
    values = rng.integers(0, 3, 600).astype(dtype)
    ops = ["maximum", "minimum"] + (["add", "multiply"] if dtype != "bool" else [])
    for op in ops:
        ours = jt.array(values).reindex_reduce(op, (5,), ["@e0(i0)"], extras=[jt.array(index)]).numpy()
        combine = {"add": np.add, "multiply": np.multiply, "maximum": np.maximum, "minimum": np.minimum}[op]
        identity = {"add": 0, "multiply": 1, "maximum": np.iinfo(np.int64).min if dtype != "bool" else False,
                    "minimum": np.iinfo(np.int64).max if dtype != "bool" else True}[op]
        expected = np.full(5, identity, dtype=np.float64 if dtype.startswith("float") else np.int64)
        if dtype.startswith("float") and op in ("maximum", "minimum"):
            expected[:] = -np.inf if op == "maximum" else np.inf
        combine.at(expected, index, values.astype(expected.dtype))
        np.testing.assert_allclose(ours.astype(np.float64), expected.astype(values.dtype).astype(np.float64))


def test_float16_elementwise_rounds_like_numpy(rng):
    data = rng.standard_normal(1000).astype(np.float16)
    ours = (jt.array(data) * np.float16(1.1) + np.float16(0.3)).exp().numpy()
    expected = np.exp(data * np.float16(1.1) + np.float16(0.3))
    np.testing.assert_array_equal(ours, expected)


def test_a_training_step_matches_the_cpu_device(rng):
    x = rng.standard_normal((16, 8)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    results = []
    for device_name in (emulated_backend.NAME, "cpu"):
        jt.set_device(device_name)
        jt.set_seed(0)
        model = jt.nn.Sequential(jt.nn.Linear(8, 16), jt.nn.ReLU(), jt.nn.Linear(16, 3))
        optimizer = jt.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            optimizer.step(jt.nn.cross_entropy_loss(model(jt.array(x)), jt.array(y)))
        results.append(np.concatenate([p.numpy().ravel() for p in model.parameters()]))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("tier", ["smoke", "standard"])
def test_conformance_on_the_emulated_device(tier):
    results, _ = runner.run(emulated_backend.NAME, tier, None, 20261202, None, [], None)
    failed = [f"{r.name}: {r.message}" for r in results if r.status == "failed"]
    assert not failed, "\n".join(failed[:5])
