"""The cpu backend's launch sequence: kernels (and replayed BLAS products) run by one C
call give what one ctypes call per kernel gives, and bad launches raise Python errors."""
import os

import numpy as np
import pytest

import metajit as jt
from metajit.backends import cpu

needs_launcher = pytest.mark.skipif(cpu.native_launcher is None, reason="the C launcher is not built")


def _training_step_values(rng_seed):
    rng = np.random.default_rng(rng_seed)
    x = jt.array(rng.standard_normal((16, 12)).astype(np.float32))
    w = jt.array(rng.standard_normal((12, 5)).astype(np.float32))
    b = jt.array(rng.standard_normal(5).astype(np.float32))
    values = []
    for _ in range(3):  # the later steps replay plans and recorded BLAS calls
        loss = ((x @ w + b).relu() * 0.5).exp().sum(1).log().mean()
        gw, gb = jt.grad(loss, [w, b])
        w.assign(w - 0.1 * gw)
        b.assign(b - 0.1 * gb)
        jt.sync_all()
        values.append((loss.item(), w.numpy().copy(), b.numpy().copy()))
    return values


@needs_launcher
def test_native_sequences_match_one_call_per_kernel(monkeypatch):
    native = _training_step_values(0)
    monkeypatch.setattr(cpu, "native_launcher", None)
    per_kernel = _training_step_values(0)
    for (loss_a, w_a, b_a), (loss_b, w_b, b_b) in zip(native, per_kernel):
        assert loss_a == loss_b
        np.testing.assert_array_equal(w_a, w_b)
        np.testing.assert_array_equal(b_a, b_b)


@needs_launcher
def test_bad_launches_raise_python_errors():
    with pytest.raises(TypeError):
        cpu.native_launcher.run([(1, [], [])], 1)
    with pytest.raises(TypeError):
        cpu.native_launcher.run([(1, None, [], b"")], 1)
    with pytest.raises(AttributeError):
        cpu.native_launcher.run([(1, [object()], [], b"")], 1)
    with pytest.raises(ValueError, match="null"):
        cpu.native_launcher.run([(0, [], [], b"")], 1)
    cpu.native_launcher.run([], 1)  # nothing to do


CTRL_C_PROGRAM = """
import os, signal, threading, time
import os

import numpy as np
import metajit as jt
rng = np.random.default_rng(0)
w = jt.array((rng.standard_normal((256, 256)) / 16).astype(np.float32)).sync()
x = jt.array(rng.standard_normal((256, 256)).astype(np.float32)).sync()
def chain():
    y = x
    for _ in range(600):
        y = (y @ w).tanh()
    return y
started = time.perf_counter(); expected = chain().numpy(); whole = time.perf_counter() - started
y = chain()
threading.Timer(whole / 4, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    y.sync()
    print("finished")
except KeyboardInterrupt as error:
    print("completed", error.metajit_completed)
with jt.debug.record_kernels() as launched:
    value = y.numpy()
print("relaunched", len(launched))
print("equal", bool(np.array_equal(value, expected)))
"""


@pytest.mark.parametrize("pure_python", ["0", "1"])
def test_ctrl_c_lands_between_kernels_and_finished_work_is_kept(tmp_path, pure_python):
    """Ctrl-C during a long realisation stops it between kernels (not after the whole native
    batch), and a retry runs only the kernels that had not finished, with the same result."""
    import subprocess
    import sys
    environment = {**os.environ, "METAJIT_DEVICE": "cpu", "METAJIT_PURE_PYTHON": pure_python}
    result = subprocess.run([sys.executable, "-c", CTRL_C_PROGRAM], capture_output=True, text=True,
                            timeout=600, env=environment)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    total = 1200  # a product and a tanh per link
    completed = int(lines["completed"])
    assert 0 < completed < total
    assert int(lines["relaunched"]) == total - completed
    assert lines["equal"] == "True"
