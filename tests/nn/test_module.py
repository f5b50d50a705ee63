"""The Module system, containers, state dicts, save/load and error reporting."""
import numpy as np
import pytest

import metajit as jt
from metajit.nn.module import state_entries


class Net(jt.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = jt.nn.Sequential(jt.nn.Linear(4, 8), jt.nn.ReLU())
        self.heads = jt.nn.ModuleList([jt.nn.Linear(8, 2), jt.nn.Linear(8, 3)])
        self.scale = jt.ones(1)
        self.register_buffer("calls", jt.zeros(1))

    def execute(self, x):
        hidden = self.encoder(x)
        return [head(hidden) * self.scale for head in self.heads]


class TorchStyle(jt.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = jt.nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x)


def test_parameters_buffers_and_names():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "encoder.0.weight", "encoder.0.bias", "heads.0.weight", "heads.0.bias",
                     "heads.1.weight", "heads.1.bias"]
    assert [n for n, _ in net.named_buffers()] == ["calls"]
    assert "calls" in net.state_dict() and len(net.parameters()) == 7
    assert len(list(net.modules())) == 7 and len(net.children()) == 2
    assert [o.shape for o in net(jt.zeros((5, 4)))] == [(5, 2), (5, 3)]


def test_add_module_registers_children_as_pytorch():
    torch = pytest.importorskip("torch")
    ours, theirs = jt.nn.Sequential(), torch.nn.Sequential()
    for model, nn in ((ours, jt.nn), (theirs, torch.nn)):
        model.add_module("fc", nn.Linear(2, 3))
        model.add_module("act", nn.ReLU())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())
    data = np.ones((1, 2), np.float32)
    expected = theirs(torch.from_numpy(data)).detach().numpy()
    np.testing.assert_allclose(ours(jt.array(data)).numpy(), expected, rtol=1e-6)
    with pytest.raises(jt.MetajitValueError, match="takes a Module"):
        ours.add_module("scale", 3)


def test_forward_alias_train_eval_apply_and_repr():
    module = TorchStyle()
    assert module(jt.ones((1, 2))).shape == (1, 2)
    net = Net().eval()
    assert not any(m.training for m in net.modules())
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net"
    assert "Linear(in_features=4, out_features=8, bias=True)" in repr(net)
    with pytest.raises(jt.MetajitValueError, match="neither execute"):
        jt.nn.Module()(1)


def test_load_state_dict_reports_problems():
    net = Net()
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    del state["scale"]
    state["extra"] = np.zeros(1)
    with pytest.raises(jt.MetajitValueError, match=r"missing keys \['scale'\].*unexpected keys \['extra'\]"):
        net.load_state_dict(state)
    result = net.load_state_dict(state, strict=False)
    assert result.missing_keys == ["scale"] and result.unexpected_keys == ["extra"]
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    state["encoder.0.weight"] = np.zeros((3, 3), np.float32)
    with pytest.raises(jt.MetajitShapeError, match=r"encoder.0.weight: checkpoint \(3, 3\) vs model \(8, 4\)"):
        net.load_parameters(state)


def test_save_and_load_roundtrip(tmp_path):
    net = Net()
    path = str(tmp_path / "net.pkl")
    jt.save(net.state_dict(), path)
    other = Net()
    other.load_state_dict(path)
    for (name, a), b in zip(net.state_dict().items(), other.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    assert isinstance(jt.load(path, weights_only=True)["scale"], np.ndarray)


class RunsCode:
    """Unpickling this calls ``operator.add``: the shape of a code-running pickle."""

    def __reduce__(self):
        import operator
        return operator.add, (1, 2)


def test_load_is_weights_only_by_default_for_every_format(tmp_path):
    import pickle
    import torch
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"x": np.ones(2), "f": print}, handle)
    with pytest.raises(jt.MetajitValueError, match="refuses builtins.print"):
        jt.load(str(path))
    with open(path, "wb") as handle:
        pickle.dump({"x": np.ones(2), "run": RunsCode()}, handle)
    with pytest.raises(jt.MetajitValueError, match="refuses _operator.add|refuses operator.add"):
        jt.load(str(path))
    assert jt.load(str(path), weights_only=False)["run"] == 3  # opted in: the file's code ran
    torch_path = tmp_path / "evil.pth"
    torch.save({"w": torch.ones(2), "run": RunsCode()}, torch_path)
    with pytest.raises(jt.MetajitValueError, match="refuses"):
        jt.load(str(torch_path))
    assert jt.load(str(torch_path), weights_only=False)["run"] == 3


@pytest.mark.parametrize("damage", ["empty", "truncated", "text", "truncated_zip"])
def test_broken_checkpoint_files_name_the_file(tmp_path, damage):
    import torch
    path = tmp_path / "broken.pth"
    if damage == "empty":
        path.write_bytes(b"")
    elif damage == "text":
        path.write_text("this is not a checkpoint\n")
    else:
        good = tmp_path / "good.pth"
        if damage == "truncated":
            jt.save({"w": np.ones((64, 64), np.float32)}, str(good))
        else:
            torch.save({"w": torch.ones(64, 64)}, good)
        data = good.read_bytes()
        path.write_bytes(data[:len(data) // 2] if damage == "truncated" else data[:-200])
    with pytest.raises(jt.MetajitValueError, match="broken.pth is not a complete.*checkpoint"):
        jt.load(str(path))


def test_optimizer_state_dict_roundtrip():
    w = jt.array([1.0, 2.0])
    optimizer = jt.optim.Adam([w], lr=0.1)
    optimizer.step((w * w).sum())
    saved = optimizer.state_dict()
    assert saved["param_groups"][0]["params"] == [0] and "exp_avg" in saved["state"][0]
    other = jt.optim.Adam([jt.array([1.0, 2.0])], lr=0.5)
    other.load_state_dict(saved)
    assert other.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(other.state_dict()["state"][0]["exp_avg"], saved["state"][0]["exp_avg"])


def test_training_loop_memory_stays_flat():
    import gc
    model = jt.nn.Sequential(jt.nn.Linear(4, 16), jt.nn.ReLU(), jt.nn.Linear(16, 1))
    optimizer = jt.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = jt.randn(8, 4), jt.randn(8, 1)
    counts = []
    for step in range(60):
        optimizer.step(((model(x) - y) ** 2).mean())
        if step in (20, 59):
            gc.collect()
            counts.append(jt.liveness_info())
    assert counts[0] == counts[1]


def test_param_groups_use_their_own_hyperparameters():
    slow, fast = jt.array([1.0]), jt.array([1.0])
    optimizer = jt.optim.SGD([{"params": [slow]}, {"params": [fast], "lr": 1.0}], lr=0.1)
    optimizer.step((slow * 2 + fast * 2).sum())
    np.testing.assert_allclose(slow.numpy(), [0.8])
    np.testing.assert_allclose(fast.numpy(), [-1.0])


def test_jittor_optimizer_backward_then_step():
    w = jt.array([3.0])
    optimizer = jt.optim.SGD([w], lr=0.5)
    optimizer.backward((w * w).sum())
    np.testing.assert_allclose(w.grad.numpy(), [6.0])
    optimizer.step()
    np.testing.assert_allclose(w.numpy(), [0.0])


def test_checkpoint_without_num_batches_tracked_loads_strictly():
    # PyTorch before 0.4.1 saved BatchNorm without num_batches_tracked; torch.load_state_dict accepts that
    model = jt.nn.Sequential(jt.nn.Conv2d(1, 2, 1), jt.nn.BatchNorm2d(2))
    state = {name: value.numpy() + 1 for name, value in model.state_dict().items()
             if not name.endswith("num_batches_tracked")}
    assert model.load_state_dict(state) == ([], [])
    np.testing.assert_array_equal(model[1].running_var.numpy(), [2.0, 2.0])
    assert model[1].num_batches_tracked.item() == 0
    del state["1.running_var"]
    with pytest.raises(jt.MetajitValueError, match=r"missing keys \['1.running_var'\]"):
        model.load_state_dict(state)


def test_torch_module_methods_hooks_lookup_and_dtype_follow_torch():
    """Forward hooks and pre-hooks (and their removal), dotted lookups, ``to(dtype)`` /
    ``half()`` in place, ``state_dict(prefix=)`` and ``named_parameters(remove_duplicate=)``
    as torch.nn.Module does them."""
    torch = pytest.importorskip("torch")
    data = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)

    def build(nn):
        return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    ours, theirs = build(jt.nn), build(torch.nn)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    outputs = {}
    for model, wrap in ((ours, jt.array), (theirs, torch.from_numpy)):
        seen = []
        doubled = model[0].register_forward_pre_hook(lambda module, args: (args[0] * 2,))
        model[1].register_forward_hook(lambda module, args, output: seen.append(output) or output + 1)
        first = model(wrap(data))
        doubled.remove()
        outputs[model is ours] = (first, model(wrap(data)), seen[0])
    for mine, reference in zip(outputs[True], outputs[False]):
        np.testing.assert_allclose(mine.numpy(), reference.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert ours.get_submodule("2") is ours[2] and ours.get_parameter("0.bias") is ours[0].bias
    with pytest.raises(AttributeError, match="no submodule 'x'"):
        ours.get_submodule("2.x")
    assert list(ours.state_dict(prefix="net.")) == list(theirs.state_dict(prefix="net."))
    tied = [jt.nn.ModuleList([ours[0], ours[0]]), torch.nn.ModuleList([theirs[0], theirs[0]])]
    for remove_duplicate in (True, False):
        assert [n for n, _ in tied[0].named_parameters(remove_duplicate=remove_duplicate)] == \
            [n for n, _ in tied[1].named_parameters(remove_duplicate=remove_duplicate)]
    weight = ours[0].weight
    assert ours.to(torch.float64) is ours and weight.dtype == "float64" and ours[0].weight is weight
    assert ours.half()[2].bias.dtype == "float16" and ours.to("cpu", dtype=jt.float32)[2].bias.dtype == "float32"
    with pytest.raises(jt.MetajitDeviceError, match="jt.set_device"):
        ours.to("xpu")


def test_a_compiled_model_follows_hooks_added_and_removed():
    model = jt.nn.Linear(2, 2)
    compiled, x = jt.compile(model), jt.ones((1, 2))
    with jt.no_grad():
        before = compiled(x).numpy()
        handle = model.register_forward_hook(lambda module, args, output: output * 0)
        assert not compiled(x).numpy().any()
        handle.remove()
        np.testing.assert_array_equal(compiled(x).numpy(), before)


def test_a_module_or_var_set_where_a_plain_value_was_replaces_it():
    layer = jt.nn.Module()
    layer.head = None
    layer.head = jt.nn.Linear(2, 3)
    layer.scale = None
    layer.scale = jt.array([1.0])
    assert isinstance(layer.head, jt.nn.Linear) and layer.scale is not None
    assert list(layer.state_dict()) == ["scale", "head.weight", "head.bias"]


def test_convolution_repr_matches_torch():
    """Convolution modules print as PyTorch's: defaults left out, ``bias=False`` shown."""
    torch = pytest.importorskip("torch")
    cases = [("Conv2d", (3, 8, 3), {"bias": False}),
             ("Conv2d", (3, 8, 3), {"stride": 2, "padding": 1, "dilation": 2, "padding_mode": "reflect"}),
             ("Conv2d", (4, 8, 3), {"groups": 2, "padding": "same"}),
             ("ConvTranspose2d", (3, 8, 3), {"stride": 2, "output_padding": 1, "bias": False}),
             ("Conv1d", (3, 8, 3), {}), ("Conv3d", (3, 8, 3), {"padding": 1})]
    for name, args, settings in cases:
        assert repr(getattr(jt.nn, name)(*args, **settings)) == repr(getattr(torch.nn, name)(*args, **settings))


def test_state_entries_read_as_attribute_access_does():
    """`state_entries` reads a layer's entries from its table, and what attribute access
    gives where the name is elsewhere: a plain None (no bias), another table, or a value
    assigned since."""
    layer = jt.nn.Linear(3, 2, bias=False)
    weight, bias = state_entries(layer, "_parameters", ("weight", "bias"))
    assert weight is layer.weight and bias is None
    norm = jt.nn.BatchNorm2d(4)
    running_mean, weight = state_entries(norm, "_buffers", ("running_mean", "weight"))
    assert running_mean is norm.running_mean and weight is norm.weight  # (a parameter, not a buffer)
    replacement = jt.ones(4)
    norm.running_mean = replacement
    assert state_entries(norm, "_buffers", ("running_mean",))[0] is replacement
    with pytest.raises(AttributeError):
        state_entries(norm, "_buffers", ("missing",))


def test_a_var_set_where_a_buffer_was_deleted_is_a_parameter():
    layer = jt.nn.Linear(2, 2)
    layer.register_buffer("scale", jt.ones(2), persistent=False)
    del layer.scale
    layer.scale = jt.ones(2)
    assert "scale" in dict(layer.named_parameters()) and "scale" in layer.state_dict()
    assert "scale" not in dict(layer.named_buffers())
