"""Seeded shuffling: the same seed gives the same orders, other seeds other orders, each
epoch a new order; every item exactly once; a bounded buffer moves items a bounded distance."""
import pickle

import pytest

import metajit as jt
from metajit.data import IterableWrapper, Shuffler


def epochs(pipe, count=3):
    return [list(pipe) for _ in range(count)]


def test_same_seed_same_orders_other_seed_other_orders():
    first = epochs(IterableWrapper(range(40)).shuffle(seed=7))
    assert first == epochs(IterableWrapper(range(40)).shuffle().set_seed(7))
    assert all(sorted(order) == list(range(40)) for order in first)
    assert len({tuple(order) for order in first}) == 3  # a new order each epoch
    assert first != epochs(IterableWrapper(range(40)).shuffle(seed=8))
    assert first[0] != list(range(40))


def test_set_seed_restarts_the_sequence_of_orders():
    pipe = IterableWrapper(range(20)).shuffle(seed=1)
    first = epochs(pipe, 2)
    assert epochs(pipe.set_seed(1), 2) == first


def test_unseeded_orders_follow_jt_set_seed():
    jt.set_seed(11)
    first = epochs(IterableWrapper(range(30)).shuffle())
    jt.set_seed(11)
    assert epochs(IterableWrapper(range(30)).shuffle()) == first
    jt.set_seed(12)
    assert epochs(IterableWrapper(range(30)).shuffle()) != first


def test_set_shuffle_false_passes_items_in_order():
    pipe = IterableWrapper(range(10)).shuffle(seed=0).set_shuffle(False)
    assert list(pipe) == list(range(10)) and len(pipe) == 10
    assert list(pipe.set_shuffle(True)) != list(range(10))


@pytest.mark.parametrize("buffer_size", [1, 3, 10])
def test_a_buffer_bounds_how_early_an_item_can_come(buffer_size):
    order = list(IterableWrapper(range(50)).shuffle(buffer_size=buffer_size, seed=2))
    assert sorted(order) == list(range(50))
    # item k is read after the first k items; the buffer holds buffer_size of them, so at
    # position p the largest item seen so far is below p + buffer_size
    assert all(max(order[:position + 1]) < position + buffer_size for position in range(50))
    if buffer_size == 1:
        assert order == list(range(50))


def test_shuffler_pickles_with_its_seed_state():
    pipe = IterableWrapper(range(10)).shuffle(seed=4)
    list(pipe)
    copy = pickle.loads(pickle.dumps(pipe))
    assert list(copy) == list(pipe)  # both at the second epoch of seed 4


def test_bad_seeds_and_buffers_are_named():
    with pytest.raises(jt.MetajitValueError, match="seed must be an int or None"):
        IterableWrapper([]).shuffle(seed="x")
    with pytest.raises(jt.MetajitValueError, match="buffer_size must be an int >= 1"):
        Shuffler(IterableWrapper([]), buffer_size=0)
