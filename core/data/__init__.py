"""Composable data pipes (TorchData's DataPipes) beside `metajit.dataset`: lazy,
re-iterable stages chained as methods, which feed `metajit.dataset.DataLoader` (worker
processes included) or a Jittor-style `Dataset`::

    from metajit.data import IterableWrapper
    from metajit.dataset import DataLoader

    pipe = (IterableWrapper(range(1000)).shuffle().set_seed(0).sharding_filter()
            .map(lambda i: (np.full(3, i, np.float32), i % 10)))
    for features, labels in DataLoader(pipe, batch_size=64, num_workers=2):
        ...

See docs/data_pipes.md for every pipe and for sharding by worker and MPI rank.
"""
from .bridge import DataPipeDataset, prepare_epoch
from .columns import apply_to_columns
from .combining import Concater, Demultiplexer, Forker, Zipper
from .datapipe import (DataPipeBufferError, DataPipeKeyError, DataPipeLengthError, DataPipeStateError,
                       IterDataPipe, MapDataPipe, datapipe_graph, functional_datapipe)
from .file_pipes import CSVParser, FileLister, FileOpener, LineReader, list_files
from .iter_pipes import (Batcher, Collator, Cycler, Enumerator, Filter, Header, InMemoryCacheHolder,
                         IterableWrapper, Mapper, UnBatcher)
from .map_pipes import (IterToMapConverter, MapBatcher, MapConcater, MapMapper, MapShuffler, MapToIterConverter,
                        MapZipper, SequenceWrapper)
from .sharding import Shard, ShardingFilter
from .shuffle import SeededShuffling, Shuffler
