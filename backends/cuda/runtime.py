"""The CUDA device through the driver API (``cuda.bindings.driver``): the primary context of
device ``METAJIT_CUDA_DEVICE`` (default 0), one stream every launch and copy is queued on,
modules loaded from cubins, and device memory in the toolkit's caching allocator.

* Memory: `CachingAllocator` over ``cuMemAlloc``/``cuMemFree``, lowest address first (a
  repeated plan gets the same buffers, so `graphs` can replay it). Reuse is stream-ordered:
  every kernel and copy runs on the one stream, so a buffer freed after its last reader
  was queued is only handed to work queued later. Out of memory: the cache is emptied and
  the allocation retried once, then `MetajitMemoryError` names the size and what is held.
* Copies: host to device goes through pinned staging buffers and is asynchronous (the
  numpy array may change right after); device to host waits for the stream (a sync
  point). Device to device is queued on the stream.
* Errors: a failed call raises `MetajitDeviceError` naming the call and the driver's
  error; a kernel fault surfaces at the next sync, naming the last kernel launched.
"""
import ctypes
import functools
import os
import threading

from metajit.errors import MetajitDeviceError, MetajitMemoryError
from metajit.toolkit.allocator import CachingAllocator


@functools.lru_cache(maxsize=None)
def driver():
    """``cuda.bindings.driver`` (imported on first use)."""
    from cuda.bindings import driver as module
    return module


def check(result, what):
    """Raise `MetajitDeviceError` unless ``result`` is ``CUDA_SUCCESS``."""
    if result != driver().CUresult.CUDA_SUCCESS:
        name = getattr(result, "name", str(result))
        raise MetajitDeviceError(f"CUDA {what} failed: {name}")


def missing_device_reason():
    """None when a CUDA device can be used here, else why not (a one-line reason)."""
    try:
        module = driver()
    except ImportError:
        return "cuda-bindings is not installed: pip install 'metajit[cuda]'"
    try:
        (result,) = module.cuInit(0)
    except Exception:  # the library loader found no libcuda.so.1 on this machine
        return "no NVIDIA driver (libcuda.so.1 not found)"
    if result != module.CUresult.CUDA_SUCCESS:
        return f"no usable NVIDIA driver (cuInit: {result.name})"
    result, count = module.cuDeviceGetCount()
    if result != module.CUresult.CUDA_SUCCESS or count == 0:
        return "no NVIDIA GPU found"
    return None


class DeviceAllocation:
    """A device buffer: its ``address`` (the ``CUdeviceptr`` as an int) and ``capacity``."""

    __slots__ = ("address", "capacity", "__weakref__")

    def __init__(self, address, capacity):
        self.address = address
        self.capacity = capacity


class Device:
    """One GPU: context, stream, modules, memory (see the module docstring)."""

    def __init__(self, ordinal=None):
        module = driver()
        check(module.cuInit(0)[0], "cuInit")
        self.ordinal = int(os.environ.get("METAJIT_CUDA_DEVICE", "0")) if ordinal is None else ordinal
        result, self.device = module.cuDeviceGet(self.ordinal)
        check(result, f"cuDeviceGet({self.ordinal})")
        result, self.context = module.cuDevicePrimaryCtxRetain(self.device)
        check(result, "cuDevicePrimaryCtxRetain")
        self.make_current()
        result, self.stream = module.cuStreamCreate(module.CUstream_flags.CU_STREAM_NON_BLOCKING)
        check(result, "cuStreamCreate")
        self.stream_handle = int(self.stream)
        self.architecture = "sm_{}{}".format(*(self.attribute(name) for name in (
            "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR", "CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR")))
        self.multiprocessors = self.attribute("CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT")
        result, name = module.cuDeviceGetName(256, self.device)
        check(result, "cuDeviceGetName")
        self.name = name.split(b"\0", 1)[0].decode(errors="replace")
        result, total = module.cuDeviceTotalMem(self.device)
        check(result, "cuDeviceTotalMem")
        # a raw free synchronises the whole device: keep up to a quarter of its memory
        # cached (our own out-of-memory empties it and retries; libraries' memory and other
        # frameworks in the process still find the rest)
        self.allocator = CachingAllocator(self._raw_allocate, self._raw_free,
                                          int(os.environ.get("METAJIT_CUDA_CACHE_BYTES", int(total) // 4)),
                                          lowest_address_first=True)  # repeated plans keep their addresses
        self.staging = PinnedStaging(self)
        self.modules = {}
        self.last_kernel = None

    def attribute(self, name):
        """An integer device attribute (``CU_DEVICE_ATTRIBUTE_...``)."""
        module = driver()
        result, value = module.cuDeviceGetAttribute(getattr(module.CUdevice_attribute, name), self.device)
        check(result, f"cuDeviceGetAttribute({name})")
        return value

    def make_current(self):
        """Make this device's context current in the calling thread."""
        check(driver().cuCtxSetCurrent(self.context)[0], "cuCtxSetCurrent")

    # ---- memory ----------------------------------------------------------------------
    def _raw_allocate(self, capacity):
        module = driver()
        result, pointer = module.cuMemAlloc(max(capacity, 1))
        if result == module.CUresult.CUDA_ERROR_OUT_OF_MEMORY:
            raise MemoryError(capacity)
        check(result, f"cuMemAlloc({capacity})")
        return DeviceAllocation(int(pointer), capacity)

    def _raw_free(self, allocation):
        driver().cuMemFree(allocation.address)

    def allocate(self, nbytes):
        """A device buffer of at least ``nbytes`` bytes (cached; see the module docstring)."""
        try:
            return self.allocator.allocate(nbytes)
        except MemoryError:
            raise MetajitMemoryError(
                f"CUDA device {self.ordinal} is out of memory allocating {nbytes} bytes: "
                f"{self.allocator.allocated_bytes} bytes are held by live values (the cache was emptied); "
                "free Vars you no longer need, use smaller batches, or jt.gc()") from None

    def free(self, allocation):
        """Return ``allocation`` to the cache (stream-ordered reuse)."""
        self.allocator.release(allocation)

    def memory_info(self):
        """Bytes allocated, cached and at peak, and the device's free and total memory."""
        result, free, total = driver().cuMemGetInfo()
        check(result, "cuMemGetInfo")
        return {"allocated_bytes": self.allocator.allocated_bytes, "cached_bytes": self.allocator.cached_bytes,
                "peak_bytes": self.allocator.peak_bytes, "device_free_bytes": int(free),
                "device_total_bytes": int(total)}

    # ---- copies ----------------------------------------------------------------------
    def copy_from_host(self, allocation, array):
        """Queue a copy of ``array`` (C-contiguous) to the device (staged: returns at once)."""
        if array.nbytes:
            staged = self.staging.stage(array)
            check(driver().cuMemcpyHtoDAsync(allocation.address, staged, array.nbytes, self.stream)[0],
                  "cuMemcpyHtoDAsync")
            self.staging.queued()

    def copy_to_host(self, allocation, array):
        """Copy ``array.nbytes`` bytes of ``allocation`` into ``array`` once queued work is done."""
        if array.nbytes:
            check(driver().cuMemcpyDtoHAsync(array.ctypes.data, allocation.address, array.nbytes, self.stream)[0],
                  "cuMemcpyDtoHAsync")
        self.synchronize()

    def copy_device_to_device(self, destination, source, nbytes):
        """Queue a device-to-device copy."""
        if nbytes:
            check(driver().cuMemcpyDtoDAsync(destination.address, source.address, nbytes, self.stream)[0],
                  "cuMemcpyDtoDAsync")

    # ---- modules and launches ----------------------------------------------------------
    def functions(self, image, names):
        """The ``CUfunction`` of each of ``names`` in cubin ``image`` (loaded once per image)."""
        module = driver()
        loaded = self.modules.get(image)
        if loaded is None:
            result, loaded = module.cuModuleLoadData(image)
            check(result, "cuModuleLoadData")
            self.modules[image] = loaded
        functions = []
        for name in names:
            result, function = module.cuModuleGetFunction(loaded, name.encode())
            check(result, f"cuModuleGetFunction({name})")
            functions.append(function)
        return functions

    def launch(self, function, blocks, threads, arguments, values, name):
        """Queue ``function`` (a ``CUfunction`` as an int) on ``blocks`` x ``threads`` with
        ``values`` in the `KernelArguments` block ``arguments``."""
        self.last_kernel = name
        with arguments.lock:
            for slot, convert, value in zip(arguments.slots, arguments.converters, values, strict=True):
                slot.value = convert(value)
            result = cu_launch_kernel()(function, blocks, 1, 1, threads, 1, 1, 0, self.stream_handle,
                                         arguments.pointers, None)
        if result:
            known = result in {code.value for code in driver().CUresult}
            check(driver().CUresult(result) if known else result, f"cuLaunchKernel({name})")

    # ---- CUDA graphs --------------------------------------------------------------------
    def record(self, queue_work):
        """A launchable graph (``CUgraphExec``) of the work ``queue_work()`` queues on the
        stream, recorded instead of run (relaxed capture mode: library calls may query or
        allocate while recording). If ``queue_work`` raises, capture ends and it re-raises."""
        module = driver()
        check(module.cuStreamBeginCapture(self.stream, module.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_RELAXED)[0],
              "cuStreamBeginCapture")
        try:
            queue_work()
        except BaseException:
            result, graph = module.cuStreamEndCapture(self.stream)  # leave capture mode; the graph is void
            if result == module.CUresult.CUDA_SUCCESS:
                module.cuGraphDestroy(graph)
            raise
        result, graph = module.cuStreamEndCapture(self.stream)
        check(result, "cuStreamEndCapture")
        try:
            result, executable = module.cuGraphInstantiate(graph, 0)
            check(result, "cuGraphInstantiate")
        finally:
            module.cuGraphDestroy(graph)
        return executable

    def launch_graph(self, executable, name):
        """Queue a whole recorded graph with one launch."""
        self.last_kernel = name
        check(driver().cuGraphLaunch(executable, self.stream)[0], f"cuGraphLaunch({name})")

    def destroy_graph(self, executable):
        """Release a graph once queued work no longer needs it."""
        driver().cuGraphExecDestroy(executable)

    def synchronize(self):
        """Wait for every queued kernel and copy; a fault names the last kernel launched."""
        (result,) = driver().cuStreamSynchronize(self.stream)
        if result != driver().CUresult.CUDA_SUCCESS:
            raise MetajitDeviceError(f"CUDA error {result.name} at a sync point; the last kernel launched was "
                                     f"{self.last_kernel} (set CUDA_LAUNCH_BLOCKING=1 to find the failing one)")
        self.staging.recycle()


class PinnedStaging:
    """Page-locked host buffers that uploads copy through, reused once the stream has
    passed the copies that read them (an event per batch of copies)."""

    def __init__(self, device):
        self.device = device
        self.free = []      # (capacity, pointer)
        self.in_flight = []  # (event, [(capacity, pointer)])
        self.pending = []

    def stage(self, array):
        """The address of a pinned copy of ``array``."""
        self.recycle(wait=False)
        capacity = max(1 << max(array.nbytes - 1, 0).bit_length(), 4096)
        for position, (size, pointer) in enumerate(self.free):
            if size >= array.nbytes:
                del self.free[position]
                break
        else:
            result, pointer = driver().cuMemAllocHost(capacity)
            check(result, f"cuMemAllocHost({capacity})")
            size = capacity
        ctypes.memmove(int(pointer), array.ctypes.data, array.nbytes)
        self.pending.append((size, pointer))
        return int(pointer)

    def queued(self):
        """Mark the staged buffers used by the copies just queued."""
        module = driver()
        result, event = module.cuEventCreate(module.CUevent_flags.CU_EVENT_DISABLE_TIMING)
        check(result, "cuEventCreate")
        check(module.cuEventRecord(event, self.device.stream)[0], "cuEventRecord")
        self.in_flight.append((event, self.pending))
        self.pending = []

    def recycle(self, wait=True):
        """Return the buffers whose copies have finished to the free list."""
        module = driver()
        still = []
        for event, buffers in self.in_flight:
            if wait or module.cuEventQuery(event)[0] == module.CUresult.CUDA_SUCCESS:
                module.cuEventDestroy(event)
                self.free.extend(buffers)
            else:
                still.append((event, buffers))
        self.in_flight = still


@functools.lru_cache(maxsize=None)
def device():
    """The process's `Device` (created on first use)."""
    return Device()


@functools.lru_cache(maxsize=None)
def cu_launch_kernel():
    """The driver's ``cuLaunchKernel`` through ctypes (libcuda is loaded with the context): a
    launch is one C call, where cuda-bindings converts every argument in Python first;
    `jt.code`'s CUDA launcher calls it through its address."""
    function = ctypes.CDLL("libcuda.so.1").cuLaunchKernel
    function.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 7 + [ctypes.c_void_p] * 3
    function.restype = ctypes.c_int
    return function


class KernelArguments:
    """The argument block of one kernel's launches: a ctypes slot per argument (types from
    `argument_types`) and the ``void*`` array of their addresses that ``cuLaunchKernel``
    reads. The driver copies the values when a launch is queued (or recorded into a graph),
    so one block serves every launch; ``lock`` keeps threads from filling it at once."""

    def __init__(self, types):
        self.slots = [kind() for kind in types]
        # numpy scalars (a bool among them) become the Python number their slot takes
        self.converters = [float if kind in (ctypes.c_double, ctypes.c_float) else int for kind in types]
        self.pointers = (ctypes.c_void_p * max(len(self.slots), 1))(*(ctypes.addressof(s) for s in self.slots))
        self.lock = threading.Lock()


def argument_types(kernel):
    """The ctypes type of each kernel argument: buffer addresses, then parameters."""
    from metajit.ir import dtypes
    return ((ctypes.c_void_p,) * (len(kernel.inputs) + len(kernel.outputs))
            + tuple(ctypes.c_double if dtypes.is_float(d) else ctypes.c_longlong for d in kernel.parameters))

