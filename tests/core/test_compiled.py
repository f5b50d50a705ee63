"""`jt.compile`: captured calls replayed, against torch and against the same calls run as
written; what makes a call run as written, and what starts a capture again."""
import warnings

import numpy as np
import pytest
import torch

import metajit as jt
from tests.threads import run_in_threads

pytestmark = pytest.mark.filterwarnings("error:jt.compile")  # a call run as written fails unless expected


class SmallNet(jt.nn.Module):
    def __init__(self):
        self.conv = jt.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = jt.nn.BatchNorm2d(8)
        self.pool = jt.nn.MaxPool2d(2)
        self.fc = jt.nn.Linear(8 * 4 * 4, 5)

    def execute(self, x):
        x = self.pool(self.bn(self.conv(x)).relu())
        return self.fc(x.reshape(x.shape[0], -1))


def torch_twin(net):
    """torch's SmallNet with ``net``'s parameters and buffers."""
    twin = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 5))
    names = {"0": "conv", "1": "bn", "5": "fc"}
    state = {key: torch.from_numpy(net.state_dict()[names[key.split(".")[0]] + "." + key.split(".", 1)[1]].numpy())
             for key in twin.state_dict()}
    twin.load_state_dict(state)
    return twin.eval()


def randomised_net(rng):
    net = SmallNet()
    net.bn.running_mean.assign(rng.standard_normal(8).astype(np.float32))
    net.bn.running_var.assign(rng.uniform(0.5, 2.0, 8).astype(np.float32))
    return net.eval()


class Counted:
    """A function that counts how often its Python body runs."""

    def __init__(self, function):
        self.function, self.runs = function, 0

    def __call__(self, *args, **kwargs):
        self.runs += 1
        return self.function(*args, **kwargs)


def test_module_replays_match_torch_on_new_inputs(rng):
    net = randomised_net(rng)
    twin = torch_twin(net)
    fast = jt.compile(net)
    with jt.no_grad():
        for _ in range(5):
            data = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
            got = fast(jt.array(data)).numpy()
            np.testing.assert_allclose(got, twin(torch.from_numpy(data)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_the_body_runs_twice_per_kind_of_call(rng):
    weight = jt.array(rng.standard_normal((4, 3)).astype(np.float32))
    body = Counted(lambda x, scale: (x @ weight).exp() * scale)
    fast = jt.compile(body)
    with jt.no_grad():
        for _ in range(4):
            x = rng.standard_normal((2, 4)).astype(np.float32)
            np.testing.assert_allclose(fast(jt.array(x), 0.5).numpy(), np.exp(x @ weight.numpy()) * 0.5, rtol=1e-5)
        assert body.runs == 2  # as written, then captured: replayed since
        x = rng.standard_normal((2, 4)).astype(np.float32)
        np.testing.assert_allclose(fast(jt.array(x), 2.0).numpy(), np.exp(x @ weight.numpy()) * 2.0, rtol=1e-5)
        x = rng.standard_normal((3, 4)).astype(np.float32)  # another shape
        np.testing.assert_allclose(fast(jt.array(x), 0.5).numpy(), np.exp(x @ weight.numpy()) * 0.5, rtol=1e-5)
        assert body.runs == 4


def test_new_parameters_and_layers_are_seen(rng):
    net = randomised_net(rng)
    fast = jt.compile(net)
    data = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    with jt.no_grad():
        for _ in range(3):
            fast(jt.array(data))
        other = randomised_net(rng)
        net.load_state_dict(other.state_dict())
        for _ in range(3):  # as written (folds built again), captured, replayed
            np.testing.assert_allclose(fast(jt.array(data)).numpy(),
                                       torch_twin(other)(torch.from_numpy(data)).detach().numpy(), rtol=1e-4, atol=1e-5)
        net.fc = jt.nn.Linear(8 * 4 * 4, 2)
        for _ in range(3):
            assert fast(jt.array(data)).shape == (2, 2)
            np.testing.assert_allclose(fast(jt.array(data)).numpy(), net(jt.array(data)).numpy(), rtol=1e-5)


def test_training_mode_runs_as_written_and_updates_statistics(rng):
    net = randomised_net(rng).train()
    fast = jt.compile(net)
    data = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    with jt.no_grad(), pytest.warns(UserWarning, match="state update"):
        for _ in range(4):
            fast(jt.array(data)).sync()
    twin = torch.nn.BatchNorm2d(8, momentum=0.1)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    conv.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in net.conv.state_dict().items()})
    twin.running_mean.copy_(torch.from_numpy(randomised_net(np.random.default_rng(1234)).bn.running_mean.numpy()))
    with torch.no_grad():
        features = conv(torch.from_numpy(data))
    means = features.mean((0, 2, 3)).numpy()
    # four updates of the running mean towards the batch mean, none replayed away
    expected = np.random.default_rng(1234).standard_normal(8).astype(np.float32)
    for _ in range(4):
        expected = 0.9 * expected + 0.1 * means
    np.testing.assert_allclose(net.bn.running_mean.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_gradients_flow_through_calls_run_as_written(rng):
    net = randomised_net(rng)
    fast = jt.compile(net)
    data = jt.array(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    with pytest.warns(UserWarning, match="gradients are tracked"):
        for _ in range(3):
            loss = fast(data).sum()
    expected = jt.grad(net(data).sum(), net.fc.weight).numpy()
    np.testing.assert_allclose(jt.grad(loss, net.fc.weight).numpy(), expected, rtol=1e-5)


def test_random_numbers_are_drawn_at_every_call(rng):
    fast = jt.compile(lambda x: jt.nn.dropout(x, 0.5, True))
    x = jt.ones(1000)
    with jt.no_grad(), pytest.warns(UserWarning, match="random numbers"):
        masks = [fast(x).numpy() > 0 for _ in range(4)]
    assert not (masks[2] == masks[3]).all()


def test_reading_a_value_runs_as_written_or_raises_with_fullgraph():
    def body(x):
        return x * 2 if x.sum().item() > 0 else x * 3
    fast = jt.compile(body)
    with jt.no_grad(), pytest.warns(UserWarning, match="value was read"):
        results = [fast(jt.array([sign, 1.0])).numpy() for sign in (1.0, 1.0, -5.0, -5.0)]
    np.testing.assert_allclose(results[3], [-15.0, 3.0])
    strict = jt.compile(body, fullgraph=True)
    with jt.no_grad():
        strict(jt.array([1.0, 2.0]))
        with pytest.raises(jt.MetajitValueError, match=r"runs as written: .*value was read"):
            strict(jt.array([1.0, 2.0]))


def test_structures_inputs_and_constants(rng):
    table = jt.array(rng.standard_normal(3).astype(np.float32))

    @jt.compile
    def body(pair, options):
        a, b = pair
        total = a + b * options["k"]
        return {"sum": total, "same": a, "table": table, "both": (a * b, b), "column": a.reshape(3, 1),
                "total column": total.reshape(3, 1)}
    with jt.no_grad():
        for _ in range(3):
            a, b = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
            lazy_b = jt.array(b) * 1.0  # an unrealised input
            out = body((jt.array(a), lazy_b), {"k": 2.0})
            np.testing.assert_allclose(out["sum"].numpy(), a + 2 * b, rtol=1e-6)
            np.testing.assert_allclose(out["same"].numpy(), a)
            np.testing.assert_allclose(out["table"].numpy(), table.numpy())
            np.testing.assert_allclose(out["both"][0].numpy(), a * b, rtol=1e-6)
            np.testing.assert_allclose(out["both"][1].numpy(), b)
            np.testing.assert_allclose(out["column"].numpy(), a[:, None])
            np.testing.assert_allclose(out["total column"].numpy(), (a + 2 * b)[:, None], rtol=1e-6)


def test_outputs_do_not_change_when_called_again(rng):
    fast = jt.compile(lambda x: x.exp())
    with jt.no_grad():
        data = [rng.standard_normal(5).astype(np.float32) for _ in range(4)]
        outputs = [fast(jt.array(d)) for d in data]
    for d, out in zip(data, outputs):
        np.testing.assert_allclose(out.numpy(), np.exp(d), rtol=1e-6)


def test_threads_replay_the_same_function(rng):
    net = randomised_net(rng)
    twin = torch_twin(net)
    fast = jt.compile(net)
    data = [rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(4)]
    with jt.no_grad():
        fast(jt.array(data[0])), fast(jt.array(data[0]))

    def work(index):
        with jt.no_grad():
            return [fast(jt.array(data[index])).numpy() for _ in range(5)]
    for index, results in enumerate(run_in_threads(work, 4)):
        for got in results:
            np.testing.assert_allclose(got, twin(torch.from_numpy(data[index])).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_a_replay_inside_a_capture_runs_the_outer_call_as_written():
    inner = jt.compile(lambda x: x + 1)
    outer = jt.compile(lambda x: inner(x) * 2)
    with jt.no_grad():
        for _ in range(2):
            inner(jt.array([1.0]))
        with pytest.warns(UserWarning, match="compiled function"):
            results = [outer(jt.array([float(k)])).numpy() for k in range(4)]
    np.testing.assert_allclose(np.concatenate(results), [2.0, 4.0, 6.0, 8.0])


def test_attributes_of_the_module_pass_through(rng):
    net = randomised_net(rng)
    fast = jt.compile(net)
    assert fast.fc is net.fc and len(fast.parameters()) == len(net.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(jt.MetajitValueError, match="function or a Module"):
            jt.compile(3)


def test_a_profiled_replay_lists_its_launches(rng):
    fast = jt.compile(lambda x: (x.exp() + 1).sum(1))
    with jt.no_grad():
        for _ in range(2):
            fast(jt.array(rng.standard_normal((4, 8)).astype(np.float32)))
        data = rng.standard_normal((4, 8)).astype(np.float32)
        with jt.profile_scope() as report:
            got = fast(jt.array(data)).numpy()
    np.testing.assert_allclose(got, (np.exp(data) + 1).sum(1), rtol=1e-5)
    assert len(report.launches) >= 1


def test_a_custom_operator_with_a_python_body_runs_at_every_call(rng):
    def forward(np, data):
        np.exp(data["inputs"][0], out=data["outputs"][0])
    fast = jt.compile(lambda x: jt.numpy_code(x.shape, x.dtype, [x * 2], forward) + 1)
    with jt.no_grad(), pytest.warns(UserWarning, match="custom operator"):
        for _ in range(4):
            data = rng.standard_normal(5).astype(np.float32)
            np.testing.assert_allclose(fast(jt.array(data)).numpy(), np.exp(2 * data) + 1, rtol=1e-6)


def test_a_function_without_outputs_runs_once_per_call():
    total = jt.zeros(1).sync()

    def accumulate(x):
        total.assign(total + x.sum())
    fast = jt.compile(accumulate)
    with jt.no_grad(), pytest.warns(UserWarning, match="runs as written"):
        for _ in range(3):
            fast(jt.ones(2))
    np.testing.assert_allclose(total.numpy(), [6.0])


def test_one_var_in_two_places_and_then_in_one():
    fast = jt.compile(lambda a, b: a - b)
    x, y = jt.array([1.0, 2.0]), jt.array([5.0, 7.0])
    with jt.no_grad():
        results = [fast(*pair).numpy() for pair in [(x, x), (x, x), (x, y), (y, x), (x, x)]]
    np.testing.assert_allclose(np.stack(results), [[0, 0], [0, 0], [-4, -5], [4, 5], [0, 0]])


def test_a_lazy_counter_kept_outside_is_updated_at_every_call():
    steps = jt.zeros(1) * 1  # lazy: never realised before the calls

    def count(x):
        nonlocal steps
        steps += 1
        return x * 2
    counted = steps
    fast = jt.compile(count)
    with jt.no_grad(), pytest.warns(UserWarning, match="from outside the call"):
        for _ in range(5):
            fast(jt.ones(2))
    assert counted is steps
    np.testing.assert_allclose(steps.numpy(), [5.0])


def test_a_module_argument_is_read_at_every_call(rng):
    layer = jt.nn.Linear(3, 2)
    fast = jt.compile(lambda module, x: module(x))
    x = jt.array(rng.standard_normal((1, 3)).astype(np.float32))
    with jt.no_grad():
        for _ in range(3):
            fast(layer, x)
        layer.weight.assign(jt.zeros((2, 3)))
        for _ in range(3):
            np.testing.assert_allclose(fast(layer, x).numpy(), layer.bias.numpy()[None], rtol=1e-6)


def test_a_compiled_method_serves_each_instance(rng):
    class Scaled(jt.nn.Module):
        def __init__(self, scale):
            self.scale = jt.array([scale])

        @jt.compile
        def execute(self, x):
            return x * self.scale
    first, second = Scaled(2.0), Scaled(3.0)
    with jt.no_grad():
        for _ in range(3):
            np.testing.assert_allclose(first(jt.ones(2)).numpy(), [2.0, 2.0])
            np.testing.assert_allclose(second(jt.ones(2)).numpy(), [3.0, 3.0])


def test_outputs_keep_their_identity():
    fast = jt.compile(lambda x: (x * 2,) * 2 + (x,))
    x = jt.array([1.0, 2.0])
    with jt.no_grad():
        for _ in range(3):
            first, again, same = fast(x)
            assert first is again and same is x
    np.testing.assert_allclose(first.numpy(), [2.0, 4.0])


def test_signs_of_zero_and_objects_among_the_arguments():
    fast = jt.compile(lambda x, divisor: x / divisor)
    with jt.no_grad():
        results = [fast(jt.array([1.0]), d).numpy()[0] for d in (0.0, 0.0, -0.0, -0.0)]
    assert results == [np.inf, np.inf, -np.inf, -np.inf]

    class Holder:
        def __init__(self, value):
            self.value = value
    holder_fast = jt.compile(lambda holder: holder.value * 2)
    holder = Holder(jt.array([1.0]))
    with jt.no_grad(), pytest.warns(UserWarning, match="plain value"):
        for k in range(3):
            holder.value = jt.array([float(k)])
            np.testing.assert_allclose(holder_fast(holder).numpy(), [2.0 * k])


def test_a_kind_run_as_written_in_training_mode_replays_again_in_eval_mode(rng):
    net = randomised_net(rng).train()
    body = Counted(net)
    fast = jt.compile(body)
    data = jt.array(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    with jt.no_grad():
        with pytest.warns(UserWarning, match="state update"):
            for _ in range(3):
                fast(data)
        net.eval()
        runs = body.runs
        for _ in range(4):
            fast(data)
    assert body.runs == runs + 2  # warmed up and captured again, then replayed


def test_returned_arguments_after_a_call_with_aliases():
    fast = jt.compile(lambda a, b: (a, a + b))
    x, y, z = jt.array([1.0]), jt.array([2.0]), jt.array([3.0])
    with jt.no_grad():
        for _ in range(2):
            fast(x, x)
        for _ in range(3):
            first, total = fast(y, z)
            assert first is y
            np.testing.assert_allclose(total.numpy(), [5.0])

    def bump(a, b):
        a += 1
        return a + b
    bumped = jt.compile(bump)
    with jt.no_grad(), pytest.warns(UserWarning, match="from outside the call"):
        for k in range(3):
            v = jt.array([1.0])
            np.testing.assert_allclose(bumped(v, v).numpy(), [4.0])  # as written: a and b are one Var
            np.testing.assert_allclose(v.numpy(), [2.0])


def test_a_compiled_method_does_not_keep_its_instance():
    import gc
    import weakref

    class Doubler(jt.nn.Module):
        @jt.compile
        def execute(self, x):
            return x * 2
    doubler = Doubler()
    with jt.no_grad():
        for _ in range(3):
            doubler(jt.ones(2))
    gone = weakref.ref(doubler)
    del doubler
    gc.collect()
    assert gone() is None
