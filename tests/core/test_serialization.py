"""jt.save / jt.load with file objects and torch.load's ``map_location``, against torch.save /
torch.load: what one writes the other reads, and each map_location form loads what torch's
``map_location="cpu"`` loads."""
import collections
import io

import numpy as np
import pytest

import metajit as jt

torch = pytest.importorskip("torch")


def checkpoint():
    """A checkpoint as training scripts save one: tensors in nested containers, a shared
    tensor, numbers, a Counter (MultiStepLR's milestones)."""
    weight = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    return {"model": collections.OrderedDict(weight=weight, bias=torch.ones(4, dtype=torch.float64)),
            "steps": torch.tensor([3, 1], dtype=torch.int64), "shared": [weight, weight[1]], "epoch": 7,
            "best": 0.25, "milestones": collections.Counter([2, 5, 5])}


def assert_same(ours, theirs):
    """``ours`` (numpy arrays) holds what ``theirs`` (torch tensors) does, container types too."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, np.ndarray)
        np.testing.assert_array_equal(ours, theirs.numpy())
        assert ours.dtype == theirs.numpy().dtype
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs)
        for key in theirs:
            assert_same(ours[key], theirs[key])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for mine, reference in zip(ours, theirs):
            assert_same(mine, reference)
    else:
        assert ours == theirs


def saved_by_torch(new_format=True):
    buffer = io.BytesIO()
    torch.save(checkpoint(), buffer, _use_new_zipfile_serialization=new_format)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize("new_format", [True, False], ids=["zip", "pre-1.6"])
def test_load_reads_torch_saves_from_file_objects(new_format):
    assert_same(jt.load(saved_by_torch(new_format)), torch.load(saved_by_torch(new_format)))


def test_save_to_a_file_object_writes_what_torch_load_reads():
    buffer = io.BytesIO()
    jt.save(jt.load(saved_by_torch()), buffer)  # (a nameless file object: torch's format, as torch.save)
    buffer.seek(0)
    assert_same(jt.load(io.BytesIO(buffer.getvalue())), torch.load(saved_by_torch()))
    assert_same(jt.load(saved_by_torch()), torch.load(buffer, weights_only=True))
    state = {"w": jt.array(np.arange(6, dtype=np.float32).reshape(2, 3))}
    buffer = io.BytesIO()
    jt.save(state, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(torch.load(buffer, weights_only=True)["w"].numpy(), state["w"].numpy())


def test_open_files_take_the_format_of_their_name(tmp_path):
    with open(tmp_path / "ckpt.pth", "wb") as handle:
        jt.save(jt.load(saved_by_torch()), handle)
    with open(tmp_path / "ckpt.pth", "rb") as handle:
        assert_same(jt.load(handle), torch.load(saved_by_torch()))
    assert_same(jt.load(tmp_path / "ckpt.pth"), torch.load(tmp_path / "ckpt.pth", weights_only=True))
    with open(tmp_path / "ckpt.pkl", "wb") as handle:
        jt.save({"w": jt.ones(2)}, handle)  # Jittor's pickle, as for the path
    assert (tmp_path / "ckpt.pkl").read_bytes()[:2] == b"\x80\x04"
    with open(tmp_path / "ckpt.pkl", "rb") as handle:
        np.testing.assert_array_equal(jt.load(handle)["w"], np.ones(2, np.float32))


class Stream:
    """A file object that cannot seek (a pipe)."""

    def __init__(self, data):
        self.buffer = io.BytesIO(data)

    def read(self, size=-1):
        return self.buffer.read(size)

    def seekable(self):
        return False


@pytest.mark.parametrize("new_format", [True, False], ids=["zip", "pre-1.6"])
def test_load_reads_a_stream_that_cannot_seek(new_format):
    assert_same(jt.load(Stream(saved_by_torch(new_format).getvalue())), torch.load(saved_by_torch(new_format)))


MAP_LOCATIONS = {
    "cpu": "cpu", "torch.device": torch.device("cpu"), "cuda:0": "cuda:0", "torch.device cuda": torch.device("cuda", 0),
    "dict": {"cuda:0": "cpu", "cpu": torch.device("cpu")}, "identity": lambda storage, location: storage,
    "cpu()": lambda storage, location: storage.cpu(), "cuda(0)": lambda storage, location: storage.cuda(0),
    "None": lambda storage, location: None, "metajit's device": jt.zeros(1).device,
}


@pytest.mark.parametrize("new_format", [True, False], ids=["zip", "pre-1.6"])
@pytest.mark.parametrize("map_location", MAP_LOCATIONS.values(), ids=MAP_LOCATIONS.keys())
def test_every_map_location_form_loads_what_torch_loads_on_the_cpu(map_location, new_format):
    assert_same(jt.load(saved_by_torch(new_format), map_location=map_location),
                torch.load(saved_by_torch(new_format), map_location="cpu"))


def test_a_map_location_function_is_called_once_per_storage_with_its_location_as_torchs():
    ours, theirs = [], []
    jt.load(saved_by_torch(), map_location=lambda storage, location: ours.append(location))
    torch.load(saved_by_torch(), map_location=lambda storage, location: theirs.append(location))
    assert ours == theirs == ["cpu"] * 3  # (the shared weight's storage once)


def test_wrong_arguments_raise_naming_the_mistake(tmp_path):
    with pytest.raises(jt.MetajitTypeError, match="map_location=5: give a device"):
        jt.load(saved_by_torch(), map_location=5)
    with pytest.raises(jt.MetajitTypeError, match="map_location='gpu0'"):
        jt.load(saved_by_torch(), map_location="gpu0")
    with pytest.raises(jt.MetajitTypeError, match="'elsewhere' in the dict is not a device"):
        jt.load(saved_by_torch(), map_location={"cuda:0": "elsewhere"})
    with pytest.raises(jt.MetajitTypeError, match="weights_only is keyword-only"):
        jt.load(saved_by_torch(), False)
    with pytest.raises(jt.MetajitValueError, match="map_location's function failed on a storage saved on 'cpu'"):
        jt.load(saved_by_torch(), map_location=lambda storage, location: storage.pin_memory())
    with pytest.raises(jt.MetajitValueError, match="return the storage it was given"):
        jt.load(saved_by_torch(), map_location=lambda storage, location: storage[:1])
    (tmp_path / "ckpt.pth").write_bytes(saved_by_torch().getvalue())
    with open(tmp_path / "ckpt.pth") as handle, pytest.raises(jt.MetajitTypeError, match="text mode; open it with 'rb'"):
        jt.load(handle)
    with open(tmp_path / "out.pth", "w") as handle, pytest.raises(jt.MetajitTypeError, match="open it with 'wb'"):
        jt.save({"w": jt.ones(1)}, handle)
    with pytest.raises(jt.MetajitTypeError, match="a path or a binary file object with read"):
        jt.load(3)
    with pytest.raises(jt.MetajitValueError, match="the BytesIO object is not a complete"):
        jt.load(io.BytesIO(b"not a checkpoint"))


@pytest.mark.parametrize("name", ["checkpoint.pth.tar", "model.ckpt", "pytorch_model.bin"])
def test_pytorch_checkpoint_names_get_torchs_format(tmp_path, name):
    jt.save({"weight": jt.ones(2), "epoch": 3}, tmp_path / name)
    loaded = torch.load(tmp_path / name, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["weight"], torch.ones(2))
