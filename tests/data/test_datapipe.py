"""The pipe base classes: registration as methods, lengths, graph walking, pickling."""
import pickle

import pytest

import metajit as jt
from metajit.data import (DataPipeLengthError, IterableWrapper, IterDataPipe, MapDataPipe, SequenceWrapper,
                          datapipe_graph, functional_datapipe)
from metajit.data.datapipe import check_count, check_datapipes


@functional_datapipe("repeat_each_for_test")
class RepeatEach(IterDataPipe):
    def __init__(self, source_datapipe, times):
        self.source_datapipe, self.times = source_datapipe, times

    def __iter__(self):
        for item in self.source_datapipe:
            yield from [item] * self.times


@functional_datapipe("negate_for_test")
class Negate(MapDataPipe):
    def __init__(self, source_datapipe):
        self.source_datapipe = source_datapipe

    def __getitem__(self, index):
        return -self.source_datapipe[index]

    def __len__(self):
        return len(self.source_datapipe)


def double(x):
    return 2 * x


def test_registered_classes_become_methods_of_their_kind_only():
    assert list(IterableWrapper([1, 2]).repeat_each_for_test(2)) == [1, 1, 2, 2]
    assert list(SequenceWrapper([1, 2]).negate_for_test()) == [-1, -2]
    assert not hasattr(SequenceWrapper([1]), "repeat_each_for_test")
    assert not hasattr(IterableWrapper([1]), "negate_for_test")
    assert "RepeatEach" in IterableWrapper.repeat_each_for_test.__doc__


def test_registration_refuses_taken_names_and_non_pipes():
    with pytest.raises(jt.MetajitValueError, match="'map' is already registered to Mapper"):
        functional_datapipe("map")(RepeatEach)
    with pytest.raises(jt.MetajitValueError, match="a method of IterDataPipe"):
        functional_datapipe("for_epoch")(RepeatEach)
    with pytest.raises(jt.MetajitValueError, match="subclass of IterDataPipe or MapDataPipe"):
        functional_datapipe("plain")(dict)
    with pytest.raises(jt.MetajitValueError, match="called_on"):
        functional_datapipe("other", called_on=dict)


def test_pipes_are_lazy_and_reiterable():
    calls = []
    pipe = IterableWrapper(range(3)).map(lambda x: calls.append(x) or x)
    assert calls == []
    assert list(pipe) == list(pipe) == [0, 1, 2]
    assert calls == [0, 1, 2, 0, 1, 2]


def test_unknown_length_raises_type_error_and_list_still_works():
    pipe = IterableWrapper(range(5)).filter(lambda x: x > 1)
    with pytest.raises(TypeError, match="no length known"):
        len(pipe)
    with pytest.raises(DataPipeLengthError):
        len(IterableWrapper(iter([1])))
    assert list(pipe) == [2, 3, 4]
    assert len(IterableWrapper(range(5)).map(double).batch(2)) == 3


def test_graph_lists_each_reachable_pipe_once():
    source = IterableWrapper(range(4))
    left, right = source.fork(2)
    graph = datapipe_graph(left.map(double).zip(right))
    assert [type(node).__name__ for node in graph] == ["Zipper", "Mapper", "_Branch", "_Branch", "_Copies",
                                                       "IterableWrapper"]
    assert graph[-1] is source


def test_pipes_with_module_level_functions_pickle_and_lambdas_do_not():
    pipe = IterableWrapper(range(6)).map(double).shuffle(seed=3).batch(2)
    copy = pickle.loads(pickle.dumps(pipe))
    assert list(copy) == list(pipe)  # both at their first seeded epoch
    assert sorted(sum(list(copy), [])) == [0, 2, 4, 6, 8, 10]
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(IterableWrapper(range(3)).map(lambda x: x))


def test_argument_checks_name_the_argument():
    with pytest.raises(jt.MetajitValueError, match="batch: batch_size must be an int >= 1, got 0"):
        check_count("batch: batch_size", 0)
    with pytest.raises(jt.MetajitValueError, match="zip takes IterDataPipes, but input 1 is a list"):
        check_datapipes("zip", (IterableWrapper([]), [1]))
    with pytest.raises(jt.MetajitValueError, match="zip needs at least one"):
        check_datapipes("zip", ())
