"""Iter pipes that transform one source: wrap, map, filter, batch, unbatch, collate,
header, cycle, enumerate and the in-memory cache::

    pipe = IterableWrapper(range(10)).filter(lambda x: x % 3).map(lambda x: (x, x * x)).batch(3)
    list(pipe)  # [[(1, 1), (2, 4), (4, 16)], [(5, 25), (7, 49), (8, 64)]]

Shuffling, sharding and the pipes with several inputs or outputs have modules of their own.
"""
import itertools
import sys

from ..dataset import collate
from ..errors import MetajitIndexError, MetajitValueError
from .columns import apply_to_columns, check_columns, read_columns
from .datapipe import DataPipeLengthError, IterDataPipe, check_count, functional_datapipe


class IterableWrapper(IterDataPipe):
    """The items of any re-iterable Python object (a list, a range, a numpy array)::

        list(IterableWrapper([3, 1, 2]))  # [3, 1, 2]

    A one-shot iterator (a generator) is read only once: later epochs see it empty.
    """

    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def __len__(self):
        if not hasattr(self.iterable, "__len__"):
            return super().__len__()
        return len(self.iterable)


@functional_datapipe("map")
class Mapper(IterDataPipe):
    """``fn`` applied to every item; with ``input_col`` to that column of a tuple/list/dict
    item (or ``fn(*columns)`` for a list of columns), the result replacing the column or
    stored in ``output_col`` (``-1`` appends)::

        list(IterableWrapper([1, 2]).map(lambda x: x + 1))  # [2, 3]
        list(IterableWrapper([(1, "a")]).map(str.upper, input_col=1))  # [(1, 'A')]
        list(IterableWrapper([{"x": 2}]).map(lambda x: x * x, input_col="x", output_col="y"))
        # [{'x': 2, 'y': 4}]
    """

    def __init__(self, source_datapipe, fn, input_col=None, output_col=None):
        check_columns("map", input_col, output_col)
        self.source_datapipe, self.fn = source_datapipe, fn
        self.input_col, self.output_col = input_col, output_col

    def __iter__(self):
        for item in self.source_datapipe:
            yield apply_to_columns(self.fn, item, self.input_col, self.output_col)

    def __len__(self):
        return len(self.source_datapipe)


@functional_datapipe("filter")
class Filter(IterDataPipe):
    """The items for which ``filter_fn(item)`` (or ``filter_fn`` of the ``input_col``
    entries) is true::

        list(IterableWrapper(range(6)).filter(lambda x: x % 2 == 0))  # [0, 2, 4]
    """

    def __init__(self, source_datapipe, filter_fn, input_col=None):
        self.source_datapipe, self.filter_fn, self.input_col = source_datapipe, filter_fn, input_col

    def __iter__(self):
        for item in self.source_datapipe:
            if self.filter_fn(*read_columns(item, self.input_col)):
                yield item


@functional_datapipe("batch")
class Batcher(IterDataPipe):
    """Lists of ``batch_size`` consecutive items, the last one shorter unless ``drop_last``::

        list(IterableWrapper(range(5)).batch(2))  # [[0, 1], [2, 3], [4]]
        list(IterableWrapper(range(5)).batch(2, drop_last=True))  # [[0, 1], [2, 3]]
    """

    def __init__(self, source_datapipe, batch_size, drop_last=False):
        self.source_datapipe = source_datapipe
        self.batch_size = check_count("batch: batch_size", batch_size)
        self.drop_last = drop_last

    def __iter__(self):
        items = iter(self.source_datapipe)
        while batch := list(itertools.islice(items, self.batch_size)):
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch

    def __len__(self):
        count = len(self.source_datapipe)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)


@functional_datapipe("unbatch")
class UnBatcher(IterDataPipe):
    """The items of list items, ``unbatch_level`` levels down (``-1``: every level); tuples
    are samples and stay whole::

        list(IterableWrapper([[0, 1], [2]]).unbatch())  # [0, 1, 2]
        list(IterableWrapper([[[0], [1, 2]]]).unbatch(unbatch_level=-1))  # [0, 1, 2]
    """

    def __init__(self, source_datapipe, unbatch_level=1):
        if not isinstance(unbatch_level, int) or unbatch_level < -1:
            raise MetajitValueError(f"unbatch: unbatch_level must be -1 (every level) or >= 0, got {unbatch_level!r}")
        self.source_datapipe, self.unbatch_level = source_datapipe, unbatch_level

    def __iter__(self):
        for item in self.source_datapipe:
            yield from self._unbatch(item, self.unbatch_level)

    def _unbatch(self, item, level):
        if level == 0 or (level == -1 and not isinstance(item, list)):
            yield item
        elif not isinstance(item, list):
            raise MetajitIndexError(f"unbatch: unbatch_level={self.unbatch_level} goes deeper than the nested "
                                    f"lists (found a {type(item).__name__}); use a smaller level or -1")
        else:
            for member in item:
                yield from self._unbatch(member, level - 1 if level > 0 else -1)


@functional_datapipe("collate")
class Collator(IterDataPipe):
    """Each item (a batch: a list of samples) collated by ``collate_fn``, by default
    `metajit.dataset.collate`, which stacks arrays, numbers and Vars (also inside tuples
    and dicts) into Vars, as `DataLoader` does::

        images, labels = next(iter(IterableWrapper([(np.zeros(3), 1)] * 4).batch(4).collate()))
        images.shape, labels.shape  # [4, 3], [4]
    """

    def __init__(self, source_datapipe, collate_fn=None):
        self.source_datapipe, self.collate_fn = source_datapipe, collate_fn or collate

    def __iter__(self):
        for batch in self.source_datapipe:
            yield self.collate_fn(batch)

    def __len__(self):
        return len(self.source_datapipe)


@functional_datapipe("header")
class Header(IterDataPipe):
    """The first ``limit`` items (all of them with ``limit=None``)::

        list(IterableWrapper(range(100)).header(3))  # [0, 1, 2]
    """

    def __init__(self, source_datapipe, limit=10):
        self.source_datapipe = source_datapipe
        self.limit = None if limit is None else check_count("header: limit", limit, minimum=0)

    def __iter__(self):
        return itertools.islice(self.source_datapipe, self.limit)

    def __len__(self):
        if self.limit is None:
            return len(self.source_datapipe)
        try:
            return min(len(self.source_datapipe), self.limit)
        except DataPipeLengthError:
            raise DataPipeLengthError(f"header: at most {self.limit} items, but the source's length is unknown") \
                from None


@functional_datapipe("cycle")
class Cycler(IterDataPipe):
    """The source's items ``count`` times over, or forever with ``count=None`` (an empty
    source stays empty)::

        list(IterableWrapper([1, 2]).cycle(2))  # [1, 2, 1, 2]
        list(IterableWrapper([1, 2]).cycle().header(5))  # [1, 2, 1, 2, 1]
    """

    def __init__(self, source_datapipe, count=None):
        self.source_datapipe = source_datapipe
        self.count = None if count is None else check_count("cycle: count", count, minimum=0)

    def __iter__(self):
        for _ in itertools.count() if self.count is None else range(self.count):
            empty = True
            for item in self.source_datapipe:
                empty = False
                yield item
            if empty:
                return

    def __len__(self):
        if self.count is None:
            raise DataPipeLengthError("cycle: count=None repeats forever and has no length")
        return len(self.source_datapipe) * self.count


@functional_datapipe("enumerate")
class Enumerator(IterDataPipe):
    """``(index, item)`` pairs, counting from ``starting_index``::

        list(IterableWrapper("ab").enumerate(starting_index=1))  # [(1, 'a'), (2, 'b')]
    """

    def __init__(self, source_datapipe, starting_index=0):
        self.source_datapipe, self.starting_index = source_datapipe, starting_index

    def __iter__(self):
        return enumerate(self.source_datapipe, self.starting_index)

    def __len__(self):
        return len(self.source_datapipe)


def approximate_bytes(item):
    """Memory an item holds: ``nbytes`` of arrays, ``sys.getsizeof`` of other objects,
    summed through tuples, lists and dicts::

        approximate_bytes(np.zeros(1000))  # 8000
    """
    if isinstance(getattr(item, "nbytes", None), int):
        return item.nbytes
    if isinstance(item, (tuple, list)):
        return sys.getsizeof(item) + sum(approximate_bytes(member) for member in item)
    if isinstance(item, dict):
        return sys.getsizeof(item) + sum(approximate_bytes(k) + approximate_bytes(v) for k, v in item.items())
    return sys.getsizeof(item)


@functional_datapipe("in_memory_cache")
class InMemoryCacheHolder(IterDataPipe):
    """The source's items, kept in memory by the first complete iteration and replayed
    from there afterwards. With ``size`` (megabytes), only the items that fit are kept and
    later iterations read the rest from the source again::

        decoded = FileLister("data").open_files().readlines().in_memory_cache(size=512)

    An iteration stopped early caches nothing. Each DataLoader worker process holds its own
    cache, which lasts one epoch.
    """

    def __init__(self, source_datapipe, size=None):
        self.source_datapipe = source_datapipe
        self.size_bytes = None if size is None else size * 2**20
        self.cached, self.cached_everything = None, False

    def __iter__(self):
        if self.cached is not None:
            yield from self.cached
            if not self.cached_everything:
                yield from itertools.islice(self.source_datapipe, len(self.cached), None)
            return
        cache, used, fits = [], 0, True
        for item in self.source_datapipe:
            if fits:
                used += approximate_bytes(item)
                fits = self.size_bytes is None or used <= self.size_bytes
                if fits:
                    cache.append(item)
            yield item
        self.cached, self.cached_everything = cache, fits

    def __len__(self):
        return len(self.cached) if self.cached_everything else len(self.source_datapipe)
