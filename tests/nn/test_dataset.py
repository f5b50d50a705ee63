"""Datasets and loaders: batching, shuffling by seed, drop_last, workers, collation."""
import multiprocessing
import os
import time

import numpy as np
import pytest

import metajit as jt
from metajit.dataset import DataLoader, Dataset, TensorDataset


class Squares(Dataset):
    def __init__(self, count, **attributes):
        super().__init__(**attributes)
        self.count = count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return np.array([index], np.float32), {"square": index * index}


def test_jittor_style_set_attrs_batches_in_order():
    batches = list(Squares(10).set_attrs(batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 1), (4, 1), (2, 1)]
    assert batches[1][1]["square"].numpy().tolist() == [16, 25, 36, 49]
    assert Squares(10).set_attrs(batch_size=4, drop_last=True).batch_len() == 2


def test_shuffle_is_deterministic_per_seed_and_epoch():
    data = TensorDataset(np.arange(20))
    first = [b[0].numpy().tolist() for b in data.set_attrs(batch_size=5, shuffle=True, seed=3)]
    again = [b[0].numpy().tolist() for b in TensorDataset(np.arange(20)).set_attrs(
        batch_size=5, shuffle=True, seed=3)]
    assert first == again and sorted(sum(first, [])) == list(range(20))
    second_epoch = [b[0].numpy().tolist() for b in data]
    assert second_epoch != first


@pytest.mark.parametrize("seeding", ["set_global_seed", "manual_seed"])
def test_shuffle_without_a_seed_follows_the_global_seed(seeding):
    """As torch.manual_seed does for torch's loader: jt.set_global_seed (Jittor) and
    jt.manual_seed (PyTorch) make the shuffled order and the random samplers' draws repeat
    from run to run, and the epochs still differ."""
    def two_epochs():
        getattr(jt, seeding)(7)
        loader = DataLoader(TensorDataset(np.arange(12)), batch_size=4, shuffle=True)
        return [[b[0].numpy().tolist() for b in loader] for _ in range(2)]
    first, again = two_epochs(), two_epochs()
    assert first == again and first[0] != first[1]

    def draws():
        getattr(jt, seeding)(3)
        return (list(jt.dataset.RandomSampler(range(10))), list(jt.dataset.WeightedRandomSampler([1.0] * 10, 5)))
    assert draws() == draws()


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_with_workers_keeps_order(workers):
    loader = DataLoader(Squares(9), batch_size=2, num_workers=workers)
    squares = [s for _, d in loader for s in d["square"].numpy().tolist()]
    assert squares == [i * i for i in range(9)] and len(loader) == 5


def test_bad_configuration_is_reported():
    with pytest.raises(jt.MetajitValueError, match="batch_size"):
        DataLoader(Squares(3), batch_size=0)
    with pytest.raises(jt.MetajitValueError, match="__len__"):
        len(Dataset())


MAIN_PROCESS = os.getpid()


class Countdown(jt.dataset.IterableDataset):
    """An iterable source; reports which worker read each sample."""

    def __init__(self, count):
        self.count = count

    def __iter__(self):
        reader = -1 if os.getpid() == MAIN_PROCESS else os.getpid()  # (asking get_worker_info would shard it)
        for value in range(self.count, 0, -1):
            yield value, reader


def torch_style_shards(base, worker_info):
    """PyTorch's documented IterableDataset: each worker keeps its share via get_worker_info."""
    class Shards(base):
        def __iter__(self):
            info = worker_info()
            first, step = (0, 1) if info is None else (info.id, info.num_workers)
            return iter(range(first, 11, step))
    return Shards()


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_a_source_sharding_itself_with_get_worker_info_is_read_once_as_torchs(workers):
    ours = DataLoader(torch_style_shards(jt.dataset.IterableDataset, jt.dataset.get_worker_info),
                      batch_size=2, num_workers=workers)
    theirs = torch.utils.data.DataLoader(torch_style_shards(torch.utils.data.IterableDataset,
                                                            torch.utils.data.get_worker_info),
                                         batch_size=2, num_workers=workers)
    our_samples = sorted(v for batch in ours for v in batch.numpy().tolist())
    assert our_samples == sorted(v for batch in theirs for v in batch.tolist()) == list(range(11))


class FailsAtThree(jt.dataset.IterableDataset):
    def __iter__(self):
        yield from (1, 2)
        raise ZeroDivisionError("three")


@pytest.mark.parametrize("workers", [0, 2])
def test_iterable_sources_are_batched_and_each_worker_reads_its_share(workers):
    loader = DataLoader(Countdown(9), batch_size=2, num_workers=workers)
    values, readers = zip(*[(v, w) for values, ids in loader for v, w in zip(values.numpy().tolist(),
                                                                         ids.numpy().tolist())])
    assert sorted(values) == list(range(1, 10))
    if workers:
        # worker k reads samples k, k + 2, ... of 9, 8, ..., 1; chunks of 2 come from the workers in turn
        assert values == (9, 7, 8, 6, 5, 3, 4, 2, 1)
        reader_of = dict(zip(values, readers))
        assert len(set(readers)) == 2 and -1 not in readers
        assert all(reader_of[value] == reader_of[9 - (9 - value) % 2] for value in range(1, 10))
    else:
        assert values == tuple(range(9, 0, -1)) and set(readers) == {-1}


def test_iterable_source_options_and_errors():
    # unbatched samples pass through default_convert, which makes tuples lists (torch's [[3, -1], ...])
    assert list(DataLoader(Countdown(3), batch_size=None)) == [[3, -1], [2, -1], [1, -1]]
    assert len(list(DataLoader(Countdown(5), batch_size=2, drop_last=True))) == 2
    with pytest.raises(jt.MetajitValueError, match="shuffle=True: Countdown yields samples in its own order"):
        list(DataLoader(Countdown(3), shuffle=True))
    with pytest.raises(jt.MetajitValueError, match="sampler needs a dataset indexed"):
        DataLoader(Countdown(3), sampler=[0, 1])
    with pytest.raises(jt.MetajitValueError, match="batch_size=None"):
        DataLoader(Squares(3), batch_size=None)
    with pytest.raises(ZeroDivisionError, match="(?s)in DataLoader worker process 0:.*three"):
        list(DataLoader(FailsAtThree(), batch_size=1, num_workers=2))


# PyTorch's DataLoader options: compared with torch.utils.data.DataLoader where the two
# should agree (which worker loads which batch, worker lifetimes, errors), not on orders
# drawn from different generators.

torch = pytest.importorskip("torch")
_initialised_as = -1  # set by `remember_worker` in each worker process


def remember_worker(worker_id):
    global _initialised_as
    _initialised_as = worker_id


def worker_info(framework):
    return (torch.utils.data if framework is torch else jt.dataset).get_worker_info()


class WhoLoads:
    """Item ``i`` is ``[i, the id worker_init_fn got, get_worker_info().id, the worker's pid]``
    (plain class: either framework's loader reads it)."""

    def __init__(self, count, framework=jt, delay=0.0):
        self.count, self.framework, self.delay = count, framework, delay

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        time.sleep(self.delay)
        return np.array([index, _initialised_as, worker_info(self.framework).id, os.getpid()], np.int64)


def load(framework, dataset, **options):
    loader_class = torch.utils.data.DataLoader if framework is torch else DataLoader
    return [np.asarray(batch.numpy()) for batch in loader_class(dataset, **options)]


@pytest.mark.filterwarnings("ignore:This DataLoader will create 3 worker processes")
def test_worker_init_fn_gets_each_workers_id_and_workers_take_batches_in_turn_as_torchs():
    seen = {}
    for framework in (jt, torch):
        batches = load(framework, WhoLoads(12, framework), batch_size=2, num_workers=3,
                       worker_init_fn=remember_worker)
        assert np.concatenate(batches)[:, 0].tolist() == list(range(12))
        assert all((batch[:, 1] == batch[:, 2]).all() for batch in batches)  # the id init_fn got is the worker's
        seen[framework] = [batch[0, 1] for batch in batches]
    assert seen[jt] == seen[torch] == [0, 1, 2, 0, 1, 2]


@pytest.mark.parametrize("persistent", [True, False])
def test_persistent_workers_live_across_epochs_as_torchs(persistent):
    for framework in (jt, torch):
        loader_class = torch.utils.data.DataLoader if framework is torch else DataLoader
        loader = loader_class(WhoLoads(4, framework), batch_size=2, num_workers=2, persistent_workers=persistent)
        pids = [[int(batch.numpy()[0, 3]) for batch in loader] for _ in range(2)]
        assert len(set(pids[0])) == 2 and (pids[0] == pids[1]) == persistent, framework


def test_persistent_workers_start_each_epoch_afresh_after_one_left_unfinished():
    loader = DataLoader(WhoLoads(10), batch_size=1, num_workers=2, persistent_workers=True, prefetch_factor=3)
    next(iter(loader))  # leaves batches requested but not taken
    assert [int(b.numpy()[0, 0]) for b in loader] == list(range(10))
    pipe = jt.data.IterableWrapper(range(20)).shuffle().sharding_filter()
    loader = DataLoader(pipe, batch_size=3, num_workers=2, persistent_workers=True, generator=1)
    for _ in loader:
        break
    epochs = [[v for batch in loader for v in batch.numpy().tolist()] for _ in range(2)]
    assert [sorted(epoch) for epoch in epochs] == [list(range(20))] * 2 and epochs[0] != epochs[1]


def test_timeout_raises_naming_it_as_torchs():
    for framework in (jt, torch):
        with pytest.raises(RuntimeError, match="timed out after 0.1 seconds"):
            load(framework, WhoLoads(4, framework, delay=0.5), batch_size=1, num_workers=1, timeout=0.1)
    with pytest.raises(jt.dataset.MetajitWorkerError):
        load(jt, WhoLoads(4, delay=0.5), batch_size=1, num_workers=1, timeout=0.1, persistent_workers=True)


@pytest.mark.parametrize("options,error", [
    ({"prefetch_factor": 2}, ValueError), ({"persistent_workers": True}, ValueError),
    ({"multiprocessing_context": "fork"}, ValueError), ({"timeout": -1}, ValueError), ({"num_workers": -1}, ValueError),
    ({"num_workers": 1, "multiprocessing_context": "teleport"}, ValueError),
    ({"num_workers": 1, "multiprocessing_context": 3}, TypeError)])
def test_invalid_worker_options_raise_as_torchs(options, error):
    with pytest.raises(error):
        torch.utils.data.DataLoader(WhoLoads(2, torch), **options)
    with pytest.raises(error) as raised:
        DataLoader(WhoLoads(2), **options)
    assert isinstance(raised.value, jt.MetajitError)


@pytest.mark.parametrize("iterable", [False, True])
def test_prefetch_factor_bounds_the_batches_loaded_ahead(iterable):
    loaded = multiprocessing.get_context("fork").Value("i", 0)

    class Counted(jt.dataset.IterableDataset if iterable else Dataset):
        shards_itself = True  # (as an iterable source: each worker reads only its share)

        def __len__(self):
            return 40

        def __getitem__(self, index):
            with loaded.get_lock():
                loaded.value += 1
            return np.float32(index)

        def __iter__(self):
            info = jt.dataset.get_worker_info()
            return (self[index] for index in range(info.id, 40, info.num_workers))

    loaders = [DataLoader] if iterable else [DataLoader, torch.utils.data.DataLoader]
    for loader_class in loaders:
        loaded.value = 0
        batches = iter(loader_class(Counted(), batch_size=2, num_workers=2, prefetch_factor=1))
        next(batches)
        deadline = time.time() + 5
        while loaded.value < 6 and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        assert loaded.value == 6, loader_class  # the batch taken, and the next one of each worker
        del batches


def test_generator_decides_the_shuffle_order():
    data = TensorDataset(np.arange(30))

    def orders(generator, epochs=2):
        loader = DataLoader(data, batch_size=30, shuffle=True, generator=generator)
        return [next(iter(loader))[0].numpy().tolist() for _ in range(epochs)]
    state = np.random.get_state()[1].copy()
    by_numpy = orders(np.random.default_rng(5))
    assert (np.random.get_state()[1] == state).all()  # numpy's global generator untouched
    assert by_numpy == orders(np.random.default_rng(5)) == orders(5) != orders(6)
    assert by_numpy[0] != by_numpy[1] and sorted(by_numpy[0]) == list(range(30))
    assert orders(torch.Generator().manual_seed(5)) == by_numpy
    with pytest.raises(TypeError, match="generator must be"):
        DataLoader(data, generator="five")
    with pytest.raises(jt.MetajitValueError, match="not both"):
        DataLoader(data, generator=5, seed=5)


def test_datasets_defined_in_a_function_load_in_workers():
    class Local(Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, index):
            return np.float32(index)

    class LocalSource(jt.dataset.IterableDataset):
        def __iter__(self):
            return iter(np.arange(6, dtype=np.float32))
    for source in (Local(), LocalSource()):
        batches = [b.numpy().tolist() for b in DataLoader(source, batch_size=2, num_workers=2, pin_memory=True)]
        assert sorted(sum(batches, [])) == list(range(6))
    context = multiprocessing.get_context("fork")
    assert [b.numpy().tolist() for b in DataLoader(Local(), batch_size=3, num_workers=1,
                                                   multiprocessing_context=context)] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(jt.MetajitValueError, match="'spawn' multiprocessing_context .* pickling"):
        list(DataLoader(Local(), batch_size=2, num_workers=1, multiprocessing_context="spawn"))
    spawned = DataLoader(TensorDataset(np.arange(6)), batch_size=3, num_workers=1, multiprocessing_context="spawn")
    assert [b[0].numpy().tolist() for b in spawned] == [[0, 1, 2], [3, 4, 5]]


def test_worker_init_fn_errors_are_raised_with_the_workers_traceback():
    def fails(worker_id):
        raise KeyError(f"no setup for worker {worker_id}")
    with pytest.raises(KeyError, match="(?s)in DataLoader worker process 0:.*no setup for worker 0"):
        list(DataLoader(WhoLoads(2), num_workers=1, worker_init_fn=fails))


def split_range_between_workers(worker_id):
    """PyTorch's documented idiom: worker_init_fn narrows its worker's copy of the dataset."""
    info = torch.utils.data.get_worker_info() or jt.dataset.get_worker_info()  # (whichever loader runs it)
    dataset, per_worker = info.dataset, -(-(info.dataset.end - info.dataset.start) // info.num_workers)
    dataset.start, dataset.end = (dataset.start + worker_id * per_worker,
                                  min(dataset.start + (worker_id + 1) * per_worker, dataset.end))


def test_worker_init_fn_configures_its_workers_copy_of_the_dataset_as_torchs():
    values = {}
    for framework in (jt, torch):
        base = torch.utils.data.IterableDataset if framework is torch else jt.dataset.IterableDataset

        class Range(base):
            shards_itself = True  # (metajit's loader would otherwise keep each worker's share itself)

            def __init__(self, start, end):
                self.start, self.end = start, end

            def __iter__(self):
                return iter(np.arange(self.start, self.end))
        values[framework] = sorted(v for batch in load(framework, Range(3, 10), batch_size=2, num_workers=2,
                                                       worker_init_fn=split_range_between_workers) for v in batch)
    assert values[jt] == values[torch] == list(range(3, 10))
