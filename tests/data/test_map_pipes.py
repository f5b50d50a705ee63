"""Map pipes and the iter <-> map bridges against lists and dicts."""
import pickle

import pytest

import metajit as jt
from metajit.data import DataPipeKeyError, IterableWrapper, SequenceWrapper


def square(x):
    return x * x


def test_sequence_map_and_lazy_reads():
    reads = []
    pipe = SequenceWrapper(list(range(6))).map(lambda x: reads.append(x) or x * x)
    assert pipe[4] == 16 and reads == [4] and len(pipe) == 6
    assert list(pipe) == [x * x for x in range(6)]
    assert SequenceWrapper([(1, "a")]).map(str.upper, input_col=1)[0] == (1, "A")


@pytest.mark.parametrize("size,drop_last", [(2, False), (2, True), (6, False), (7, True)])
def test_batch_matches_slices(size, drop_last):
    values = list(range(6))
    pipe = SequenceWrapper(values).batch(size, drop_last=drop_last)
    expected = [values[i:i + size] for i in range(0, 6, size)]
    expected = [b for b in expected if len(b) == size] if drop_last else expected
    assert list(pipe) == expected and len(pipe) == len(expected)
    with pytest.raises(jt.MetajitIndexError, match="out of range"):
        pipe[len(expected)]


def test_shuffle_gives_a_seeded_iter_pipe_of_every_item():
    pipe = SequenceWrapper(list("abcdefgh")).map(str.upper)
    first = list(pipe.shuffle(seed=1))
    shuffled = pipe.shuffle(seed=1)
    epochs = [list(shuffled), list(shuffled)]
    assert epochs[0] == first and epochs[0] != epochs[1]
    assert sorted(epochs[0]) == list("ABCDEFGH") and len(shuffled) == 8
    assert list(pipe.shuffle(seed=2)) != first
    assert sorted(pipe.shuffle(indices=[0, 2], seed=0)) == ["A", "C"]
    assert list(pipe.shuffle().set_shuffle(False)) == list("ABCDEFGH")
    assert len(list(shuffled.batch(3).unbatch())) == 8  # an iter pipe: iter methods apply


def test_zip_and_concat_by_index():
    a, b = SequenceWrapper([1, 2, 3]), SequenceWrapper("xy")
    assert list(a.zip(b)) == list(zip([1, 2, 3], "xy")) and len(a.zip(b)) == 2
    both = a.concat(b, SequenceWrapper([]))
    assert [both[i] for i in range(len(both))] == [1, 2, 3, "x", "y"]
    with pytest.raises(jt.MetajitIndexError, match=r"index 5 is out of range\(5\)"):
        both[5]
    with pytest.raises(jt.MetajitValueError, match="concat takes MapDataPipes, but input 1 is a IterableWrapper"):
        a.concat(IterableWrapper([1]))


def test_map_to_iter_and_back():
    as_iter = SequenceWrapper("abc").to_iter_datapipe()
    assert list(as_iter.enumerate()) == list(enumerate("abc")) and len(as_iter) == 3
    pairs = IterableWrapper([("x", 1), ("y", 2)]).to_map_datapipe()
    assert pairs["y"] == 2 and len(pairs) == 2 and list(pairs) == [1, 2]
    people = IterableWrapper([{"id": 7, "name": "Ada"}, {"id": 3, "name": "Bo"}])
    by_id = people.to_map_datapipe(key_fn=lambda person: person["id"])
    assert by_id[3]["name"] == "Bo" and list(by_id.keys()) == [7, 3]
    lengths = IterableWrapper(["ab", "c"]).to_map_datapipe(key_value_fn=lambda s: (s, len(s)))
    assert lengths["ab"] == 2 and list(lengths.map(square)) == [4, 1]
    assert lengths.batch(1)[1] == [1]


def test_keyed_map_errors_name_the_key():
    pairs = IterableWrapper([("x", 1)]).to_map_datapipe()
    with pytest.raises(DataPipeKeyError, match="no item has the key 'z'"):
        pairs["z"]
    with pytest.raises(KeyError):
        pairs["z"]
    with pytest.raises(jt.MetajitValueError, match="key 'x' occurs twice"):
        len(IterableWrapper([("x", 1), ("x", 2)]).to_map_datapipe())
    with pytest.raises(jt.MetajitValueError, match=r"expected a \(key, value\) pair, got int"):
        len(IterableWrapper([1]).to_map_datapipe())
    with pytest.raises(jt.MetajitValueError, match="not both"):
        IterableWrapper([]).to_map_datapipe(key_fn=len, key_value_fn=len)


def test_map_pipes_pickle():
    pipe = SequenceWrapper(list(range(5))).map(square).batch(2)
    assert list(pickle.loads(pickle.dumps(pipe))) == list(pipe)
