"""The two kinds of data pipe and their registration (TorchData's DataPipes).

An `IterDataPipe` is a lazy, re-iterable stage over samples; a `MapDataPipe` reads samples
by key. A pipe class decorated with ``@functional_datapipe("name")`` becomes a method of
every pipe of its kind, so stages chain::

    pipe = IterableWrapper(range(10)).map(lambda x: x * x).filter(lambda x: x % 2).batch(2)
    list(pipe)  # [[1, 9], [25, 49], [81]]

Pipes keep only their configuration (never a live iterator between epochs), so they pickle
whenever the functions given to them do.
"""
import collections

from ..dataset import IterableDataset
from ..errors import MetajitError, MetajitValueError


class DataPipeLengthError(MetajitError, TypeError):
    """``len()`` of a pipe whose length is not known without reading it (``len`` raises
    ``TypeError`` there, as for a generator)."""


class DataPipeBufferError(MetajitError, BufferError):
    """A ``fork``/``demux`` output fell more than ``buffer_size`` items behind the others."""


class DataPipeKeyError(MetajitError, KeyError):
    """A key that no item of a keyed map pipe has."""


class DataPipeStateError(MetajitError, RuntimeError):
    """An iterator that a newer iteration of the same pipe invalidated was read again."""


class _FunctionRegistry:
    """``register_function`` for the two pipe kinds; each keeps its own ``registered_functions``."""

    @classmethod
    def register_function(cls, name, pipe_class):
        """Make ``pipe.name(*args)`` mean ``pipe_class(pipe, *args)`` for every pipe of this kind."""
        if hasattr(cls, name):
            existing = cls.registered_functions.get(name)
            owner = f"registered to {existing.__name__}" if existing else f"a method of {cls.__name__}"
            raise MetajitValueError(f"functional_datapipe: {name!r} is already {owner}; "
                                    f"register {pipe_class.__name__} under another name")

        def method(self, *args, **kwargs):
            return pipe_class(self, *args, **kwargs)
        method.__name__ = method.__qualname__ = name
        method.__doc__ = f"``pipe.{name}(...)`` is ``{pipe_class.__name__}(pipe, ...)``.\n\n{pipe_class.__doc__ or ''}"
        cls.registered_functions[name] = pipe_class
        setattr(cls, name, method)


class IterDataPipe(IterableDataset, _FunctionRegistry):
    """Base of the pipes read by iteration. A subclass defines ``__iter__`` (a generator,
    so each iteration starts afresh) and, when it is known without reading, ``__len__``::

        @functional_datapipe("repeat_each")
        class RepeatEach(IterDataPipe):
            def __init__(self, source_datapipe, times):
                self.source_datapipe, self.times = source_datapipe, times

            def __iter__(self):
                for item in self.source_datapipe:
                    yield from [item] * self.times

        list(IterableWrapper([1, 2]).repeat_each(2))  # [1, 1, 2, 2]

    An iter pipe is a `metajit.dataset.IterableDataset`: `DataLoader` reads it directly.
    """

    registered_functions = {}

    def __len__(self):
        raise DataPipeLengthError(f"{type(self).__name__} has no length known before it is read; "
                                  "count the items with sum(1 for _ in pipe)")

    @property
    def shards_itself(self):
        """True when a ``sharding_filter`` stage keeps each DataLoader worker's and MPI rank's
        share itself (see `metajit.dataset.IterableDataset`)."""
        return any(getattr(node, "keeps_reader_share", False) for node in datapipe_graph(self))

    def for_epoch(self, shuffle, seed):
        """Prepare this pipe for one DataLoader epoch (see `metajit.data.bridge.prepare_epoch`)."""
        from .bridge import prepare_epoch  # the bridge imports the pipes, which import this module
        return prepare_epoch(self, shuffle, seed)


class MapDataPipe(_FunctionRegistry):
    """Base of the pipes read by key: a subclass defines ``__getitem__`` and ``__len__``, and
    ``keys()`` when its keys are not ``range(len(pipe))``. Iterating yields the items in key
    order::

        squares = SequenceWrapper([0, 1, 2, 3]).map(lambda x: x * x)
        squares[3], list(squares)  # 9, [0, 1, 4, 9]
    """

    registered_functions = {}

    def __getitem__(self, key):
        raise MetajitValueError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise DataPipeLengthError(f"{type(self).__name__} must define __len__")

    def keys(self):
        """The keys in iteration order: ``range(len(self))`` unless the pipe says otherwise."""
        return range(len(self))

    def __iter__(self):
        return (self[key] for key in self.keys())


def functional_datapipe(name, called_on=None):
    """Class decorator: register an `IterDataPipe` or `MapDataPipe` subclass as the method
    ``name`` of every pipe of its kind (of kind ``called_on`` instead, for a pipe that turns
    one kind into the other); its constructor takes the source pipe first::

        @functional_datapipe("scale")
        class Scale(IterDataPipe):
            def __init__(self, source_datapipe, factor):
                self.source_datapipe, self.factor = source_datapipe, factor

            def __iter__(self):
                return (item * self.factor for item in self.source_datapipe)

        list(IterableWrapper([1, 2]).scale(10))  # [10, 20]
    """
    def register(pipe_class):
        for kind in (IterDataPipe, MapDataPipe):
            if isinstance(pipe_class, type) and issubclass(pipe_class, kind):
                (called_on or kind).register_function(name, pipe_class)
                return pipe_class
        raise MetajitValueError(f"functional_datapipe({name!r}) decorates a subclass of IterDataPipe or "
                                f"MapDataPipe, not {pipe_class!r}")
    if called_on not in (None, IterDataPipe, MapDataPipe):
        raise MetajitValueError(f"functional_datapipe: called_on must be IterDataPipe or MapDataPipe, "
                                f"got {called_on!r}")
    return register


def _is_datapipe(value):
    return isinstance(value, (IterDataPipe, MapDataPipe))


def datapipe_graph(pipe):
    """Every pipe ``pipe`` reads from, directly or not, ``pipe`` first, each once, in
    breadth-first order, found through the pipes' attributes: a pipe, or a list or tuple
    of pipes (one that starts with a pipe; data lists are not searched)::

        source = IterableWrapper(range(4))
        [type(p).__name__ for p in datapipe_graph(source.map(str))]  # ['Mapper', 'IterableWrapper']
    """
    found, queue, seen = [], collections.deque([pipe]), set()
    while queue:
        node = queue.popleft()
        if id(node) in seen:
            continue
        seen.add(id(node))
        found.append(node)
        for value in vars(node).values():
            if isinstance(value, (list, tuple)) and value and _is_datapipe(value[0]):
                queue.extend(member for member in value if _is_datapipe(member))
            elif _is_datapipe(value):
                queue.append(value)
    return found


def check_count(what, value, minimum=1):
    """``value`` if it is an int of at least ``minimum``, else a `MetajitValueError` naming ``what``::

        check_count("Batcher: batch_size", 0)  # raises: Batcher: batch_size must be an int >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise MetajitValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return value


def check_datapipes(what, pipes, kind=IterDataPipe):
    """``pipes`` as a tuple if there is at least one and each is a ``kind`` pipe, else a
    `MetajitValueError` naming ``what`` and the first offender."""
    if not pipes:
        raise MetajitValueError(f"{what} needs at least one {kind.__name__}")
    for position, pipe in enumerate(pipes):
        if not isinstance(pipe, kind):
            raise MetajitValueError(f"{what} takes {kind.__name__}s, but input {position} is a {type(pipe).__name__}; "
                                    "wrap plain iterables in IterableWrapper, sequences in SequenceWrapper")
    return tuple(pipes)
