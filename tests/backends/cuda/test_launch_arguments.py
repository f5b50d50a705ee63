"""The cuda device's kernel launches through ctypes (`runtime.Device.launch`): the argument
block holds each value at its C type, and the driver call gets the grid, block, stream and
the block's address; checked here against a stand-in for ``cuLaunchKernel``."""
import ctypes
import threading
import types

import numpy as np
import pytest

from metajit.backends.cuda import runtime

LAUNCH_TYPE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, *([ctypes.c_uint] * 7), *([ctypes.c_void_p] * 3))


@pytest.fixture
def launched(monkeypatch):
    """The launches the stand-in saw: (function, grid, block, shared, stream, arguments)."""
    seen, kinds = [], {}

    def stand_in(function, gx, gy, gz, bx, by, bz, shared, stream, parameters, extra):
        pointers = ctypes.cast(parameters, ctypes.POINTER(ctypes.c_void_p))
        values = tuple(ctypes.cast(pointers[i], ctypes.POINTER(kind)).contents.value
                       for i, kind in enumerate(kinds["types"]))
        seen.append((function, (gx, gy, gz), (bx, by, bz), shared, stream, values, extra))
        return 0 if function != 13 else 1  # 1: CUDA_ERROR_INVALID_VALUE
    callback = LAUNCH_TYPE(stand_in)
    monkeypatch.setattr(runtime, "cu_launch_kernel", lambda: callback)
    yield seen, kinds


def _device():
    return types.SimpleNamespace(stream_handle=0x5000, last_kernel=None, launch=runtime.Device.launch)


def test_values_reach_the_driver_at_their_c_types(launched):
    seen, kinds = launched
    kinds["types"] = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_double, ctypes.c_longlong, ctypes.c_longlong)
    arguments = runtime.KernelArguments(kinds["types"])
    device = _device()
    device.launch(device, 0x7000, 12, 256, arguments, [0x1000, 0x2000, np.float32(0.5), np.int64(-3), True], "k0")
    device.launch(device, 0x7001, 1, 32, arguments, [0x3000, 0x4000, np.int64(2), 7, np.bool_(False)], "k1")
    assert seen == [(0x7000, (12, 1, 1), (256, 1, 1), 0, 0x5000, (0x1000, 0x2000, 0.5, -3, 1), None),
                    (0x7001, (1, 1, 1), (32, 1, 1), 0, 0x5000, (0x3000, 0x4000, 2.0, 7, 0), None)]
    assert device.last_kernel == "k1"


def test_a_failed_launch_names_the_kernel_and_the_driver_error(launched):
    pytest.importorskip("cuda.bindings")
    seen, kinds = launched
    kinds["types"] = ()
    device = _device()
    with pytest.raises(runtime.MetajitDeviceError, match=r"cuLaunchKernel\(mj_bad\) failed: CUDA_ERROR_INVALID_VALUE"):
        device.launch(device, 13, 1, 32, runtime.KernelArguments(()), [], "mj_bad")


def test_threads_filling_one_block_do_not_mix_their_values(launched):
    seen, kinds = launched
    kinds["types"] = (ctypes.c_longlong, ctypes.c_longlong)
    arguments, device = runtime.KernelArguments(kinds["types"]), _device()

    def work(index):
        for _ in range(200):
            device.launch(device, 0x7000, 1, 32, arguments, [index, index], "k")
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 800 and all(values[0] == values[1] for *_, values, _ in seen)
