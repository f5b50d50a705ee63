"""``var.shape`` is list-like as Jittor's and tuple-like as PyTorch's (metajit.shape.Shape)."""
import pickle

import numpy as np
import pytest

import metajit as jt
from metajit.shape import Shape


def test_shape_equals_lists_and_tuples():
    shape = jt.zeros(2, 3).shape
    assert shape == [2, 3] and shape == (2, 3) and [2, 3] == shape and (2, 3) == shape
    assert not shape != [2, 3] and not shape != (2, 3)
    assert shape != [2, 4] and shape != [2] and shape != (3, 2) and shape != "23"
    assert not shape == [2.5, 3] and jt.zeros(()).shape == [] and jt.zeros(()).shape == ()


def test_shape_indexes_slices_unpacks_and_hashes_as_a_tuple():
    shape = jt.zeros(4, 5, 6).shape
    batch, channels, width = shape
    assert (batch, channels, width) == (4, 5, 6) and len(shape) == 3 and list(shape) == [4, 5, 6]
    assert shape[-1] == 6 and type(shape[0]) is int
    assert shape[1:] == [5, 6] and shape[::-1] == (6, 5, 4)
    assert hash(shape) == hash((4, 5, 6)) and {(4, 5, 6): "x"}[shape] == "x" and {shape: 1}[(4, 5, 6)] == 1
    assert shape.numel() == np.prod([4, 5, 6]) and jt.zeros(0, 3).shape.numel() == 0
    assert shape.index(5) == 1 and 6 in shape and repr(shape) == "(4, 5, 6)"
    with pytest.raises(TypeError):
        shape[0] = 1


def test_shape_concatenates_with_lists_and_tuples():
    shape = jt.zeros(2, 3).shape
    for joined in (shape + [4], shape + (4,), shape[:1] + [3, 4]):
        assert joined == [2, 3, 4] and type(joined) is Shape
    assert [1] + shape == [1, 2, 3] and (1,) + shape == (1, 2, 3) and type([1] + shape) is Shape
    assert shape + [4] == (2, 3, 4) and type(shape + [4]) is Shape and shape * 2 == (2, 3, 2, 3)
    with pytest.raises(TypeError):
        shape + 4


def test_shape_is_accepted_wherever_a_shape_is(rng):
    x = jt.array(rng.standard_normal((2, 3)).astype(np.float32))
    assert jt.zeros(x.shape).shape == [2, 3] and jt.ones(*x.shape).shape == (2, 3)
    assert x.reshape(x.shape[::-1]).shape == [3, 2] and x.broadcast_to((4,) + x.shape).shape == [4, 2, 3]
    assert np.zeros(x.shape).shape == (2, 3) and x.numpy().shape == x.shape
    assert x.size() == [2, 3] and x.size(1) == 3
    torch = pytest.importorskip("torch")
    assert torch.zeros(x.shape).shape == x.shape and torch.Size(x.shape) == x.shape


def test_shape_survives_pickling():
    shape = jt.zeros(2, 3).shape
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        copied = pickle.loads(pickle.dumps(shape, protocol))
        assert type(copied) is Shape and copied == [2, 3]
