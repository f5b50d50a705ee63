"""NCCL collectives on the cuda device's buffers, queued on its stream with the kernels:
the cuda backend's ``metajit_backend_collectives`` hook, which core uses under ``mpirun``
for ``jt.mpi_all_reduce`` / ``mpi_reduce`` / ``mpi_broadcast`` and the data-parallel
gradient averaging. ``libnccl.so.2`` comes from NVIDIA's ``nvidia-nccl-cu13`` (or
``-cu12``) wheel, or the file ``METAJIT_NCCL_LIBRARY`` names, through ctypes.

One communicator per process, created when the first collective runs on the device:
rank 0's unique id reaches the other ranks over MPI. NCCL refuses two ranks of one
communicator on the same GPU: give each rank its own (``METAJIT_CUDA_DEVICE`` set to the
rank's local rank). A mean is a sum that core scales; NCCL has no bool or int16 reduction.

Example::

    nccl = Nccl(nvidia_libraries.load("nccl"))
    communicator = Communicator(nccl, rank=0, size=1, unique_id=nccl.unique_id(), stream=stream)
    communicator.all_reduce(source, destination, count, "float32", "add")
"""
import ctypes

from metajit.errors import MetajitDeviceError, MetajitDtypeError, MetajitValueError

from . import nvidia_libraries, runtime

DATA_TYPES = {"int8": 0, "uint8": 1, "int32": 2, "int64": 4, "float16": 6, "float32": 7, "float64": 8}  # ncclDataType_t
REDUCTION_OPS = {"add": 0, "max": 2, "min": 3}  # ncclRedOp_t (ncclSum, ncclMax, ncclMin)
UNIQUE_ID_BYTES = 128
INVALID_USAGE = 5  # ncclInvalidUsage: among others, two ranks of one communicator on one GPU


class UniqueId(ctypes.Structure):
    """``ncclUniqueId``: the bytes rank 0 makes and every rank passes to ``ncclCommInitRank``."""

    _fields_ = [("internal", ctypes.c_char * UNIQUE_ID_BYTES)]


def data_type(dtype):
    """The ``ncclDataType_t`` of the metajit dtype named ``dtype``."""
    found = DATA_TYPES.get(str(dtype))
    if found is None:
        raise MetajitDtypeError(f"NCCL cannot reduce {dtype} values: cast them to int32 (or float32) before the "
                                f"collective; NCCL has {', '.join(DATA_TYPES)}")
    return found


def reduction_op(op):
    """The ``ncclRedOp_t`` of ``op`` ("add", "max", "min")."""
    found = REDUCTION_OPS.get(op)
    if found is None:
        raise MetajitValueError(f"NCCL reduction op must be one of {tuple(REDUCTION_OPS)}, got {op!r}")
    return found


class Nccl:
    """The library's entry points, resolved from a ``ctypes.CDLL`` of ``libnccl.so.2``."""

    def __init__(self, library):
        pointer, size, integer = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        entry = nvidia_libraries.function
        self.get_version = entry(library, "ncclGetVersion", integer, ctypes.POINTER(integer))
        self.get_unique_id = entry(library, "ncclGetUniqueId", integer, ctypes.POINTER(UniqueId))
        self.error_string = entry(library, "ncclGetErrorString", ctypes.c_char_p, integer)
        self.last_error = entry(library, "ncclGetLastError", ctypes.c_char_p, pointer)
        self.comm_init_rank = entry(library, "ncclCommInitRank", integer, ctypes.POINTER(pointer), integer, UniqueId,
                                    integer)
        self.all_reduce = entry(library, "ncclAllReduce", integer, pointer, pointer, size, integer, integer, pointer,
                                pointer)
        self.reduce = entry(library, "ncclReduce", integer, pointer, pointer, size, integer, integer, integer, pointer,
                            pointer)
        self.broadcast = entry(library, "ncclBroadcast", integer, pointer, pointer, size, integer, integer, pointer,
                               pointer)

    def version(self):
        """NCCL's version code (``major * 10000 + minor * 100 + patch``)."""
        version = ctypes.c_int()
        self.check(self.get_version(ctypes.byref(version)), "ncclGetVersion")
        return version.value

    def unique_id(self):
        """A new unique id (rank 0 makes it, the others receive it): ``UNIQUE_ID_BYTES`` bytes."""
        made = UniqueId()
        self.check(self.get_unique_id(ctypes.byref(made)), "ncclGetUniqueId")
        return ctypes.string_at(ctypes.addressof(made), UNIQUE_ID_BYTES)  # all of it: it may hold zero bytes

    def check(self, result, what, communicator=None):
        """Raise `MetajitDeviceError` naming NCCL's reason for a failed call."""
        if result != 0:
            detail = (self.last_error(communicator) or b"").decode(errors="replace")
            reason = self.error_string(result).decode(errors="replace")
            hint = ("; every rank needs its own GPU: set METAJIT_CUDA_DEVICE to the rank's local rank"
                    if result == INVALID_USAGE else "")
            raise MetajitDeviceError(f"NCCL {what} failed: {reason}{f' ({detail})' if detail else ''}{hint}")


class Communicator:
    """An NCCL communicator of ``size`` ranks whose collectives are queued on ``stream``
    (the integer ``CUstream``); buffers are the cuda device's allocations."""

    def __init__(self, nccl, rank, size, unique_id, stream):
        self.nccl, self.stream = nccl, ctypes.c_void_p(stream)
        identity = UniqueId()
        ctypes.memmove(ctypes.addressof(identity), bytes(unique_id), UNIQUE_ID_BYTES)
        self.handle = ctypes.c_void_p()
        nccl.check(nccl.comm_init_rank(ctypes.byref(self.handle), size, identity, rank),
                   f"ncclCommInitRank(rank {rank} of {size})")

    def all_reduce(self, source, destination, count, dtype, op):
        """``op`` ("add", "max", "min") of ``count`` elements over every rank, on every rank."""
        self.nccl.check(self.nccl.all_reduce(source.address, destination.address, count, data_type(dtype),
                                             reduction_op(op), self.handle, self.stream), "ncclAllReduce", self.handle)

    def reduce(self, source, destination, count, dtype, root):
        """The sum of ``count`` elements over every rank into ``destination`` on ``root``."""
        self.nccl.check(self.nccl.reduce(source.address, destination.address, count, data_type(dtype),
                                         REDUCTION_OPS["add"], root, self.handle, self.stream), "ncclReduce",
                        self.handle)

    def broadcast(self, source, destination, count, dtype, root):
        """``root``'s ``count`` elements into ``destination`` on every rank."""
        self.nccl.check(self.nccl.broadcast(source.address, destination.address, count, data_type(dtype), root,
                                            self.handle, self.stream), "ncclBroadcast", self.handle)


def communicator(rank, size, broadcast):
    """The process's `Communicator` on the current cuda device's stream: every rank loads
    the library (a missing one raises `MetajitDeviceError` naming the wheel), rank 0's
    unique id reaches the others through ``broadcast``."""
    nccl = Nccl(nvidia_libraries.load("nccl"))
    unique_id = broadcast(nccl.unique_id() if rank == 0 else None)
    device = runtime.device()
    device.make_current()
    return Communicator(nccl, rank, size, unique_id, int(device.stream))
