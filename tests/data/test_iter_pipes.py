"""Single-source iter pipes against plain Python (itertools, comprehensions)."""
import itertools

import numpy as np
import pytest

import metajit as jt
from metajit.data import DataPipeLengthError, IterableWrapper
from metajit.data.iter_pipes import approximate_bytes


def chunks(values, size, drop_last=False):
    """The oracle of ``batch``."""
    groups = [list(values[start:start + size]) for start in range(0, len(values), size)]
    return [g for g in groups if len(g) == size] if drop_last else groups


def test_wrapper_yields_the_iterable_and_its_length():
    assert list(IterableWrapper("abc")) == ["a", "b", "c"] and len(IterableWrapper("abc")) == 3
    assert list(IterableWrapper(np.arange(3))) == [0, 1, 2]


def test_a_composition_chain_matches_comprehensions():
    values = list(range(50))
    pipe = (IterableWrapper(values).map(lambda x: x * 3).filter(lambda x: x % 2 == 0).batch(4)
            .map(sum).enumerate(starting_index=1).header(5))
    evens = [x * 3 for x in values if (x * 3) % 2 == 0]
    assert list(pipe) == list(itertools.islice(enumerate(map(sum, chunks(evens, 4)), 1), 5))


def test_map_and_filter_on_columns():
    rows = [(i, str(i)) for i in range(5)]
    assert list(IterableWrapper(rows).map(int, input_col=1, output_col=-1)) == [r + (i,) for i, r in enumerate(rows)]
    assert list(IterableWrapper(rows).filter(lambda s: s in "13", input_col=1)) == [(1, "1"), (3, "3")]
    with pytest.raises(jt.MetajitValueError, match="needs an input_col"):
        IterableWrapper(rows).map(int, output_col=0)


@pytest.mark.parametrize("size,drop_last", [(1, False), (3, False), (3, True), (7, True), (8, False)])
def test_batch_matches_chunks_and_its_length(size, drop_last):
    pipe = IterableWrapper(range(7)).batch(size, drop_last=drop_last)
    assert list(pipe) == chunks(list(range(7)), size, drop_last) and len(pipe) == len(list(pipe))
    with pytest.raises(jt.MetajitValueError, match="batch_size must be an int >= 1"):
        IterableWrapper([]).batch(0)


def test_unbatch_levels():
    nested = [[[0, 1], [2]], [[3]]]
    assert list(IterableWrapper(nested).unbatch()) == [[0, 1], [2], [3]]
    assert list(IterableWrapper(nested).unbatch(unbatch_level=2)) == [0, 1, 2, 3]
    assert list(IterableWrapper(nested).unbatch(unbatch_level=-1)) == [0, 1, 2, 3]
    assert list(IterableWrapper(nested).unbatch(unbatch_level=0)) == nested
    assert list(IterableWrapper([[(0, 1)], [(2, 3)]]).unbatch()) == [(0, 1), (2, 3)]  # tuples are samples
    assert list(IterableWrapper(range(10)).batch(3).unbatch()) == list(range(10))
    with pytest.raises(jt.MetajitIndexError, match="unbatch_level=3 goes deeper"):
        list(IterableWrapper(nested).unbatch(unbatch_level=3))
    with pytest.raises(jt.MetajitValueError, match="unbatch_level must be -1"):
        IterableWrapper(nested).unbatch(unbatch_level=-2)


def test_collate_stacks_batches_into_vars_like_the_dataloader():
    samples = [(np.full(2, i, np.float32), {"label": i}) for i in range(5)]
    batches = list(IterableWrapper(samples).batch(2).collate())
    assert len(batches) == 3
    features, labels = batches[1]
    assert isinstance(features, jt.Var) and features.numpy().tolist() == [[2, 2], [3, 3]]
    assert labels["label"].numpy().tolist() == [2, 3]
    assert list(IterableWrapper([[1, 2]]).collate(collate_fn=sum)) == [3]


def test_header_cycle_enumerate_and_lengths():
    assert list(IterableWrapper(range(5)).header(2)) == [0, 1] and len(IterableWrapper(range(5)).header(9)) == 5
    assert list(IterableWrapper(range(5)).header(None)) == list(range(5))
    with pytest.raises(DataPipeLengthError, match="at most 2 items"):
        len(IterableWrapper(range(5)).filter(bool).header(2))
    assert list(IterableWrapper("ab").cycle(3)) == list("ababab") and len(IterableWrapper("ab").cycle(3)) == 6
    assert list(IterableWrapper("ab").cycle().header(5)) == list(itertools.islice(itertools.cycle("ab"), 5))
    assert list(IterableWrapper([]).cycle()) == []
    with pytest.raises(TypeError, match="repeats forever"):
        len(IterableWrapper("ab").cycle())
    assert list(IterableWrapper("ab").enumerate()) == list(enumerate("ab"))


class CountingSource:
    """A re-iterable source that counts how often it was read."""

    def __init__(self, values):
        self.values, self.reads = values, 0

    def __iter__(self):
        self.reads += 1
        return iter(self.values)


def test_in_memory_cache_reads_the_source_once():
    source = CountingSource(list(range(5)))
    cached = IterableWrapper(source).map(lambda x: x * 2).in_memory_cache()
    with pytest.raises(TypeError):
        len(IterableWrapper(iter([])).in_memory_cache())
    first = list(itertools.islice(cached, 2))  # an early stop caches nothing
    assert first == [0, 2] and list(cached) == list(cached) == [0, 2, 4, 6, 8]
    assert source.reads == 2 and len(cached) == 5


def test_in_memory_cache_keeps_what_fits_and_rereads_the_rest():
    source = CountingSource([np.zeros(2**17) for _ in range(4)])  # 1 MiB each
    cached = IterableWrapper(source).in_memory_cache(size=2.5)
    assert len(list(cached)) == 4 and len(cached.cached) == 2 and not cached.cached_everything
    again = list(cached)
    assert len(again) == 4 and again[0] is source.values[0] and again[3] is source.values[3]
    assert source.reads == 2


def test_approximate_bytes_counts_arrays_and_containers():
    assert approximate_bytes(np.zeros(1000)) == 8000
    assert approximate_bytes((np.zeros(10), {"a": np.zeros(5)})) > 120
