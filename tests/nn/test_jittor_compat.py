"""Jittor spellings a Jittor script uses without edits: its README's first example runs
verbatim (``jittor`` renamed), modules without ``super().__init__()``, callable dtypes,
optimisers in ``nn``."""
import copy
import io
import contextlib

import numpy as np
import pytest

import metajit as jt
from metajit import nn

JITTOR_README_EXAMPLE = '''
import metajit as jt
from metajit import Module
from metajit import nn
import numpy as np

class Model(Module):
    def __init__(self):
        self.layer1 = nn.Linear(1, 10)
        self.relu = nn.Relu()
        self.layer2 = nn.Linear(10, 1)
    def execute (self,x) :
        x = self.layer1(x)
        x = self.relu(x)
        x = self.layer2(x)
        return x

def get_data(n): # generate random data for training test.
    for i in range(n):
        x = np.random.rand(batch_size, 1)
        y = x*x
        yield jt.float32(x), jt.float32(y)

learning_rate = 0.1
batch_size = 50
n = 1000

model = Model()
optim = nn.SGD(model.parameters(), learning_rate)

for i,(x,y) in enumerate(get_data(n)):
    pred_y = model(x)
    dy = pred_y - y
    loss = dy * dy
    loss_mean = loss.mean()
    optim.step(loss_mean)
    print(f"step {i}, loss = {loss_mean.data.sum()}")
'''


def test_the_jittor_readme_example_runs_verbatim_and_learns():
    jt.set_seed(0)  # the initial weights and the script's numpy data
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(JITTOR_README_EXAMPLE, "jittor_readme_example.py", "exec"), {"__name__": "__main__"})
    losses = [float(line.rsplit("=", 1)[1]) for line in output.getvalue().splitlines()]
    assert len(losses) == 1000
    assert np.mean(losses[-50:]) < min(0.005, np.mean(losses[:10]) / 5)  # y = x^2 on [0, 1) is learnt


class NoSuperInit(nn.Module):
    def __init__(self):
        self.fc = nn.Linear(3, 2)
        self.scale = jt.array([2.0])
        self.blocks = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        self.name = "plain attribute"

    def execute(self, x):
        return self.blocks(self.fc(x)) * self.scale


def test_a_module_need_not_call_super_init():
    model = NoSuperInit()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["scale", "fc.weight", "fc.bias", "blocks.0.weight", "blocks.0.bias"]
    assert set(model.state_dict()) == set(names) and model.name == "plain attribute"
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    fc, inner = model.fc, model.blocks[0]
    expected = np.maximum((x @ fc.weight.numpy().T + fc.bias.numpy()) @ inner.weight.numpy().T
                          + inner.bias.numpy(), 0) * 2
    np.testing.assert_allclose(model(jt.array(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    clone = copy.deepcopy(model)
    assert [n for n, _ in clone.named_parameters()] == names
    model.eval()
    assert not model.training and not model.blocks.training


def test_calling_super_init_late_keeps_what_was_assigned():
    class Late(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)
            super().__init__()

    assert [name for name, _ in Late().named_parameters()] == ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("dtype,numpy_dtype", [(jt.float32, np.float32), (jt.float, np.float32),
                                               (jt.int32, np.int32), (jt.int, np.int32), (jt.float64, np.float64),
                                               (jt.bool, np.bool_), (jt.int8, np.int8), (jt.float16, np.float16)])
def test_dtypes_are_callable_as_in_jittor(dtype, numpy_dtype):
    data = np.array([[-2.7, 0.0, 1.5], [3.2, -0.4, 7.9]])
    from_numpy = dtype(data)
    assert isinstance(from_numpy, jt.Var) and from_numpy.dtype == numpy_dtype
    np.testing.assert_array_equal(from_numpy.numpy(), data.astype(numpy_dtype))
    cast = dtype(jt.array(data.astype(np.float32)))
    np.testing.assert_array_equal(cast.numpy(), data.astype(np.float32).astype(numpy_dtype))
    scalar = dtype(3)
    assert scalar.dtype == numpy_dtype and scalar.numpy() == numpy_dtype(3)
    listed = dtype([1, 0, 2])
    np.testing.assert_array_equal(listed.numpy(), np.array([1, 0, 2]).astype(numpy_dtype))


def test_top_level_module_and_optimisers_in_nn():
    assert jt.Module is nn.Module
    assert nn.SGD is jt.optim.SGD and nn.Adam is jt.optim.Adam and nn.AdamW is jt.optim.AdamW
    assert jt.float32 == "float32" and jt.float32 == np.float32  # still a dtype


def test_a_deep_copied_model_trains_independently():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = jt.array(np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32))
    model(x).sync()  # realised parameters
    clone = copy.deepcopy(model)
    before = {name: value.numpy().copy() for name, value in model.named_parameters()}
    optimizer = nn.SGD(clone.parameters(), 0.5)
    optimizer.step(((clone(x) - 1) ** 2).mean())
    for name, value in clone.named_parameters():
        assert not np.array_equal(value.numpy(), before[name]), f"{name} of the copy did not train"
    for name, value in model.named_parameters():
        np.testing.assert_array_equal(value.numpy(), before[name])


def test_flag_scope_sets_and_restores_flags():
    assert jt.flags.lazy_execution == 1
    with jt.flag_scope(lazy_execution=0, check_indices=0):
        assert jt.flags.lazy_execution == 0 and jt.flags.check_indices == 0
    assert jt.flags.lazy_execution == 1 and jt.flags.check_indices == 1

    @jt.flag_scope(check_indices=0)
    def inside():
        return jt.flags.check_indices
    assert inside() == 0 and jt.flags.check_indices == 1
    with pytest.raises(jt.MetajitValueError, match="unknown flag 'lazy_exec'"):
        jt.flag_scope(lazy_exec=0)
    with pytest.raises(RuntimeError):
        with jt.flag_scope(lazy_execution=0):
            raise RuntimeError("restored anyway")
    assert jt.flags.lazy_execution == 1


def test_set_seed_repeats_metajit_numpy_and_python_random():
    import random

    def draw():
        return jt.rand(3).numpy().tolist(), np.random.rand(), random.random()
    jt.set_seed(11)
    first = draw()
    jt.set_global_seed(11)
    assert draw() == first


def test_runtime_helpers():
    assert jt.finfo(jt.float16).max == np.finfo(np.float16).max and jt.iinfo("int8").min == -128
    assert jt.has_cuda == ("cuda" in {d.name for d in jt.devices() if d.available})
    v = jt.array([1.0, 2.0])
    assert v.name() is None and v.name("w") is v and v.name() == "w"
    np.testing.assert_array_equal(v.fetch_sync(), [1.0, 2.0])
    values = jt.fetch_sync([v + 1, v * 3])
    np.testing.assert_array_equal(values[0], [2.0, 3.0])
    np.testing.assert_array_equal(values[1], [3.0, 6.0])
    jt.gc()
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        info = jt.display_memory_info()
    assert info["lived_vars"] >= 1 and "lived_vars" in output.getvalue()
