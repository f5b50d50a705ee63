"""Map pipes (read by key) and the bridges between the two kinds::

    squares = SequenceWrapper(range(5)).map(lambda x: x * x)
    squares[3], len(squares)  # 9, 5
    list(squares.batch(2))  # [[0, 1], [4, 9], [16]]
    list(squares.shuffle(seed=0))  # the five squares in a seeded random order (an iter pipe)

    by_name = IterableWrapper([("a", 1), ("b", 2)]).to_map_datapipe()
    by_name["b"]  # 2
"""
import bisect
import itertools

from ..errors import MetajitIndexError, MetajitValueError
from .columns import apply_to_columns, check_columns
from .datapipe import DataPipeKeyError, IterDataPipe, MapDataPipe, check_count, check_datapipes, functional_datapipe
from .shuffle import SeededShuffling


class SequenceWrapper(MapDataPipe):
    """The items of a sequence (a list, a range, a numpy array), by index::

        SequenceWrapper(["a", "b"])[1]  # 'b'
    """

    def __init__(self, sequence):
        self.sequence = sequence

    def __getitem__(self, index):
        return self.sequence[index]

    def __len__(self):
        return len(self.sequence)


@functional_datapipe("map")
class MapMapper(MapDataPipe):
    """``fn`` applied to each item when it is read (``input_col``/``output_col`` as for the
    iter pipes' ``map``)::

        SequenceWrapper([1, 2]).map(lambda x: -x)[1]  # -2
    """

    def __init__(self, source_datapipe, fn, input_col=None, output_col=None):
        check_columns("map", input_col, output_col)
        self.source_datapipe, self.fn = source_datapipe, fn
        self.input_col, self.output_col = input_col, output_col

    def __getitem__(self, key):
        return apply_to_columns(self.fn, self.source_datapipe[key], self.input_col, self.output_col)

    def __len__(self):
        return len(self.source_datapipe)

    def keys(self):
        return self.source_datapipe.keys()


@functional_datapipe("batch")
class MapBatcher(MapDataPipe):
    """Item ``i`` is the list of the source's items ``i * batch_size`` up to
    ``(i + 1) * batch_size`` (in key order); the last batch is shorter unless ``drop_last``::

        SequenceWrapper(range(5)).batch(2)[2]  # [4]
    """

    def __init__(self, source_datapipe, batch_size, drop_last=False):
        self.source_datapipe = source_datapipe
        self.batch_size = check_count("batch: batch_size", batch_size)
        self.drop_last = drop_last

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise MetajitIndexError(f"batch: batch {index} is out of range({len(self)})")
        keys = self.source_datapipe.keys()
        if not isinstance(keys, (range, list, tuple)):
            keys = list(keys)
        return [self.source_datapipe[key] for key in keys[index * self.batch_size:(index + 1) * self.batch_size]]

    def __len__(self):
        count = len(self.source_datapipe)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)


@functional_datapipe("shuffle", called_on=MapDataPipe)
class MapShuffler(SeededShuffling, IterDataPipe):
    """An iter pipe of the map pipe's items (those of ``indices``, by default all keys) in a
    random order, a new one each iteration (seeded as the iter pipes' ``shuffle``)::

        sorted(SequenceWrapper("abc").shuffle(seed=3))  # ['a', 'b', 'c']
    """

    def __init__(self, source_datapipe, indices=None, seed=None):
        self.source_datapipe, self.indices = source_datapipe, None if indices is None else list(indices)
        self.init_shuffling(seed)

    def __iter__(self):
        keys = list(self.source_datapipe.keys()) if self.indices is None else list(self.indices)
        if self.shuffle_enabled:
            self.epoch_random().shuffle(keys)
        return (self.source_datapipe[key] for key in keys)

    def __len__(self):
        return len(self.source_datapipe) if self.indices is None else len(self.indices)


@functional_datapipe("zip")
class MapZipper(MapDataPipe):
    """Item ``i`` is the tuple of item ``i`` of each pipe; as long as the shortest::

        SequenceWrapper([1, 2]).zip(SequenceWrapper("abc"))[1]  # (2, 'b')
    """

    def __init__(self, *datapipes):
        self.datapipes = check_datapipes("zip", datapipes, MapDataPipe)

    def __getitem__(self, index):
        return tuple(pipe[index] for pipe in self.datapipes)

    def __len__(self):
        return min(len(pipe) for pipe in self.datapipes)


@functional_datapipe("concat")
class MapConcater(MapDataPipe):
    """The items of each pipe in turn, indexed ``0 .. total - 1``::

        SequenceWrapper([1, 2]).concat(SequenceWrapper([3]))[2]  # 3
    """

    def __init__(self, *datapipes):
        self.datapipes = check_datapipes("concat", datapipes, MapDataPipe)

    def __getitem__(self, index):
        ends = list(itertools.accumulate(len(pipe) for pipe in self.datapipes))
        if not isinstance(index, int) or not 0 <= index < ends[-1]:
            raise MetajitIndexError(f"concat: index {index!r} is out of range({ends[-1]})")
        piece = bisect.bisect_right(ends, index)
        start = ends[piece - 1] if piece else 0
        return self.datapipes[piece][index - start]

    def __len__(self):
        return sum(len(pipe) for pipe in self.datapipes)


@functional_datapipe("to_iter_datapipe", called_on=MapDataPipe)
class MapToIterConverter(IterDataPipe):
    """An iter pipe of the map pipe's items in key order::

        list(SequenceWrapper("ab").to_iter_datapipe().enumerate())  # [(0, 'a'), (1, 'b')]
    """

    def __init__(self, source_datapipe):
        self.source_datapipe = source_datapipe

    def __iter__(self):
        return iter(self.source_datapipe)

    def __len__(self):
        return len(self.source_datapipe)


@functional_datapipe("to_map_datapipe", called_on=IterDataPipe)
class IterToMapConverter(MapDataPipe):
    """A map pipe of the iter pipe's items by key: the items are ``(key, value)`` pairs, or
    ``key_value_fn(item)`` gives the pair, or ``key_fn(item)`` the key of the item itself.
    The source is read in full on first access; a repeated key is an error::

        people = IterableWrapper([{"id": 7, "name": "Ada"}]).to_map_datapipe(key_fn=lambda p: p["id"])
        people[7]["name"]  # 'Ada'
    """

    def __init__(self, source_datapipe, key_value_fn=None, key_fn=None):
        if key_value_fn is not None and key_fn is not None:
            raise MetajitValueError("to_map_datapipe: give key_value_fn (item -> (key, value)) or key_fn "
                                    "(item -> key), not both")
        self.source_datapipe, self.key_value_fn, self.key_fn = source_datapipe, key_value_fn, key_fn
        self.items = None

    def _pair(self, item):
        if self.key_fn is not None:
            return self.key_fn(item), item
        pair = item if self.key_value_fn is None else self.key_value_fn(item)
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise MetajitValueError(f"to_map_datapipe: expected a (key, value) pair, got {type(pair).__name__} "
                                    f"{pair!r:.80}; pass key_fn or key_value_fn")
        return pair

    def _loaded(self):
        if self.items is None:
            items = {}
            for key, value in map(self._pair, self.source_datapipe):
                if key in items:
                    raise MetajitValueError(f"to_map_datapipe: key {key!r} occurs twice; make the keys unique")
                items[key] = value
            self.items = items
        return self.items

    def __getitem__(self, key):
        items = self._loaded()
        if key not in items:
            raise DataPipeKeyError(f"to_map_datapipe: no item has the key {key!r}")
        return items[key]

    def __len__(self):
        return len(self._loaded())

    def keys(self):
        return self._loaded().keys()
