"""concat, zip, fork and demux against plain Python; the fork/demux buffer limits,
restarts and pickling."""
import pickle

import pytest

import metajit as jt
from metajit.data import DataPipeBufferError, DataPipeLengthError, DataPipeStateError, IterableWrapper


class CountingSource:
    """A re-iterable source that counts how often it was read."""

    def __init__(self, values):
        self.values, self.reads = values, 0

    def __iter__(self):
        self.reads += 1
        return iter(self.values)


def is_odd(x):
    return x % 2


def test_concat_and_zip_match_itertools():
    a, b, c = IterableWrapper([1, 2]), IterableWrapper([]), IterableWrapper("xyz")
    assert list(a.concat(b, c)) == [1, 2, "x", "y", "z"] and len(a.concat(b, c)) == 5
    assert list(c.zip(a)) == list(zip("xyz", [1, 2])) and len(c.zip(a)) == 2
    with pytest.raises(jt.MetajitValueError, match="zip takes IterDataPipes, but input 1 is a list"):
        a.zip([1])


def test_fork_reads_the_source_once_for_all_outputs():
    source = CountingSource(list(range(6)))
    first, second, third = IterableWrapper(source).fork(3)
    assert list(first.zip(second.map(lambda x: -x), third)) == [(x, -x, x) for x in range(6)]
    assert source.reads == 1 and len(IterableWrapper(range(6)).fork(2)[1]) == 6
    assert list(first.zip(second, third)) == [(x, x, x) for x in range(6)]  # a second epoch
    assert source.reads == 2


def test_fork_outputs_read_one_after_another_within_the_buffer():
    first, second = IterableWrapper(range(5)).fork(2, buffer_size=5)
    assert list(first) == list(second) == list(range(5))


def test_fork_buffer_limit_stops_an_output_running_ahead():
    first, second = IterableWrapper(range(10)).fork(2, buffer_size=3)
    reader = iter(first)
    assert [next(reader) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(DataPipeBufferError, match="output 1 has 3 unread items"):
        next(reader)
    unlimited = IterableWrapper(range(2000)).fork(2, buffer_size=None)
    assert list(unlimited[0]) == list(unlimited[1]) == list(range(2000))
    assert len(list(IterableWrapper(range(3)).fork(2, buffer_size=-1)[0])) == 3


def test_an_abandoned_output_stops_being_buffered():
    first, second = IterableWrapper(range(10)).fork(2, buffer_size=2)
    for _ in second:
        break
    assert list(first) == list(range(10))


def test_restarting_an_output_invalidates_the_others():
    first, second = IterableWrapper(range(4)).fork(2)
    old = iter(second)
    assert next(old) == 0 and next(iter(first)) == 0
    assert next(iter(second)) == 0  # second starts over: a new reading for both
    with pytest.raises(DataPipeStateError, match="invalidated"):
        next(old)


def test_demux_routes_by_classifier_like_a_comprehension():
    values = [5, 2, 8, 1, 4, 7, 3]
    outputs = IterableWrapper(values).demux(3, lambda x: x % 3)
    assert [list(output) for output in outputs] == [[x for x in values if x % 3 == k] for k in range(3)]
    evens, odds = IterableWrapper(values).demux(2, is_odd)
    assert list(evens.zip(odds)) == list(zip([2, 8, 4], [5, 1, 7, 3]))
    with pytest.raises(DataPipeLengthError, match="demux"):
        len(evens)


def test_demux_none_and_bad_classes():
    kept, = IterableWrapper(range(6)).demux(1, lambda x: 0 if x < 3 else None, drop_none=True)
    assert list(kept) == [0, 1, 2]
    bad, _ = IterableWrapper(range(3)).demux(2, lambda x: x)
    with pytest.raises(jt.MetajitValueError, match=r"returned 2 for an item, not an output number in range\(2\)"):
        list(bad)
    undecided, = IterableWrapper(range(3)).demux(1, lambda x: None)
    with pytest.raises(jt.MetajitValueError, match="drop_none=True"):
        list(undecided)


def test_demux_buffer_limit():
    evens, odds = IterableWrapper(range(20)).demux(2, is_odd, buffer_size=4)
    with pytest.raises(DataPipeBufferError, match="output 1 has 4 unread items"):
        list(evens)


def test_fork_and_demux_outputs_pickle_without_a_reading_in_progress():
    evens, odds = IterableWrapper(range(6)).demux(2, is_odd)
    reader = iter(evens)
    next(reader)
    evens_copy, odds_copy = pickle.loads(pickle.dumps((evens, odds)))
    assert list(evens_copy.zip(odds_copy)) == [(0, 1), (2, 3), (4, 5)]
    with pytest.raises(DataPipeStateError, match="iterate its outputs"):
        iter(evens.branches)
