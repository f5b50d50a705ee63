"""The emulation layer enforces the target's rules: hand-written BANG-style kernels that
break one fail with a clear message instead of running, and the device stays usable."""
import struct

import numpy as np
import pytest

from metajit.backends import template_accel
from metajit.backends.template_accel import runtime
from metajit.errors import MetajitDeviceError
from metajit.ir import dtypes, indexexpr
from metajit.ir import kernel as K
from metajit.plugins import KernelSource
from metajit.toolkit import codegen

KERNEL = """
__mlu_entry__ void NAME_mlu(const float* in0, float* out0) {
  __nram__ float tile[64];
  BODY
}
extern "C" const char* NAME(void* const* inputs, void* const* outputs, const void* parameters, long long task_dim) {
  const void* const buffers[] = {inputs[0], outputs[0]};
  const long long sizes[] = {256, 256};
  MJ_LAUNCH(NAME_mlu, task_dim, buffers, sizes, 2, (const float*)inputs[0], (float*)outputs[0]);
}
"""
COPY_IN = "__memcpy(tile, in0, 256, GDRAM2NRAM);"
COPY_OUT = "__memcpy(out0, tile, 256, NRAM2GDRAM);"


def compile_kernel(body):
    toolchain = template_accel.plugin.device()["toolchain"]
    template = KERNEL.replace("BODY", body).replace("NAME", codegen.NAME_PLACEHOLDER)
    text, symbol = codegen.name_source(template, toolchain.cache_key, toolchain.symbol_prefix)
    (stub,) = toolchain.load([(symbol, text)])
    return stub


def launch(body, tasks=4):
    """Run the kernel with ``body`` on 0..63: ``(fault message or None, output)``."""
    stub = compile_kernel(body)
    driver = template_accel.plugin.device()["driver"]
    source, target = driver.malloc(256), driver.malloc(256)
    try:
        data, out = np.arange(64, dtype=np.float32), np.full(64, -1, np.float32)
        driver.copy(source, data.ctypes.data, 256, runtime.HOST_TO_DEVICE)
        driver.copy(target, out.ctypes.data, 256, runtime.HOST_TO_DEVICE)
        error = stub(struct.pack("P", source), struct.pack("P", target), struct.pack("q", 0), tasks)
        driver.copy(out.ctypes.data, target, 256, runtime.DEVICE_TO_HOST)
        return (error.decode() if error else None), out
    finally:
        driver.free(source)
        driver.free(target)


def test_a_kernel_that_follows_the_rules_runs():
    error, out = launch(f"if (taskId != 0) return; {COPY_IN} __bang_mul_scalar(tile, tile, 2.0f, 64); {COPY_OUT}")
    assert error is None
    np.testing.assert_array_equal(out, 2 * np.arange(64))


@pytest.mark.parametrize("body,message", [
    ("__bang_mul_scalar(out0, in0, 2.0f, 64);", r"__bang_mul_scalar: 256 bytes at 0x[0-9a-f]+ are not in NRAM"),
    ("__memcpy(tile, in0 + 1, 256, GDRAM2NRAM);", r"__memcpy: 256 bytes .* outside every GDRAM buffer .* out-of-bounds DMA"),
    ("__memcpy(out0 + 60, tile, 32, NRAM2GDRAM);", r"out-of-bounds DMA"),
    ("__memcpy(tile + 32, in0, 256, GDRAM2NRAM);", r"__memcpy: 256 bytes .* not in NRAM"),
    ("__nram__ char big[600000]; big[0] = 1;", r"__nram__ big: 600000 bytes .* exceed the 524288-byte NRAM"),
    (f"{COPY_IN} __bang_add(tile + 1, tile + 1, tile + 1, 8);", r"__bang_add: NRAM operand .* not 64-byte aligned"),
])
def test_broken_rules_abort_the_launch_with_the_rule_named(body, message):
    error, _ = launch(body)
    assert error is not None
    assert error.startswith("mj_template_accel_") and "_mlu: task " in error
    assert pytest.importorskip("re").search(message, error), error


def test_an_async_copy_lands_only_at_sync_io():
    body = ("if (taskId != 0) return; __bang_write_value(tile, 64, 7.0f); "
            "__memcpy_async(tile, in0, 256, GDRAM2NRAM); " + COPY_OUT + " __sync_io();")
    error, out = launch(body)
    assert error is None
    np.testing.assert_array_equal(out, 7)  # read before __sync_io(): the stale tile


def test_a_faulting_task_does_not_leave_the_others_waiting_at_sync_all():
    error, _ = launch("if (taskId == 1) __bang_add(out0, in0, in0, 4); __sync_all();")
    assert "task 1: __bang_add" in error


def test_the_device_works_after_faults_and_bad_copies():
    launch("__bang_add(out0, in0, in0, 4);")
    driver = template_accel.plugin.device()["driver"]
    buffer = driver.malloc(16)
    host = np.zeros(8, np.float32)
    with pytest.raises(MetajitDeviceError, match="copy from host: 32 bytes .* not inside one live device allocation"):
        driver.copy(buffer, host.ctypes.data, 32, runtime.HOST_TO_DEVICE)
    driver.free(buffer)
    error, out = launch(f"if (taskId != 0) return; {COPY_IN} __bang_add(tile, tile, tile, 64); {COPY_OUT}", tasks=2)
    assert error is None
    np.testing.assert_array_equal(out, 2 * np.arange(64))


def test_a_fault_raises_a_device_error_naming_the_kernel():
    domain = indexexpr.loop(0)
    kernel = K.Kernel((64,), [(dtypes.float32, (64,))], [(dtypes.float32, (64,))],
                      [K.Store(0, [domain], K.load(0, [domain], dtypes.float32))])
    program = runtime.Program(compile_kernel("__memcpy(tile, in0, 512, GDRAM2NRAM);"),
                              KernelSource(kernel, "bang-c", "", "mj_accel_broken"))
    device = template_accel.plugin.device()
    source, target = device["driver"].malloc(256), device["driver"].malloc(256)
    with pytest.raises(MetajitDeviceError, match=r"(?s)accelerator kernel faulted: .*out-of-bounds DMA"
                                                 r".*kernel domain=\(64,\)"):
        program([source], [target], [])
    device["driver"].free(source)
    device["driver"].free(target)
