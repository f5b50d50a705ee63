"""torch.utils.data's dataset utilities in metajit.dataset: random_split, Subset,
ConcatDataset, ChainDataset, StackDataset, default_collate / default_convert, and the random
samplers' generator argument, each against torch.utils.data as the oracle."""
import collections
import warnings

import numpy as np
import pytest

import metajit as jt
from metajit.dataset import (ChainDataset, ConcatDataset, DataLoader, IterableDataset, RandomSampler, StackDataset,
                             Subset, SubsetRandomSampler, TensorDataset, WeightedRandomSampler, default_collate,
                             default_convert, random_split)

torch = pytest.importorskip("torch")
data = torch.utils.data


def plain(value):
    """A batch as comparable plain data: each tensor or Var as (dtype, values), each
    container as (its type's name, items)."""
    if isinstance(value, jt.Var):
        return "tensor", str(value.dtype), value.numpy().tolist()
    if isinstance(value, torch.Tensor):
        return "tensor", str(value.dtype).removeprefix("torch."), value.tolist()
    if isinstance(value, np.ndarray):
        return "ndarray", value.tolist()
    if isinstance(value, dict):
        return type(value).__name__, {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [plain(item) for item in value]
    return value


def torch_tensors(value):
    """The same sample with torch tensors where it holds Vars."""
    if isinstance(value, jt.Var):
        return torch.from_numpy(value.numpy())
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*map(torch_tensors, value))
    if isinstance(value, (list, tuple)):
        return type(value)(map(torch_tensors, value))
    if isinstance(value, dict):
        return type(value)((key, torch_tensors(item)) for key, item in value.items())
    return value


# ---- random_split -------------------------------------------------------------------

@pytest.mark.parametrize("count, lengths", [
    (10, [8, 2]), (10, [10]), (10, [0, 10]), (30, [0.3, 0.3, 0.4]), (31, [0.3, 0.3, 0.4]), (32, [0.3, 0.3, 0.4]),
    (10, [1 / 3] * 3), (5, [0.5, 0.5]), (7, [0.1] * 10), (1, [1]), (0, [0.5, 0.5])])
def test_random_split_lengths_and_index_sets_match_torchs(count, lengths):
    with warnings.catch_warnings(record=True) as ours_warned:
        warnings.simplefilter("always")
        ours = random_split(list(range(count)), lengths, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(record=True) as theirs_warned:
        warnings.simplefilter("always")
        theirs = data.random_split(list(range(count)), lengths, generator=torch.Generator().manual_seed(0))
    assert [len(split) for split in ours] == [len(split) for split in theirs]
    assert [str(w.message) for w in ours_warned] == [str(w.message) for w in theirs_warned]  # empty splits
    assert all(isinstance(split, Subset) and isinstance(split, jt.dataset.Dataset) for split in ours)
    items = [list(split[k] for k in range(len(split))) for split in ours]
    assert sorted(sum(items, [])) == list(range(count))  # disjoint, covering the dataset
    assert [split.indices for split in ours] == items


def test_random_split_draws_from_its_generator():
    def split(generator):
        return [s.indices for s in random_split(TensorDataset(np.arange(20)), [15, 5], generator=generator)]
    by_torch = split(torch.Generator().manual_seed(7))
    assert by_torch == split(torch.Generator().manual_seed(7)) == split(7) == split(np.random.default_rng(7))
    assert by_torch != split(8) and sorted(sum(by_torch, [])) == list(range(20))
    jt.manual_seed(3)
    first = split(None)
    jt.manual_seed(3)
    assert split(None) == first  # the default follows jt.manual_seed
    with pytest.raises(jt.MetajitTypeError, match="generator must be"):
        split("seven")


@pytest.mark.parametrize("lengths, error, oracle, match", [
    ([8, 1], jt.MetajitValueError, ValueError, "(?i)sum of input lengths does not equal the length of the input"),
    ([1.5, -0.5], jt.MetajitValueError, ValueError, "(?i)fraction at index 0 is not between 0 and 1"),
    ([0.5, 0.4], jt.MetajitValueError, ValueError, "(?i)sum of input lengths does not equal the length of the input"),
    ([2.5, 7.5], jt.MetajitTypeError, TypeError, None)])  # neither integers nor fractions summing to 1
def test_random_split_rejects_bad_lengths_as_torch(lengths, error, oracle, match):
    with pytest.raises(oracle, match=match):
        data.random_split(range(10), lengths)
    with pytest.raises(error, match=match):
        random_split(range(10), lengths)


def test_random_split_rejects_negative_lengths_that_torch_takes():
    # torch splits range(10) by [12, -2] into 10 and 0 items; metajit names the mistake
    with pytest.raises(jt.MetajitValueError, match="length at index 1 is negative"):
        random_split(range(10), [12, -2])
    with pytest.raises(jt.MetajitValueError, match=r"\[0\.5, 0\.4\] sums to 0\.9, the dataset has 10 items"):
        random_split(range(10), [0.5, 0.4])
    with pytest.raises(jt.MetajitTypeError, match="got 2.5 at index 0"):
        random_split(range(10), [2.5, 7.5])
    with pytest.raises(jt.MetajitTypeError, match="lengths must be numbers, got '8' at index 0"):
        random_split(range(10), ["8", 2])


# ---- Subset, ConcatDataset, ChainDataset, StackDataset -------------------------------

def test_subset_reads_its_indices_as_torchs():
    source = [10 * k for k in range(10)]
    ours, theirs = Subset(source, [4, 0, 7]), data.Subset(source, [4, 0, 7])
    assert len(ours) == len(theirs) == 3
    assert [ours[k] for k in range(-3, 3)] == [theirs[k] for k in range(-3, 3)]
    # a list index reaches the dataset as one list of indices, as torch's
    assert Subset(np.array(source), [4, 0, 7])[[0, 2]].tolist() == \
        data.Subset(np.array(source), [4, 0, 7])[[0, 2]].tolist() == [40, 70]
    batches = list(DataLoader(Subset(TensorDataset(np.arange(10)), [9, 3, 5]), batch_size=2))
    assert [batch[0].numpy().tolist() for batch in batches] == [[9, 3], [5]]


def test_concat_dataset_indexes_and_sizes_as_torchs():
    parts = [list(range(3)), list(range(10, 15)), [], list(range(20, 22))]
    ours, theirs = ConcatDataset(parts), data.ConcatDataset(parts)
    assert ours.cumulative_sizes == theirs.cumulative_sizes == [3, 8, 8, 10] and len(ours) == len(theirs) == 10
    assert ConcatDataset.cumsum(parts) == data.ConcatDataset.cumsum(parts)
    assert [ours[k] for k in range(-10, 10)] == [theirs[k] for k in range(-10, 10)]
    for framework, dataset in ((data, theirs), (jt.dataset, ours)):
        with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
            dataset[-11]
        with pytest.raises(IndexError):
            dataset[10]
    with pytest.raises(jt.MetajitIndexError, match="index 10 is out of range for 10 items"):
        ours[10]
    first, second = TensorDataset(np.arange(4)), TensorDataset(np.arange(4, 6))
    joined = first + second
    assert isinstance(joined, ConcatDataset) and len(joined) == len(data.TensorDataset(torch.arange(4)) +
                                                                   data.TensorDataset(torch.arange(2))) == 6
    assert [batch[0].numpy().tolist() for batch in DataLoader(joined, batch_size=4)] == [[0, 1, 2, 3], [4, 5]]


def test_concat_dataset_errors_name_the_mistake():
    with pytest.raises(jt.MetajitValueError, match="should not be an empty iterable"):
        ConcatDataset([])
    with pytest.raises(jt.MetajitTypeError, match="does not support IterableDataset.*ChainDataset"):
        ConcatDataset([[1], Stream(2)])


def counting_stream(base):
    """An iterable source of ``count`` numbers from ``start`` on ``base`` (either framework's)."""
    class Counting(base):
        def __init__(self, count, start=0):
            self.count, self.start = count, start

        def __iter__(self):
            return iter(range(self.start, self.start + self.count))

        def __len__(self):
            return self.count
    return Counting


Stream, TorchStream = counting_stream(IterableDataset), counting_stream(data.IterableDataset)


def test_chain_dataset_reads_its_sources_in_turn_as_torchs():
    ours = ChainDataset([Stream(3), Stream(2, 10)])
    theirs = data.ChainDataset([TorchStream(3), TorchStream(2, 10)])
    assert list(ours) == list(theirs) == list(ours) and len(ours) == len(theirs) == 5
    added = Stream(2) + Stream(1, 5)
    assert isinstance(added, ChainDataset) and list(added) == list(TorchStream(2) + TorchStream(1, 5))
    assert [batch.numpy().tolist() for batch in DataLoader(ours, batch_size=2)] == \
        [batch.tolist() for batch in data.DataLoader(theirs, batch_size=2)]
    with pytest.raises(jt.MetajitTypeError, match="only supports IterableDataset.*ConcatDataset"):
        ChainDataset([Stream(1), [1, 2]])


def test_stack_dataset_items_are_tuples_or_dicts_as_torchs():
    images, labels = [[k, k] for k in range(4)], list(range(4))
    assert StackDataset(images, labels)[2] == data.StackDataset(images, labels)[2] == ([2, 2], 2)
    assert StackDataset(image=images, label=labels)[1] == data.StackDataset(image=images, label=labels)[1]
    assert len(StackDataset(images, labels)) == 4
    batch = next(iter(DataLoader(StackDataset(image=np.arange(4.0), label=labels), batch_size=4)))
    assert plain(batch) == plain(next(iter(data.DataLoader(data.StackDataset(image=np.arange(4.0), label=labels),
                                                           batch_size=4))))
    for arguments, keywords, match in [((images,), {"label": labels}, "not both"), ((), {}, "at least one"),
                                       ((images, labels[:3]), {}, r"size mismatch between datasets: lengths \[4, 3\]")]:
        with pytest.raises(ValueError):
            data.StackDataset(*arguments, **keywords)
        with pytest.raises(jt.MetajitValueError, match=match):
            StackDataset(*arguments, **keywords)


# ---- default_collate and default_convert ---------------------------------------------

Point = collections.namedtuple("Point", "x y")

BATCHES = {
    "ints": [0, 1, 2],
    "floats": [0.5, 1.5],
    "bools": [True, False],
    "numpy scalars": [np.float32(1), np.float32(2)],
    "numpy int scalars": [np.int16(1), np.int16(2)],
    "arrays": [np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)],
    "strings": ["a.jpg", "b.jpg"],
    "bytes": [b"a", b"b"],
    "tuples with strings": [(np.zeros(2), 0, "train/0.jpg"), (np.ones(2), 1, "train/1.jpg")],
    "lists": [[1, 2.5], [3, 4.5]],
    "dicts": [{"x": np.arange(2), "meta": {"name": "a", "id": 1}},
              {"x": np.arange(2, 4), "meta": {"name": "b", "id": 2}}],
    "ordered dicts": [collections.OrderedDict(b=1, a=2.0), collections.OrderedDict(b=3, a=4.0)],
    "namedtuples": [Point(0, np.float64(1)), Point(1, np.float64(2))],
    "nested": [(Point([1, 2], "p"), {"k": (1, "s")}), (Point([3, 4], "q"), {"k": (2, "t")})],
}


@pytest.mark.parametrize("name", BATCHES)
def test_default_collate_matches_torchs(name):
    batch = BATCHES[name]
    assert plain(default_collate(batch)) == plain(data.default_collate(batch))


def test_default_collate_stacks_vars_and_torch_tensors():
    batch = [jt.array(np.arange(3, dtype=np.float32)), jt.array(np.ones(3, np.float32))]
    assert plain(default_collate(batch)) == plain(data.default_collate(torch_tensors(batch)))
    tensors = [torch.arange(3), torch.arange(3, 6)]
    assert plain(default_collate(tensors)) == plain(data.default_collate(tensors))


@pytest.mark.parametrize("batch, error, oracle, match", [
    ([np.array(["a"]), np.array(["b"])], jt.MetajitTypeError, TypeError, "batch must contain tensors, numpy arrays"),
    ([None, None], jt.MetajitTypeError, TypeError, "batch must contain tensors, numpy arrays"),
    ([[1, 2], [3]], jt.MetajitValueError, RuntimeError, "each element in list of batch should be of equal size"),
    ([np.zeros(2), np.zeros(3)], jt.MetajitShapeError, RuntimeError, None)])
def test_default_collate_errors_as_torchs(batch, error, oracle, match):
    with pytest.raises(oracle, match=match):
        data.default_collate(batch)
    with pytest.raises(error, match=match):
        default_collate(batch)


@pytest.mark.parametrize("sample", [
    np.arange(3), np.float32(2.5), 7, "text", (np.zeros(2), 3), [np.ones(2), "a"], np.array(["a", "b"]),
    {"x": np.arange(2), "y": (np.int64(1), "s")}, Point(np.zeros(1), 2), b"raw"])
def test_default_convert_matches_torchs(sample):
    assert plain(default_convert(sample)) == plain(data.default_convert(sample))


def test_loaders_collate_samples_carrying_strings_as_torchs():
    class Images:
        def __len__(self):
            return 5

        def __getitem__(self, index):
            return np.full((3, 2, 2), index, np.float32), index, f"train/img_{index}.jpg"
    ours = [plain(batch) for batch in DataLoader(Images(), batch_size=2)]
    assert ours == [plain(batch) for batch in data.DataLoader(Images(), batch_size=2)]


def test_unbatched_samples_go_through_collate_fn_as_torchs():
    ours, theirs = Stream(3), TorchStream(3)
    for collate_fn in (None, lambda sample: sample * 10):
        assert [plain(s) for s in DataLoader(ours, batch_size=None, collate_fn=collate_fn)] == \
            [plain(s) for s in data.DataLoader(theirs, batch_size=None, collate_fn=collate_fn)]

    class Arrays(Stream):
        def __iter__(self):
            return (np.full(2, k) for k in super().__iter__())

    class TorchArrays(TorchStream):
        def __iter__(self):
            return (np.full(2, k) for k in super().__iter__())
    assert [plain(s) for s in DataLoader(Arrays(2), batch_size=None)] == \
        [plain(s) for s in data.DataLoader(TorchArrays(2), batch_size=None)]


def test_loaders_fetch_through_getitems_as_torchs():
    class Batched:
        def __init__(self):
            self.fetches = []

        def __len__(self):
            return 5

        def __getitem__(self, index):
            raise AssertionError("the loader should fetch through __getitems__")

        def __getitems__(self, indices):
            self.fetches.append(indices)
            return [float(i) for i in indices]
    ours, theirs = Batched(), Batched()
    assert [plain(b) for b in DataLoader(ours, batch_size=2)] == [plain(b) for b in data.DataLoader(theirs,
                                                                                                    batch_size=2)]
    assert ours.fetches == theirs.fetches == [[0, 1], [2, 3], [4]]


# ---- samplers' generators --------------------------------------------------------------

SAMPLERS = {
    "RandomSampler": lambda module, generator: module.RandomSampler(range(10), generator=generator),
    "RandomSampler with replacement": lambda module, generator: module.RandomSampler(
        range(10), replacement=True, num_samples=15, generator=generator),
    "WeightedRandomSampler": lambda module, generator: module.WeightedRandomSampler(
        [0.1] * 5 + [1.0] * 5, 6, generator=generator),
    "WeightedRandomSampler without replacement": lambda module, generator: module.WeightedRandomSampler(
        [0.1] * 5 + [1.0] * 5, 6, replacement=False, generator=generator),
    "SubsetRandomSampler": lambda module, generator: module.SubsetRandomSampler([1, 3, 5, 7], generator=generator),
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_samplers_take_a_torch_generator_by_its_seed(name):
    make = SAMPLERS[name]
    drawn = list(make(jt.dataset, torch.Generator().manual_seed(4)))
    theirs = list(make(data, torch.Generator().manual_seed(4)))
    assert len(drawn) == len(theirs) and set(drawn) <= set(range(10))
    assert drawn == list(make(jt.dataset, torch.Generator().manual_seed(4))) == list(make(jt.dataset, 4)) == \
        list(make(jt.dataset, np.random.default_rng(4)))
    if "without" in name or name in ("RandomSampler", "SubsetRandomSampler"):
        assert sorted(drawn) == sorted(set(drawn))  # no repeats, as torch's
    sampler = make(jt.dataset, torch.Generator().manual_seed(4))
    assert list(sampler) == drawn and list(sampler) != drawn  # each epoch draws anew, as torch's generator


def test_subset_random_sampler_takes_torchs_positional_generator():
    generator = torch.Generator().manual_seed(2)
    assert list(SubsetRandomSampler([1, 3, 5, 7], generator)) == list(SubsetRandomSampler([1, 3, 5, 7], generator=2))
    assert sorted(SubsetRandomSampler(range(10), [1, 3, 5])) == [1, 3, 5]  # Jittor's (dataset, indices)


@pytest.mark.parametrize("make, error, oracle, match", [
    (lambda module: module.RandomSampler(range(3), replacement=1), jt.MetajitTypeError, TypeError,
     "replacement should be a boolean value"),
    (lambda module: module.RandomSampler(range(3), replacement=True, num_samples=0), jt.MetajitValueError, ValueError,
     "num_samples should be a positive integer value, but got num_samples=0"),
    (lambda module: module.RandomSampler([]), jt.MetajitValueError, ValueError,
     "num_samples should be a positive integer value"),
    (lambda module: module.WeightedRandomSampler([1, 2], 2.0), jt.MetajitValueError, ValueError,
     "num_samples should be a positive integer value"),
    (lambda module: module.WeightedRandomSampler([1, 2], True), jt.MetajitValueError, ValueError,
     "num_samples should be a positive integer value"),
    # (torch's WeightedRandomSampler raises ValueError for it, its RandomSampler TypeError)
    (lambda module: module.WeightedRandomSampler([1, 2], 2, replacement=None), jt.MetajitTypeError,
     (TypeError, ValueError), "replacement should be a boolean value")])
def test_sampler_arguments_are_checked_as_torchs(make, error, oracle, match):
    with pytest.raises(oracle, match=match):
        make(data)
    with pytest.raises(error, match=match):
        make(jt.dataset)


def test_random_sampler_draws_from_numpys_global_generator_without_one():
    jt.manual_seed(1)
    first = list(RandomSampler(range(8)))
    jt.manual_seed(1)
    assert list(RandomSampler(range(8))) == first and sorted(first) == list(range(8))
    assert len(list(WeightedRandomSampler([1, 1], 3))) == 3


def test_torch_utils_data_spelling_reaches_the_same_names():
    from metajit.utils.data import DataLoader as spelled, random_split as split
    assert spelled is jt.dataset.DataLoader and split is jt.dataset.random_split
    assert jt.utils.data.TensorDataset is jt.dataset.TensorDataset
    with pytest.raises(AttributeError, match="no 'NoSuchLoader'"):
        jt.utils.data.NoSuchLoader
