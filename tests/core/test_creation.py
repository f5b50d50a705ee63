"""Creating Vars and converting them back."""
import numpy as np
import pytest

import metajit as jt


def test_array_default_dtypes():
    assert jt.array(1.5).dtype == "float32"
    assert jt.array([1, 2]).dtype == "int32"
    assert jt.array([True]).dtype == "bool"
    assert jt.array(np.zeros(2, np.float64)).dtype == "float64"
    assert jt.array(np.zeros(2, np.uint8)).dtype == jt.uint8
    assert jt.array([1, 2], dtype="float16").dtype == np.float16


def test_array_copies_its_input():
    data = np.array([1.0, 2.0])
    x = jt.array(data)
    data[0] = 100
    assert x.numpy()[0] == 1.0
    y = jt.Var([3.0])
    assert isinstance(y, jt.Var) and y.item() == 3.0


def test_conversions_and_attributes():
    x = jt.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert x.shape == (2, 3) and x.ndim == 2 and x.numel() == 6 and len(x) == 2
    assert np.asarray(x).tolist() == x.data.tolist() == x.tolist()
    assert "jt.Var" in repr(x) and "float32" in repr(x)
    assert float(x[0, 0]) == 1.0 and int(x[1, 2]) == 6
    assert x.size(1) == 3


@pytest.mark.parametrize("make,expected", [
    (lambda: jt.zeros(2, 3), np.zeros((2, 3))), (lambda: jt.ones((2,), dtype="int32"), np.ones(2)),
    (lambda: jt.full((2, 2), 7), np.full((2, 2), 7)), (lambda: jt.arange(5), np.arange(5)),
    (lambda: jt.arange(1, 2, 0.25), np.arange(1, 2, 0.25)), (lambda: jt.arange(5, 0, -2), [5, 3, 1]),
    (lambda: jt.linspace(0, 1, 5), np.linspace(0, 1, 5)),
    (lambda: jt.zeros_like(jt.ones((2, 2))), np.zeros((2, 2))),
    (lambda: jt.ones_like(jt.zeros(3, dtype="int32")), np.ones(3)),
    (lambda: jt.full_like(jt.zeros(2), 3.5), [3.5, 3.5]),
    (lambda: jt.index((2, 3), 1), np.indices((2, 3))[1]),
])
def test_constant_and_range_creation(make, expected):
    np.testing.assert_allclose(make().numpy(), expected)


def test_creation_dtypes():
    assert jt.arange(3).dtype == "int32"
    assert jt.arange(3.0).dtype == "float32"
    assert jt.full((1,), 2).dtype == "int32"
    assert jt.zeros_like(jt.array([1, 2])).dtype == "int32"


def test_random_is_reproducible_and_well_distributed():
    jt.seed(7)
    a = jt.randn(1000).numpy()
    jt.set_global_seed(7)
    b = jt.randn(1000).numpy()
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.15 and abs(a.std() - 1) < 0.1
    u = jt.rand(2, 500).numpy()
    assert u.shape == (2, 500) and u.min() >= 0 and u.max() < 1
    r = jt.randint(3, 6, shape=(100,)).numpy()
    assert r.dtype == np.int32 and r.min() >= 3 and r.max() < 6
    assert jt.random((3,), "normal").shape == (3,)
    assert jt.randn_like(jt.zeros((2, 2))).shape == (2, 2)


def test_assign_keeps_identity_and_requires_grad():
    w = jt.zeros(3)
    same = w
    w.assign(jt.array([1.0, 2.0, 3.0]))
    assert same is w and w.requires_grad
    w.data = 5
    np.testing.assert_array_equal(w.numpy(), [5, 5, 5])


def test_eye_matches_numpy_and_torch_spellings():
    np.testing.assert_array_equal(jt.eye(3).numpy(), np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(jt.eye(2, 4, dtype="int32").numpy(), np.eye(2, 4, dtype=np.int32))
    np.testing.assert_array_equal(jt.eye((4, 2)).numpy(), np.eye(4, 2))
    np.testing.assert_array_equal(jt.eye(0).numpy(), np.eye(0))
    assert jt.eye(3, dtype="bool").dtype == jt.bool_ and jt.eye(2).requires_grad
    np.testing.assert_array_equal(jt.init.eye(3).numpy(), np.eye(3))
    np.testing.assert_array_equal(jt.init.eye_like(jt.zeros(2, 3, dtype="float64")).numpy(), np.eye(2, 3))
    weight = jt.zeros(3, 5)
    assert jt.init.eye_(weight) is weight
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(weight.numpy(), torch.nn.init.eye_(torch.zeros(3, 5)).numpy())


def test_eye_names_bad_sizes():
    with pytest.raises(jt.MetajitShapeError, match="eye: the sizes must be non-negative integers, got n=-1"):
        jt.eye(-1)
    with pytest.raises(jt.MetajitShapeError, match=r"two sizes \(rows, columns\), got \(1, 2, 3\)"):
        jt.eye((1, 2, 3))
    with pytest.raises(jt.MetajitValueError, match=r"init.eye_ needs a 2-d Var, got shape \(3,\)"):
        jt.init.eye_(jt.zeros(3))


def test_dlpack_hands_a_copy_to_torch_and_numpy():
    torch = pytest.importorskip("torch")
    value = jt.array(np.arange(6, dtype=np.float32).reshape(2, 3)) * 2
    np.testing.assert_array_equal(torch.from_dlpack(value).numpy(), np.arange(6).reshape(2, 3) * 2)
    np.testing.assert_array_equal(np.from_dlpack(value), np.arange(6).reshape(2, 3) * 2)
    scalar = jt.array(np.float64(3.5))
    assert torch.asarray(scalar).item() == 3.5 and torch.from_dlpack(scalar).dtype == torch.float64
    with pytest.raises(TypeError, match="0-d"):  # as numpy's len() of an unsized array
        len(scalar)


def test_to_takes_torch_devices_and_dtypes():
    torch = pytest.importorskip("torch")
    x = jt.array(np.arange(3, dtype=np.float32))
    assert x.to("cpu") is x and x.cpu() is x and x.to(torch.device("cpu")) is x
    assert x.to(torch.float64).dtype == "float64" and x.to("cpu", torch.int64).dtype == "int64"
    assert x.to(dtype=np.float16).dtype == "float16" and x.to(jt.array([1])).dtype == "int32"
    with pytest.raises(jt.MetajitDeviceError, match="jt.set_device"):
        x.to("mps")
    assert x.to("cpu", memory_format=jt.channels_last) is x  # (a layout changes no value)
    with pytest.raises(jt.MetajitValueError, match="unexpected arguments"):
        x.to("cpu", layout=None)
