"""Iter pipes with several inputs (``concat``, ``zip``) or several outputs (``fork``,
``demux``)::

    evens, odds = IterableWrapper(range(6)).demux(2, lambda x: x % 2)
    list(evens.zip(odds))  # [(0, 1), (2, 3), (4, 5)]

The outputs of one ``fork``/``demux`` share a single reading of the source: an item read
for one output waits in the others' buffers (at most ``buffer_size`` items each, ``None``
for no limit) until they read it, so read the outputs side by side (``zip``, ``concat`` of
short pipes, alternating loops). Starting an output over (a new epoch) while another is
part-way restarts the source for all of them.
"""
import collections
import itertools

from ..errors import MetajitValueError
from .datapipe import (DataPipeBufferError, DataPipeLengthError, DataPipeStateError, IterDataPipe, check_count,
                       check_datapipes, functional_datapipe)


@functional_datapipe("concat")
class Concater(IterDataPipe):
    """The items of each pipe in turn::

        list(IterableWrapper([1, 2]).concat(IterableWrapper([3])))  # [1, 2, 3]
    """

    def __init__(self, *datapipes):
        self.datapipes = check_datapipes("concat", datapipes)

    def __iter__(self):
        return itertools.chain.from_iterable(self.datapipes)

    def __len__(self):
        return sum(len(pipe) for pipe in self.datapipes)


@functional_datapipe("zip")
class Zipper(IterDataPipe):
    """Tuples of one item from each pipe, as long as the shortest::

        list(IterableWrapper([1, 2, 3]).zip(IterableWrapper("ab")))  # [(1, 'a'), (2, 'b')]
    """

    def __init__(self, *datapipes):
        self.datapipes = check_datapipes("zip", datapipes)

    def __iter__(self):
        return zip(*self.datapipes)

    def __len__(self):
        return min(len(pipe) for pipe in self.datapipes)


_END = object()


class _Branches(IterDataPipe):
    """One reading of ``source_datapipe`` routed to ``num_outputs`` outputs (`_Branch`
    pipes) through per-output buffers; a subclass says which outputs get an item. Not
    iterated itself: it is a pipe so that the outputs' graphs reach the source."""

    operation = "branches"

    def __init__(self, source_datapipe, num_outputs, buffer_size):
        self.source_datapipe = source_datapipe
        self.num_outputs = check_count(f"{self.operation}: num_instances", num_outputs)
        if buffer_size == -1:  # PyTorch's spelling of "no limit"
            buffer_size = None
        self.buffer_size = None if buffer_size is None else check_count(f"{self.operation}: buffer_size", buffer_size)
        self.generation = 0
        self._start_reading()

    def targets(self, item):
        """The outputs that receive ``item``."""
        raise NotImplementedError

    def outputs(self):
        """The output pipes, as a tuple."""
        return tuple(_Branch(self, index) for index in range(self.num_outputs))

    def _start_reading(self):
        self.items, self.started, self.finished = None, set(), set()
        self.buffers = [collections.deque() for _ in range(self.num_outputs)]

    def __getstate__(self):  # the configuration, without a reading in progress
        return {name: value for name, value in vars(self).items()
                if name not in ("items", "started", "finished", "buffers")}

    def __setstate__(self, state):
        vars(self).update(state)
        self._start_reading()

    def __iter__(self):
        raise DataPipeStateError(f"{self.operation}: iterate its outputs, not the object that feeds them")

    def begin(self, output):
        """Output ``output`` starts an iteration; returns the generation it belongs to."""
        if self.items is None or output in self.started:
            self._start_reading()
            self.items = iter(self.source_datapipe)
            self.generation += 1
        self.started.add(output)
        return self.generation

    def end(self, output, generation):
        """Output ``output`` stopped reading (finished or abandoned): buffer nothing more for it."""
        if generation == self.generation:
            self.finished.add(output)
            self.buffers[output].clear()

    def next_item(self, output, generation):
        """The next item for ``output``, or ``_END``."""
        if generation != self.generation:
            raise DataPipeStateError(f"{self.operation}: output {output}'s iterator was invalidated because an "
                                     "output started over; start all outputs together and read them side by side")
        buffer = self.buffers[output]
        while not buffer:
            item = next(self.items, _END)
            if item is _END:
                return _END
            targets = self.targets(item)
            for target in targets:
                if target != output and target not in self.finished:
                    self._store(target, item)
            if output in targets:
                return item
        return buffer.popleft()

    def _store(self, output, item):
        buffer = self.buffers[output]
        if self.buffer_size is not None and len(buffer) >= self.buffer_size:
            raise DataPipeBufferError(f"{self.operation}: output {output} has {len(buffer)} unread items, the "
                                      f"buffer_size limit; read the outputs side by side, or raise buffer_size "
                                      "(None for no limit)")
        buffer.append(item)


class _Branch(IterDataPipe):
    """Output ``index`` of a fork or demux."""

    def __init__(self, branches, index):
        self.branches, self.index = branches, index

    def __iter__(self):
        generation = self.branches.begin(self.index)
        try:
            while (item := self.branches.next_item(self.index, generation)) is not _END:
                yield item
        finally:
            self.branches.end(self.index, generation)

    def __len__(self):
        if not isinstance(self.branches, _Copies):
            raise DataPipeLengthError("demux: an output's length is unknown before the classifier has seen "
                                      "every item")
        return len(self.branches.source_datapipe)


class _Copies(_Branches):
    operation = "fork"

    def targets(self, item):
        return range(self.num_outputs)


class _Classes(_Branches):
    operation = "demux"

    def __init__(self, source_datapipe, num_outputs, classifier_fn, drop_none, buffer_size):
        self.classifier_fn, self.drop_none = classifier_fn, drop_none
        super().__init__(source_datapipe, num_outputs, buffer_size)

    def targets(self, item):
        output = self.classifier_fn(item)
        if output is None and self.drop_none:
            return ()
        if isinstance(output, bool) or not isinstance(output, int) or not 0 <= output < self.num_outputs:
            hint = "; pass drop_none=True to drop such items" if output is None else ""
            raise MetajitValueError(f"demux: classifier_fn returned {output!r} for an item, not an output "
                                    f"number in range({self.num_outputs}){hint}")
        return (output,)


@functional_datapipe("fork")
class Forker(IterDataPipe):
    """``num_instances`` pipes that each yield every item of the source, read once::

        images, labels = IterableWrapper([(1, "a"), (2, "b")]).fork(2)
        list(images.map(lambda s: s[0]).zip(labels.map(lambda s: s[1])))  # [(1, 'a'), (2, 'b')]

    Returns a tuple of pipes (the constructor does too).
    """

    def __new__(cls, source_datapipe, num_instances, buffer_size=1000):
        return _Copies(source_datapipe, num_instances, buffer_size).outputs()


@functional_datapipe("demux")
class Demultiplexer(IterDataPipe):
    """``num_instances`` pipes; output ``k`` yields the items for which ``classifier_fn``
    returns ``k`` (items classified ``None`` are dropped with ``drop_none=True``)::

        small, large = IterableWrapper([1, 50, 2, 70]).demux(2, lambda x: int(x >= 10))
        list(small), list(large)  # [1, 2], [50, 70]

    Returns a tuple of pipes (the constructor does too).
    """

    def __new__(cls, source_datapipe, num_instances, classifier_fn, drop_none=False, buffer_size=1000):
        return _Classes(source_datapipe, num_instances, classifier_fn, drop_none, buffer_size).outputs()
