"""Library programs in the cpu backend's C launch sequence: oneDNN convolutions, poolings
and concatenations, Winograd and grouped convolutions hand their work to the native
launcher (`native_calls`) once their kept weights are current, give torch's values
there, fall back to a call where the sequence cannot hold them, and report a failing
oneDNN primitive as a Python error."""
import ctypes
import struct
import threading

import numpy as np
import pytest
import torch

import metajit as jt
from metajit import nn
from metajit.backends import cpu
from metajit.backends.cpu import grouped_conv, kept_batches, onednn, winograd
from metajit.errors import MetajitDeviceError
from tests.threads import run_in_threads

pytestmark = [pytest.mark.skipif(onednn.library() is None, reason="oneDNN (onednn-cpu-gomp) not installed"),
              pytest.mark.skipif(cpu.native_launcher is None, reason="the C launcher is not built")]
F = torch.nn.functional
PROGRAMS = (onednn.ConvolutionProgram, onednn.PoolingProgram, onednn.ConcatProgram, winograd.WinogradProgram,
            grouped_conv.GroupedConvolutionProgram)


@pytest.fixture
def called(monkeypatch):
    """How the library programs ran: ``(class name, "call")`` for a call,
    ``(class name, "native")`` for launches handed to the C launcher (their own, or those
    of a kept batch)."""
    seen = []
    for program in PROGRAMS:
        for method, how in (("__call__", "call"), ("native_calls", "native")):
            original = getattr(program, method)

            def spy(self, *arguments, _original=original, _how=how, **options):
                result = _original(self, *arguments, **options)
                if _how == "call" or result is not None:
                    seen.append((type(self).__name__, _how))
                return result
            monkeypatch.setattr(program, method, spy)
    find = kept_batches.find

    def kept_batch_spy(plan_key, signature, launches):  # a kept batch runs its programs' native calls
        kept = find(plan_key, signature, launches)
        if kept is not None:
            seen.extend((type(program).__name__, "native") for program, *_ in launches
                        if isinstance(program, PROGRAMS))
        return kept
    monkeypatch.setattr(kept_batches, "find", kept_batch_spy)
    return seen


def weights(rng, out_channels, in_channels, kernel):
    scale = 1 / np.sqrt(in_channels * kernel * kernel)
    return ((rng.standard_normal((out_channels, in_channels, kernel, kernel)) * scale).astype(np.float32),
            rng.standard_normal(out_channels).astype(np.float32))


def network(rng):
    """Weights of a small network touching every native program: a convolution with ReLU
    (oneDNN), a clamped max pooling, a depthwise convolution with ReLU6, a residual
    addition, a Winograd convolution, a grouped one with 4 channels per group, a
    concatenation and an average pooling."""
    return {"stem": weights(rng, 32, 3, 3), "depthwise": weights(rng, 32, 1, 3), "project": weights(rng, 32, 32, 1),
            "winograd": weights(rng, 32, 32, 3), "grouped": weights(rng, 32, 4, 3), "side": weights(rng, 16, 32, 1)}


def forward(x, w, conv, relu, relu6, max_pool, avg_pool, cat):
    """The network of `network` written once for both libraries."""
    h = max_pool(relu(conv(x, *w["stem"], padding=1, stride=2)), 3, 2, 1)
    d = relu6(conv(h, *w["depthwise"], padding=1, groups=32))
    h = conv(d, *w["project"]) + h
    h = relu(conv(h, *w["winograd"], padding=1))
    h = relu(conv(h, *w["grouped"], padding=1, groups=8))
    h = cat([conv(h, *w["side"]), relu(conv(d, *w["side"]))], 1)
    return avg_pool(h, 3, 1, 1)


def as_vars(w):
    """The weights as metajit Vars (made once: weights are kept per buffer)."""
    return {name: tuple(jt.array(a) for a in pair) for name, pair in w.items()}


def ours(x, w):
    with jt.no_grad():
        return forward(jt.array(x), w, nn.conv2d, nn.relu, nn.relu6, nn.max_pool2d, nn.avg_pool2d, jt.concat).numpy()


def theirs(x, w):
    tensors = {name: tuple(torch.from_numpy(a) for a in pair) for name, pair in w.items()}
    return forward(torch.from_numpy(x), tensors, F.conv2d, F.relu, F.relu6, F.max_pool2d, F.avg_pool2d,
                   torch.cat).numpy()


def test_library_programs_join_the_native_sequence_and_match_torch(rng, called):
    w = network(rng)
    mine = as_vars(w)
    for call in range(4):  # weights are kept from the second call, current from the third
        x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
        called.clear()
        np.testing.assert_allclose(ours(x, mine), theirs(x, w), rtol=1e-4, atol=1e-4)
    assert {how for _, how in called} == {"native"}, called  # every program went through the C launcher
    assert {name for name, _ in called} == {program.__name__ for program in PROGRAMS}


@pytest.mark.parametrize("size", [64, 128])  # Winograd's direct fallback (few tiles), its own transform
def test_weights_new_at_every_call_are_derived_natively_and_match_torch(rng, called, size):
    """Training: the weights change before every call, so no program keeps a copy of them;
    from the second call (the first grows the workspace) each derives them into its
    scratch inside the native sequence, Winograd's transform included."""
    w = network(rng)
    mine = as_vars(w)
    for step in range(4):
        w = {name: (weight + np.float32(0.01), bias) for name, (weight, bias) in w.items()}
        for name, (weight, _) in w.items():
            mine[name][0].assign(weight)  # the same Var (and buffer class), new contents
        x = rng.standard_normal((2, 3, size, size)).astype(np.float32)
        called.clear()
        np.testing.assert_allclose(ours(x, mine), theirs(x, w), rtol=1e-4, atol=1e-4)
        if step:
            assert {how for _, how in called} == {"native"}, called
    assert {name for name, _ in called} == {program.__name__ for program in PROGRAMS}


def test_a_new_thread_grows_its_workspace_by_calls_then_runs_natively(rng, called):
    w = network(rng)
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    expected = theirs(x, w)
    mine = as_vars(w)
    for _ in range(3):
        ours(x, mine)
    results, calls = [], []

    def fresh_thread():  # its workspace starts empty: a launch needing more runs as a call, which grows it
        for _ in range(2):
            called.clear()
            results.append(ours(x, mine))
            calls.append([name for name, how in called if how == "call"])
    worker = threading.Thread(target=fresh_thread)
    worker.start()
    worker.join()
    assert calls[0] and not calls[1]
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-4)


def test_threads_running_one_network_natively_agree_with_torch(rng):
    w = network(rng)
    inputs = [rng.standard_normal((1, 3, 64, 64)).astype(np.float32) for _ in range(4)]
    expected = [theirs(x, w) for x in inputs]
    mine = as_vars(w)

    def worker(k):
        for _ in range(6):
            np.testing.assert_allclose(ours(inputs[k], mine), expected[k], rtol=1e-4, atol=1e-4)
    run_in_threads(worker, 4)


SET_HANDLE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
EXECUTE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p)
WAIT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)


def primitive_launch(launcher, execute_status, bound_to, keep):
    """A native launch of one fake primitive whose execute returns ``execute_status``
    (ctypes callbacks stand in for oneDNN's entry points; ``keep`` holds them alive)."""
    set_handle = SET_HANDLE(lambda memory, address: bound_to.append(address) or 0)
    execute = EXECUTE(lambda primitive, stream, count, arguments: execute_status)
    wait = WAIT(lambda stream: 0)
    lock = ctypes.create_string_buffer(launcher.LOCK_BYTES)
    launcher.init_lock(ctypes.addressof(lock))
    bound = (ctypes.c_void_p * 1)()
    keep += [set_handle, execute, wait, lock, bound]
    entry_points = [ctypes.cast(f, ctypes.c_void_p).value for f in (set_handle, execute, wait)]
    parameters = (struct.pack("=5q", *entry_points, ctypes.addressof(lock), 1)
                  + struct.pack("=5q2q", 0, 0, 0, 1, ctypes.addressof(bound), 0, 0))
    return launcher.primitive_runner(), [4096], [0], parameters


def test_a_failing_primitive_raises_a_device_error_and_releases_its_lock():
    launcher, bound_to, keep = cpu.native_launcher, [], []
    failing = primitive_launch(launcher, 5, bound_to, keep)  # 5: dnnl_runtime_error
    working = primitive_launch(launcher, 0, bound_to, keep)
    for attempt in range(2):  # the second would hang had the first kept the lock
        with pytest.raises(MetajitDeviceError, match="status 5") as raised:
            launcher.run([failing], 1)
        assert raised.value.metajit_completed == 0
    with pytest.raises(MetajitDeviceError) as raised:
        launcher.run([working, failing, working], 1)
    assert raised.value.metajit_completed == 1
    assert bound_to == [4096, 4096]  # each memory bound once: the address is remembered


def test_packed_launches_run_as_the_list_they_were_packed_from():
    """`pack` reads a launch list once (a kept batch); `run_packed` runs it as `run` runs
    the list, a failing launch reported with the launches finished before it."""
    launcher, bound_to, keep = cpu.native_launcher, [], []
    working = primitive_launch(launcher, 0, bound_to, keep)
    failing = primitive_launch(launcher, 5, bound_to, keep)
    packed, parameters = launcher.pack([working, working])
    assert parameters == (working[3], working[3])
    launcher.run_packed(packed, 1)
    assert bound_to == [4096]  # bound once, as the list's run binds it
    packed, parameters = launcher.pack([working, failing, working])
    with pytest.raises(MetajitDeviceError, match="status 5") as raised:
        launcher.run_packed(packed, 1)
    assert raised.value.metajit_completed == 1
    with pytest.raises(TypeError, match="address, inputs, outputs, bytes"):
        launcher.pack([(1, [], [])])
    with pytest.raises(ValueError, match="not a packed launch list"):
        launcher.run_packed(b"\x05", 1)
    launcher.run_packed(launcher.pack([])[0], 1)  # nothing to do


class SlowThenConvolved(nn.Module):
    """A long reduction, then a convolution, twice: the second convolution's launch waits
    in the sequence behind the reduction, reading its weights' kept copy."""

    def __init__(self, channels, size):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.channels, self.size = channels, size
        self.ramp = jt.array((np.arange(60000, dtype=np.float32) * 1e-5).reshape(1, 1, 1, 1, -1))

    def execute(self, x):
        shape = (1, self.channels, self.size, self.size, 1)
        y = self.conv((x.reshape(shape) * self.ramp).sin().mean(-1))
        return self.conv((y.reshape(shape) * self.ramp).cos().mean(-1))


def test_a_kept_copy_a_queued_launch_reads_is_not_reused_by_another_thread(rng):
    """Thread A runs more same-shape convolutions than a program keeps copies of, so each
    of its calls drops the least recently used copy and derives into a new buffer; the
    copy thread B's queued launch reads must not be among those reused meanwhile."""
    channels, size = 8, 8
    many = nn.Sequential(*[nn.Conv2d(channels, channels, 3, padding=1) for _ in range(70)]).eval()
    for parameter in many.parameters():
        parameter.assign(parameter * 0.3)
    slow = SlowThenConvolved(channels, size).eval()
    xa, xb = (jt.array(rng.standard_normal((1, channels, size, size)).astype(np.float32)) for _ in range(2))
    with jt.no_grad():
        jt.sync_all()
        expected_a, expected_b = many(xa).numpy(), slow(xb).numpy()
        for _ in range(3):  # the slow model's copy is derived, then current
            slow(xb).numpy()
            many(xa).numpy()
    done, wrong = threading.Event(), []

    def run_many():
        with jt.no_grad():
            while not done.is_set():
                if not np.allclose(many(xa).numpy(), expected_a, rtol=1e-4, atol=1e-5):
                    wrong.append("many")

    def run_slow():
        with jt.no_grad():
            for _ in range(4):
                if not np.allclose(slow(xb).numpy(), expected_b, rtol=1e-4, atol=1e-5):
                    wrong.append("slow")
        done.set()
    run_in_threads(lambda k: (run_many, run_slow)[k](), 2)
    assert wrong == []
