"""The asynchronous-device contract (hookspec docstrings), checked with a fake device whose
launches, copies and frees run later on a worker thread, in issue order: stream-ordered
reuse and frees give right values, a kernel failure surfaces at the next sync naming the
kernel, and a repeated plan passes the same key to ``launch_sequence``."""
import queue
import threading
import time

import numpy as np
import pytest

import metajit as jt
from metajit.backends import reference
from metajit.errors import MetajitDeviceError
from metajit.hookspec import hookimpl
from metajit.plugins import BackendDescription

POISON = 0xA5


class QueuedDevice:
    """Every launch, copy and free is a job on one worker thread (a stream); launches run
    slowly, so the host is always ahead. A free overwrites the buffer with garbage when it
    runs: a buffer freed or reused too early shows up as wrong values."""

    def __init__(self):
        self.jobs = queue.Queue()
        self.failure = None
        self.fails = lambda kernel: False
        self.plan_keys = []
        threading.Thread(target=self._work, daemon=True).start()

    def _work(self):
        while True:
            job, kernel = self.jobs.get()
            try:
                if self.failure is None:
                    job()
            except Exception as error:
                self.failure = (kernel, error)
            finally:
                self.jobs.task_done()

    def _raise_pending_failure(self):
        self.jobs.join()
        if self.failure is not None:
            kernel, error = self.failure
            self.failure = None
            raise MetajitDeviceError(f"kernel failed on the device: {error}\n{kernel}")

    @hookimpl
    def metajit_backend_describe(self):
        return BackendDescription(name="queued", device_kind="accelerator")

    @hookimpl
    def metajit_backend_unavailable_reason(self):
        return None

    @hookimpl
    def metajit_backend_codegen(self, kernels):
        return reference.metajit_backend_codegen(kernels)

    @hookimpl
    def metajit_backend_compile(self, sources):
        return reference.metajit_backend_compile(sources)

    @hookimpl
    def metajit_backend_launch(self, program, inputs, outputs, parameters):
        kernel = program  # the reference backend's programs are the kernels themselves

        def run():
            time.sleep(0.002)
            if self.fails(kernel):
                raise RuntimeError("simulated illegal address")
            reference.metajit_backend_launch(program, inputs, outputs, parameters)
        self.jobs.put((run, kernel))

    @hookimpl
    def metajit_backend_launch_sequence(self, launches, plan_key):
        self.plan_keys.append(plan_key)
        for launch in launches:
            self.metajit_backend_launch(*launch)

    @hookimpl
    def metajit_backend_synchronize(self):
        self._raise_pending_failure()

    @hookimpl
    def metajit_backend_allocate(self, nbytes):
        return np.full(nbytes, POISON, dtype=np.uint8)

    @hookimpl
    def metajit_backend_free(self, buffer):
        self.jobs.put((lambda: buffer.fill(POISON), None))

    @hookimpl
    def metajit_backend_copy_from_host(self, buffer, array):
        data = array.reshape(-1).view(np.uint8).copy()
        self.jobs.put((lambda: buffer.__setitem__(slice(0, data.size), data), None))

    @hookimpl
    def metajit_backend_copy_to_host(self, buffer, array):
        self._raise_pending_failure()
        array.reshape(-1).view(np.uint8)[:] = buffer[:array.nbytes]

    @hookimpl
    def metajit_backend_copy_device_to_device(self, destination, source, nbytes):
        self.jobs.put((lambda: destination.__setitem__(slice(0, nbytes), source[:nbytes]), None))


@pytest.fixture
def queued():
    device = QueuedDevice()
    jt.plugins.register_backend(device, "queued")
    previous = jt.get_device()
    jt.set_device("queued")
    yield device
    jt.set_device(previous)
    jt.plugins.unregister_backend("queued")


def test_stream_ordered_frees_and_reuse_give_right_values(queued, rng):
    data = rng.standard_normal((64, 32)).astype(np.float32)
    w_data = rng.standard_normal((32, 32)).astype(np.float32)
    x, w = jt.array(data), jt.array(w_data)
    y = x
    expected = data.astype(np.float64)
    for _ in range(6):
        y = (y @ w).tanh() + y.mean()
        expected = np.tanh(expected @ w_data) + expected.mean()
    gw = jt.grad((y * y).sum(), w)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-4)
    assert np.isfinite(gw.numpy()).all()
    del y, gw  # frees queued behind nothing: the next computation must not see poison
    np.testing.assert_allclose((x * 2).numpy(), data * 2, rtol=1e-6)


def test_a_device_fault_surfaces_at_the_next_sync_naming_the_kernel(queued):
    x = jt.array(np.arange(6, dtype=np.float32))
    queued.fails = lambda kernel: "exp" in str(kernel)
    z = (x * 3).exp() - 1
    z.sync()  # queued: returns before the kernel runs
    with pytest.raises(MetajitDeviceError, match="simulated illegal address") as failure:
        z.numpy()
    assert "exp(" in str(failure.value)  # the message shows the failing kernel
    queued.fails = lambda kernel: False
    np.testing.assert_allclose((x + 1).numpy(), np.arange(6) + 1.0)  # the device stays usable


def test_a_repeated_plan_passes_the_same_key_to_launch_sequence(queued):
    w = jt.array(np.ones(4, dtype=np.float32)).sync()
    for _ in range(3):
        w.assign(w * 0.5 + 1)
        w.sync()
    other = (w.exp() * 2).sum()
    other.sync()
    keys = queued.plan_keys[-4:]
    assert keys[0] == keys[1] == keys[2] and keys[3] != keys[0]
    np.testing.assert_allclose(w.numpy(), [1.875] * 4)


def test_plugins_without_a_plan_key_parameter_still_get_sequences(rng):
    calls = []

    class OldStyle(QueuedDevice):
        @hookimpl
        def metajit_backend_launch_sequence(self, launches):
            calls.append(len(launches))
            for launch in launches:
                self.metajit_backend_launch(*launch)

    jt.plugins.register_backend(OldStyle(), "old_style")
    previous = jt.get_device()
    try:
        jt.set_device("old_style")
        assert (jt.array([1.0, 2.0]) * 3).numpy().tolist() == [3.0, 6.0]
    finally:
        jt.set_device(previous)
        jt.plugins.unregister_backend("old_style")
    assert calls == [1]


def test_a_sequence_hook_taking_seconds_times_profiled_launches_itself(queued):
    """A plugin whose ``launch_sequence`` takes ``seconds`` is handed the profiler's list
    and fills it (one entry per launch); without it the profiler launches one kernel at
    a time through ``launch`` (the queued device here)."""
    handed = []
    assert not jt.plugins.current().times_sequences  # the queued device's hook takes no seconds

    class Timing(QueuedDevice):
        @hookimpl
        def metajit_backend_launch_sequence(self, launches, plan_key, seconds):
            handed.append(seconds)
            for launch in launches:
                self.metajit_backend_launch(*launch)
                self.metajit_backend_synchronize()
                if seconds is not None:
                    seconds.append(0.25)

    jt.plugins.register_backend(Timing(), "timing")
    previous = jt.get_device()
    try:
        jt.set_device("timing")
        x = jt.array(np.arange(4, dtype=np.float32)).sync()
        with jt.profile_scope() as report:
            assert ((x * 3).exp().sum() + x.max()).numpy() == pytest.approx(np.exp(np.arange(4) * 3).sum() + 3)
        assert jt.plugins.current().times_sequences
    finally:
        jt.set_device(previous)
        jt.plugins.unregister_backend("timing")
    assert handed and all(isinstance(seconds, list) for seconds in handed)
    assert report.rows and all(row.total == pytest.approx(0.25 * row.count) for row in report.rows)
