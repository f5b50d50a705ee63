"""The runtime of ``template_accel``: **vendor swap point** (the ``cnrt``-equivalent).

Every device interaction of the backend is one method here: `Driver.malloc` / `free`
(GDRAM), `Driver.copy` (host to device, device to host, device to device) and
`Program.__call__` (launch ``taskDim`` tasks through the kernel's host stub). The
emulated driver (``emulation/driver.cpp``) runs a launch before returning, so
synchronisation has nothing to wait for; a vendor's queue-based driver returns at once
and reports a fault at its queue sync. A fault raises `MetajitDeviceError` naming the
kernel and the rule it broke; the device stays usable.
"""
import ctypes
import os

from metajit.errors import MetajitDeviceError
from metajit.toolkit.codegen import HostArguments

from .library import declare
from .renderer import TASK_DIM

HOST_TO_DEVICE, DEVICE_TO_HOST, DEVICE_TO_DEVICE = 0, 1, 2


def task_dim():
    """Tasks per launch: ``METAJIT_ACCEL_TASKS`` or the target's `TASK_DIM`."""
    return max(1, int(os.environ.get("METAJIT_ACCEL_TASKS", TASK_DIM)))


class Driver:
    """The emulated device driver, loaded from ``library_path`` (kernels link against it)."""

    def __init__(self, library_path):
        library = ctypes.CDLL(library_path, mode=ctypes.RTLD_GLOBAL)
        self.library = library
        library.mj_emu_malloc.restype, library.mj_emu_malloc.argtypes = ctypes.c_void_p, (ctypes.c_longlong,)
        library.mj_emu_free.restype, library.mj_emu_free.argtypes = ctypes.c_char_p, (ctypes.c_void_p,)
        library.mj_emu_memcpy.restype = ctypes.c_char_p
        library.mj_emu_memcpy.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int)
        library.mj_emu_bytes_in_use.restype = ctypes.c_longlong
        declare(library)

    def malloc(self, nbytes):
        """A new GDRAM allocation of ``nbytes`` (its device address)."""
        address = self.library.mj_emu_malloc(nbytes)
        if not address:
            raise MemoryError(f"accelerator: out of device memory allocating {nbytes} bytes")
        return address

    def free(self, address):
        """Return an allocation; never raises (finalisers call it)."""
        self.library.mj_emu_free(address)

    def copy(self, destination, source, nbytes, direction):
        """Copy ``nbytes`` (``direction``: `HOST_TO_DEVICE`, `DEVICE_TO_HOST`, `DEVICE_TO_DEVICE`)."""
        self.check(self.library.mj_emu_memcpy(destination, source, nbytes, direction), "copy")

    @staticmethod
    def check(error, what):
        """Raise `MetajitDeviceError` for a driver call's error message (None: success)."""
        if error:
            raise MetajitDeviceError(f"accelerator {what}: {error.decode()}")

    def bytes_in_use(self):
        """GDRAM bytes allocated and not freed."""
        return self.library.mj_emu_bytes_in_use()


class Program:
    """A compiled kernel: its host stub, called with buffer addresses and 8-byte parameter slots."""

    def __init__(self, stub, source):
        self.stub = stub
        self.source = source
        self.arguments = HostArguments(source.kernel)

    def __call__(self, inputs, outputs, parameters):
        error = self.stub(*self.arguments.pack(inputs, outputs, parameters), task_dim())
        if error:
            raise MetajitDeviceError(f"accelerator kernel faulted: {error.decode()}\n"
                                     f"kernel: {self.source.kernel}\nsource: {self.source.entry_name}")
