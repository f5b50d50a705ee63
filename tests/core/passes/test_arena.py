"""The executor's arena: intermediates placed by lifetime (`executor._arena_layout`), and a
realisation's intermediates of many sizes packed into about the bytes live at once."""
import gc

import numpy as np
from hypothesis import given, settings, strategies as st

import metajit as jt
from metajit import plugins
from metajit.passes import executor

from ..test_lazy_memory import track_live_bytes

lifetimes = st.lists(st.tuples(st.integers(0, 40), st.integers(0, 12), st.integers(0, 5000)), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(lifetimes)
def test_values_live_at_once_never_share_bytes(spans):
    values = {place: [first, first + length, -(-nbytes // 64) * 64]
              for place, (first, length, nbytes) in enumerate(spans)}
    layout, total = executor._arena_layout(values)
    assert set(layout) == set(values)
    most_live = max(sum(v[2] for v in values.values() if v[0] <= step <= v[1]) for step in range(60))
    assert total >= most_live
    for a, (a_first, a_last, a_bytes) in values.items():
        assert layout[a] % 64 == 0 and layout[a] + a_bytes <= total
        for b, (b_first, b_last, b_bytes) in values.items():
            if a < b and a_first <= b_last and b_first <= a_last and a_bytes and b_bytes:
                assert layout[a] + a_bytes <= layout[b] or layout[b] + b_bytes <= layout[a], (a, b)


def test_values_of_one_size_in_a_chain_take_two_places():
    values = {place: [place, place + 1, 1024] for place in range(50)}  # each read by the next step only
    layout, total = executor._arena_layout(values)
    assert total == 2 * 1024


def test_intermediates_of_many_sizes_take_about_the_bytes_live_at_once(monkeypatch, rng):
    """A chain of stored values of irregular sizes, each read by two reductions and by the
    mean the next one adds (so one is live at a time): with an arena (the cpu backend's
    buffer views) the realisation allocates within 10% of the largest; whole buffers by
    size class took 1.7 times that."""
    data = rng.standard_normal(1 << 18).astype(np.float32)
    x = jt.array(data).sync()
    counts = rng.integers(1 << 14, 1 << 18, 16)
    value, total, expected_value, expected_total = x, 0.0, data.astype(np.float64), 0.0
    for count in counts:
        value = (x[:count] * 0.5 + value[:count].mean() * 0.1).exp()  # exp: stored, not recomputed
        expected_value = np.exp(data[:count].astype(np.float64) * 0.5 + expected_value[:count].mean() * 0.1)
        total = total + value.sum() + value.max()
        expected_total += expected_value.sum() + expected_value.max()
    del value  # (a live Var's value would be kept as well, outside the arena)
    gc.collect()
    state = track_live_bytes(monkeypatch)
    total.sync()
    np.testing.assert_allclose(total.item(), expected_total, rtol=1e-3)
    largest = 4 * int(counts.max())
    assert state["peak"] >= largest
    if plugins.current().buffer_view is not None:
        assert state["peak"] <= 1.1 * largest + 4096
    else:
        assert state["peak"] <= 4 * largest + 4096  # (the reference device stores every op's value)
