"""jt.profile_scope (kernels launched inside, timed) and Jittor's flags: use_cuda,
auto_convert_64_to_32, log_silent, amp_reg, use_tensorcore."""
import time

import numpy as np
import pytest

import metajit as jt
from metajit import plugins


def test_profile_scope_times_every_kernel_launched_inside(rng, capsys):
    a = jt.array(rng.standard_normal((16, 16)).astype(np.float32))
    ((a * 2).exp() + 1).sync()  # compiled outside the scope
    with jt.profile_scope() as report:
        started = time.perf_counter()
        (a * 2).exp().sum(1).sync()
        elapsed = time.perf_counter() - started
    assert sum(row.count for row in report.rows) == len(report.launches) >= 1
    assert all(launch.seconds is not None and launch.seconds >= 0 for launch in report.launches)
    assert 0 < sum(row.total for row in report.rows) <= elapsed
    assert [row.total for row in report.rows] == sorted((row.total for row in report.rows), reverse=True)
    assert sum(row.share for row in report.rows) == pytest.approx(1.0)
    printed = capsys.readouterr().err
    assert "sorted by TotalTime" in printed and "kernel domain=(16, 16)" in printed
    with jt.debug.record_kernels() as launched:  # outside a profile: no times
        (a + 1).sync()
    assert launched and launched[0].seconds is None


def test_profile_scope_can_stay_quiet(rng, capsys):
    with jt.profile_scope(print_report=False) as report:
        jt.array(rng.standard_normal(4).astype(np.float32)).exp().sync()
    assert capsys.readouterr().err == "" and "Count" in report.table()


def test_use_cuda_reads_the_device_and_names_devices_when_cuda_is_missing(monkeypatch):
    assert jt.flags.use_cuda == int(jt.get_device() == "cuda")
    cuda_usable = any(info.name == "cuda" and info.available for info in jt.devices())
    if not cuda_usable:
        with pytest.raises(jt.MetajitDeviceError, match=r"use_cuda = 1: .*jt.devices\(\)"):
            jt.flags.use_cuda = 1
    selected = []
    monkeypatch.setattr(plugins, "get_device", lambda: "cuda")  # pretend cuda is current
    monkeypatch.setattr(plugins, "set_device", selected.append)
    assert jt.flags.use_cuda == 1
    jt.flags.use_cuda = 0
    assert selected == ["cpu" if any(i.name == "cpu" and i.available for i in jt.devices()) else "reference"]


def test_use_cuda_zero_leaves_other_devices_alone(device):
    jt.flags.use_cuda = 0
    assert jt.get_device() == ("cpu" if device == "cuda" else device)  # as Jittor: 0 on cuda selects the cpu


def test_auto_convert_64_to_32():
    assert jt.array(np.zeros(2)).dtype == "float64"  # metajit's default keeps float64
    with jt.flag_scope(auto_convert_64_to_32=1):
        assert jt.array(np.zeros(2)).dtype == "float32"
        assert jt.array(np.zeros(2, np.int64)).dtype == "int32"
        assert jt.array(np.zeros(2, np.int16)).dtype == "int16"
        assert jt.array(np.zeros(2), dtype="float64").dtype == "float64"
    assert jt.flags.auto_convert_64_to_32 == 0


def test_recorded_flags(capsys):
    from metajit.toolkit import batch_compile
    with jt.flag_scope(log_silent=1, amp_reg=1, use_tensorcore=1):
        assert (jt.flags.log_silent, jt.flags.amp_reg, jt.flags.use_tensorcore) == (1, 1, 1)
        batch_compile._print_unless_silent("compiling")
    assert capsys.readouterr().err == ""
    batch_compile._print_unless_silent("compiling")
    assert capsys.readouterr().err == "compiling\n"
    assert "use_tensorcore=0" in repr(jt.flags)


def test_grad_modes_follow_torchs():
    """set_grad_enabled (at once, and restored by a with block), inference_mode, a bare
    @no_grad decorator and is_grad_enabled, against torch's own modes."""
    torch = pytest.importorskip("torch")
    seen = {}
    for module in (jt, torch):
        @module.no_grad
        def bare():
            return module.is_grad_enabled()

        @module.inference_mode()
        def inference():
            return module.is_grad_enabled()
        states = [bare(), inference(), module.is_grad_enabled()]
        with module.set_grad_enabled(False):
            states.append(module.is_grad_enabled())
            with module.inference_mode(False):
                states.append(module.is_grad_enabled())
        states.append(module.is_grad_enabled())
        module.set_grad_enabled(False)
        states.append(module.is_grad_enabled())
        module.set_grad_enabled(True)
        states.append(module.is_grad_enabled())
        seen[module.__name__] = states
    assert seen["metajit"] == seen["torch"]
    with jt.set_grad_enabled(False):
        assert not (jt.ones(2).requires_grad_() * 2).requires_grad
