"""``x[index]`` and ``x[index] = v`` against numpy."""
import numpy as np
import pytest

import metajit as jt
from metajit.errors import MetajitError, MetajitIndexError

DATA = np.arange(60, dtype=np.float32).reshape(3, 4, 5)

BASIC = [
    0, -1, (1, 2), (slice(None), 1), (slice(1, None),), (slice(None, None, -1),),
    (slice(None, None, 2), slice(3, 0, -2)), (Ellipsis, 2), (1, Ellipsis), (None, 0),
    (slice(None), None, slice(1, 3)), (slice(-2, None), -1, slice(None, None, -3)),
    (slice(10, 20),), (2, 3, 4), (Ellipsis,), (slice(5, 1),),
]


ADVANCED = [
    ([0, 2],), (np.array([[0, 1], [2, 0]]),), (slice(None), [3, 0, 3]),
    ([0, 2], [1, 3]), ([0, 2], slice(None), [1, 4]), (1, slice(None), [0, -1]),
    (slice(None), np.array([[0], [1]]), np.array([1, 2, 3])), ([-1, -3],),
]




@pytest.mark.parametrize("index", BASIC + ADVANCED, ids=[repr(i) for i in BASIC + ADVANCED])
def test_getitem_matches_numpy(index):
    result = jt.array(DATA)[index]
    expected = DATA[index]
    assert result.shape == expected.shape
    np.testing.assert_array_equal(result.numpy(), expected)


def test_index_with_int_var():
    idx = jt.array([2, 0])
    np.testing.assert_array_equal(jt.array(DATA)[idx].numpy(), DATA[[2, 0]])
    np.testing.assert_array_equal(jt.array(DATA)[:, jt.array([1, -1])].numpy(), DATA[:, [1, -1]])


def test_boolean_mask_indexing():
    x = jt.array(DATA)
    mask = DATA % 7 == 0
    np.testing.assert_array_equal(x[jt.array(mask)].numpy(), DATA[mask])
    np.testing.assert_array_equal(x[x > 50].numpy(), DATA[DATA > 50])
    row_mask = np.array([True, False, True])
    np.testing.assert_array_equal(x[row_mask, 1].numpy(), DATA[row_mask, 1])


def test_out_of_range_indices_raise():
    x = jt.array(DATA)
    with pytest.raises(MetajitIndexError, match="out of range"):
        x[3]
    with pytest.raises(MetajitIndexError):
        x[:, [0, 4]]
    with pytest.raises(MetajitIndexError, match="too many"):
        x[0, 0, 0, 0]
    with pytest.raises(MetajitError):
        x[1.5]


SET_CASES = [
    (1, 7.0), ((slice(None), 2), np.arange(5.0)), ((slice(None, None, 2), slice(None), -1), -1.0),
    ((Ellipsis, slice(None, None, -2)), 3.0), (([0, 2], slice(1, 3)), np.ones((2, 2, 5))),
    ((slice(None), [3, 0]), 5.0),
]


@pytest.mark.parametrize("index,value", SET_CASES, ids=[repr(c[0]) for c in SET_CASES])
def test_setitem(index, value):
    expected = DATA.copy()
    expected[index] = value
    x = jt.array(DATA)
    x[index] = value if np.isscalar(value) else jt.array(value)
    np.testing.assert_array_equal(x.numpy(), expected)


def test_setitem_with_mask():
    x = jt.array(DATA)
    x[x > 30] = 0.0
    expected = DATA.copy()
    expected[expected > 30] = 0
    np.testing.assert_array_equal(x.numpy(), expected)


def test_iteration_and_len():
    x = jt.array([[1, 2], [3, 4]])
    assert len(x) == 2
    assert [row.numpy().tolist() for row in x] == [[1, 2], [3, 4]]


def test_out_of_range_values_in_index_vars_raise_like_numpy_and_torch():
    """Index and label Vars whose values are still on the host are checked (they read 0 or
    gave a finite loss before); the oracles raise too."""
    import torch
    from metajit import nn
    with pytest.raises(IndexError):
        np.arange(10)[np.array([20])]
    with pytest.raises(jt.MetajitIndexError, match="index 20 is out of range for dimension 0 of size 10"):
        jt.arange(10)[jt.array([20])]
    with pytest.raises(IndexError):
        torch.nn.Embedding(5, 2)(torch.tensor([7]))
    with pytest.raises(jt.MetajitIndexError, match="index 7 is out of range.*size 5"):
        nn.Embedding(5, 2)(jt.array([7]))
    for label in (3, -1):
        with pytest.raises(IndexError):
            torch.nn.CrossEntropyLoss()(torch.zeros(2, 3), torch.tensor([1, label]))
        with pytest.raises(jt.MetajitIndexError, match=f"class index {label} is out of range for 3 classes"):
            nn.CrossEntropyLoss()(jt.zeros((2, 3)), jt.array([1, label]))
    x = jt.zeros(3)
    with pytest.raises(jt.MetajitIndexError, match="index 9 is out of range.*size 3"):
        x[jt.array([9])] = 1.0
    np.testing.assert_array_equal(jt.arange(10)[jt.array([-1, 3])].numpy(), [9, 3])  # negatives are valid
    expected = torch.nn.CrossEntropyLoss(ignore_index=-1)(torch.zeros(2, 3), torch.tensor([-1, 0])).item()
    assert nn.CrossEntropyLoss(ignore_index=-1)(jt.zeros((2, 3)), jt.array([-1, 0])).item() == pytest.approx(expected)


def test_out_of_range_values_in_index_vars_computed_on_the_device_raise_at_realisation():
    """Device-side checks (PyTorch's device asserts): the realisation computing the result
    reads an out-of-range flag and raises, every time, before the result can be used."""
    from metajit import nn
    indices = jt.array([1, 2]) * 10                      # computed by a kernel
    gathered = jt.arange(10)[indices]
    for _ in range(2):                                    # a retry raises again
        with pytest.raises(jt.MetajitIndexError, match="index 20 is out of range for dimension 0 of size 10"):
            gathered.numpy()
    with pytest.raises(jt.MetajitIndexError, match="index -12 is out of range"):
        jt.arange(10)[jt.array([1, 2]) * -6].numpy()
    with pytest.raises(jt.MetajitIndexError, match="index 6 is out of range.*size 5"):
        nn.Embedding(5, 2)(jt.array([1, 2]) * 3).numpy()
    with pytest.raises(jt.MetajitIndexError, match="class index 3 is out of range for 3 classes"):
        nn.CrossEntropyLoss()(jt.zeros((2, 3)), jt.array([1, 0]) + 2).item()
    x = jt.zeros(3)
    x[jt.array([1]) * 9] = 1.0
    with pytest.raises(jt.MetajitIndexError, match="index 9 is out of range.*size 3"):
        x.numpy()
    in_range = jt.arange(10)[jt.array([1, 2]) * 3 - 7]
    np.testing.assert_array_equal(in_range.numpy(), np.arange(10)[np.array([1, 2]) * 3 - 7])
    ignored = nn.CrossEntropyLoss(ignore_index=3)(jt.zeros((2, 3)), jt.array([1, 0]) + 2)
    assert ignored.item() == pytest.approx(np.log(3.0))


def test_device_index_checks_can_be_turned_off_and_do_not_accumulate():
    from metajit.passes import checks
    try:
        jt.flags.check_indices = 0
        np.testing.assert_array_equal(jt.arange(10)[jt.array([1, 2]) * 10].numpy(), [0, 0])  # reindex overflow
    finally:
        jt.flags.check_indices = 1
    table = jt.array(np.arange(20, dtype=np.float32))
    for step in range(600):
        picked = table[(jt.array([step % 20]) + 0)]
        if step % 2:
            picked.sync()                                 # checked and forgotten
    assert len(checks._registry.entries) <= checks.PRUNE_ABOVE + 1


def test_training_with_device_labels_keeps_memory_flat():
    """The device-side label check rides along with each step and is then forgotten: a
    loop whose labels live on the device neither keeps graphs alive nor grows the registry."""
    import gc
    from metajit import nn
    from metajit.passes import checks
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = jt.array(np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)).sync()
    y = jt.array(np.arange(16) % 3).sync()                # labels on the device: checked lazily
    counts = []
    for step in range(40):
        optimizer.step(nn.cross_entropy_loss(model(x), y))
        if step in (10, 39):
            gc.collect()
            counts.append((jt.liveness_info(), len(checks._registry.entries)))
    assert counts[0] == counts[1]  # live Vars, nodes and buffers, and registered checks


def test_an_empty_index_var_computed_on_the_device_needs_no_check():
    empty = jt.array(np.zeros(0, np.int32)) + 1
    assert jt.arange(5)[empty].numpy().shape == np.arange(5)[np.zeros(0, np.int64)].shape == (0,)
