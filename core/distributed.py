"""MPI, as in Jittor: a script launched with ``mpirun -np N python train.py`` runs
data-parallel with no code change. ``jt.in_mpi``, ``jt.rank``, ``jt.world_size`` and
``jt.mpi`` (None outside MPI) say where it runs; ``mpi_all_reduce``, ``mpi_reduce`` and
``mpi_broadcast`` (functions and Var methods) are graph operators with gradients.

MPI comes from mpi4py (OpenMPI or any MPI it is built for; ``mpirun -H`` spans machines);
it is imported only when the process was launched by an MPI launcher. Collectives are
opaque graph nodes (`metajit.passes.custom_ops`) whose runners start as soon as their
input is computed, while the realisation goes on launching the kernels that do not need
their result (the gradient buckets' all-reduces overlap the rest of the backward pass).
On a device with a collective library (NCCL on cuda, the backends' optional
``metajit_backend_collectives`` hook) they run on its buffers, queued with its kernels;
elsewhere the input is copied to the host and reduced through MPI on a communication
thread (``METAJIT_MPI_OVERLAP=0``: on the main thread when the result is needed), and
the result moves to the current device. A mean is a sum scaled in the graph.

Every collective first agrees with the other ranks on what it is (a sequence number and
its kind, op, shape and dtype): a rank that skips or adds one gets a `MetajitValueError`
naming both sides instead of a hang, and a collective that does not complete within
``METAJIT_MPI_TIMEOUT`` seconds (default 300) raises `MetajitDeviceError`. An uncaught
exception on one rank aborts the whole job (``MPI_Abort``) after printing it with its
rank, so the others stop at once instead of waiting.
"""
import concurrent.futures
import os
import sys
import time
import weakref
import zlib

import numpy as np

from . import plugins
from .errors import MetajitDeviceError, MetajitValueError
from .ir import dtypes, graph
from .math_ops import cast
from .passes import custom_ops, executor, graphwalk
from .var import Var

_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")
ALL_REDUCE_OPS = ("add", "mean", "max", "min")
REDUCE_OPS = ("add", "mean")


def launched_by_mpi():
    """Whether an MPI launcher (``mpirun``/``mpiexec``/``srun``) started this process."""
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


class CheckedCollectives:
    """Checked, time-limited collectives on host arrays over one MPI communicator, from one
    thread at a time: each first agrees with the other ranks on what it is, then polls its
    non-blocking request against ``METAJIT_MPI_TIMEOUT``."""

    def __init__(self, MPI, comm):
        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.sequence = 0
        self.timeout = float(os.environ.get("METAJIT_MPI_TIMEOUT", "300"))
        self.collective_seconds = 0.0  # wall time spent waiting in collectives (benchmarks, logging)

    def barrier(self):
        """Wait until every rank gets here (time-limited like the collectives)."""
        self._wait(self.comm.Ibarrier(), "barrier")

    def _wait(self, request, what):
        started, pause = time.monotonic(), 0.0
        try:
            self._poll(request, what, started, pause)
        finally:
            self.collective_seconds += time.monotonic() - started

    def _poll(self, request, what, started, pause):
        while not request.Test():
            if time.monotonic() - started > self.timeout:
                raise self.timeout_error(what)
            time.sleep(pause)
            pause = min(pause * 2 or 1e-5, 1e-3)

    def timeout_error(self, what):
        """The error for a collective that did not complete within the time limit."""
        return MetajitDeviceError(
            f"MPI {what} on rank {self.rank} did not complete within {self.timeout:g} s: another rank "
            "stopped (an error, a crash) or never reached it (set METAJIT_MPI_TIMEOUT to wait longer)")

    def agree(self, description):
        """Check that every rank runs this collective next; raises on a mismatch."""
        self.sequence += 1
        mine = np.array([self.sequence, zlib.crc32(description.encode())], dtype=np.int64)
        everyone = np.empty((self.size, 2), dtype=np.int64)
        self._wait(self.comm.Iallgather(mine, everyone), f"collective #{self.sequence} ({description})")
        descriptions = None
        for other, (sequence, signature) in enumerate(everyone):
            if sequence != mine[0] or signature != mine[1]:
                descriptions = descriptions or self.comm.allgather(description)
                raise MetajitValueError(
                    f"MPI collective #{self.sequence}: rank {self.rank} runs {description} but rank {other} runs "
                    f"#{sequence} {descriptions[other]}; every rank must run the same collectives in the same "
                    "order (a rank skipped or added one, or the ranks' graphs differ)")

    def all_reduce(self, array, op):
        """``op`` (add/mean/max/min) of ``array`` over every rank, on every rank."""
        self.agree(f"all_reduce({op}, {array.shape}, {array.dtype})")
        result = np.empty_like(array)
        mpi_op = {"add": self.MPI.SUM, "mean": self.MPI.SUM, "max": self.MPI.MAX, "min": self.MPI.MIN}[op]
        self._wait(self.comm.Iallreduce(array, result, mpi_op), f"all_reduce of {array.shape}")
        return result / self.size if op == "mean" else result

    def reduce(self, array, op, root):
        """``op`` (add/mean) of ``array`` over every rank on ``root``; zeros elsewhere."""
        self.agree(f"reduce({op}, root {root}, {array.shape}, {array.dtype})")
        result = np.zeros_like(array)
        self._wait(self.comm.Ireduce(array, result, self.MPI.SUM, root), f"reduce of {array.shape}")
        return result / self.size if op == "mean" and self.rank == root else result

    def broadcast(self, array, root):
        """``root``'s ``array`` on every rank."""
        self.agree(f"broadcast(root {root}, {array.shape}, {array.dtype})")
        result = np.array(array, copy=True)
        self._wait(self.comm.Ibcast(result, root), f"broadcast of {array.shape}")
        return result

    def broadcast_object(self, value, root=0):
        """``root``'s picklable ``value`` on every rank (seeds, small settings)."""
        self.agree("broadcast_object")
        return self.comm.bcast(value, root)

    def gather_objects(self, value):
        """Every rank's picklable ``value``, in rank order, on every rank."""
        self.agree("gather_objects")
        return self.comm.allgather(value)

    def run(self, kind, array, op, root):
        """The collective ``kind`` ("all_reduce", "reduce" or "broadcast") of ``array``."""
        if kind == "all_reduce":
            return self.all_reduce(array, op)
        if kind == "reduce":
            return self.reduce(array, op, root)
        return self.broadcast(array, root)


class CommunicationThread:
    """Runs collectives on its own duplicate of the world communicator in one thread, in
    the order they were submitted (the same on every rank), so that they progress while
    the main thread launches kernels. Needs MPI's ``THREAD_MULTIPLE``."""

    def __init__(self, collectives):
        self.collectives = collectives
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="metajit-mpi")
        self.busy_seconds = 0.0  # wall time the thread spent in collectives

    def submit(self, kind, array, op, root):
        """Queue the collective; returns a `concurrent.futures.Future` of its result."""
        return self.pool.submit(self._run, kind, array, op, root)

    def _run(self, kind, array, op, root):
        started = time.monotonic()
        try:
            return self.collectives.run(kind, array, op, root)
        finally:
            self.busy_seconds += time.monotonic() - started


class Communicator(CheckedCollectives):
    """The world communicator with Jittor's ``jt.mpi`` methods (``world_rank``,
    ``world_size``, ``local_rank``, ``barrier``), the checked, time-limited collectives on
    host arrays that the graph operators run, and `start`/`finish` for collectives that
    run on the `CommunicationThread` (``background``; None when ``METAJIT_MPI_OVERLAP=0`` or
    MPI lacks ``THREAD_MULTIPLE``) while kernels are launched."""

    def __init__(self):
        try:
            from mpi4py import MPI
        except ImportError as error:
            raise MetajitDeviceError(f"this process was started by an MPI launcher but mpi4py is missing ({error}): "
                                     "pip install 'metajit[mpi]' (mpi4py; OpenMPI from your system packages)") from None
        super().__init__(MPI, MPI.COMM_WORLD)
        self.local = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        overlap = os.environ.get("METAJIT_MPI_OVERLAP", "1") != "0" and MPI.Query_thread() == MPI.THREAD_MULTIPLE
        self.background = CommunicationThread(CheckedCollectives(MPI, self.comm.Dup())) if overlap else None

    def world_rank(self):
        """This process's rank in the world (0 .. world_size-1)."""
        return self.rank

    def world_size(self):
        """The number of processes."""
        return self.size

    def local_rank(self):
        """This process's rank among those on its machine (to choose a GPU)."""
        return self.local.Get_rank()

    def start(self, kind, array, op=None, root=0):
        """Begin the collective ``kind`` of the host ``array`` on the communication thread
        (at once), or keep it for `finish` to run here when there is none."""
        if self.background is None:
            return (kind, array, op, root)
        return self.background.submit(kind, array, op, root)

    def finish(self, started):
        """The result of a collective from `start`, waiting for it as needed."""
        if not isinstance(started, concurrent.futures.Future):
            return self.run(*started)
        waited = time.monotonic()
        try:
            return started.result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            raise self.timeout_error("collective") from None
        finally:
            self.collective_seconds += time.monotonic() - waited


def _abort_on_uncaught(communicator):
    previous = sys.excepthook

    def hook(kind, value, trace):
        sys.stderr.write(f"[metajit rank {communicator.rank} of {communicator.size}] uncaught exception, "
                         "aborting every rank:\n")
        previous(kind, value, trace)
        sys.stderr.flush()
        communicator.comm.Abort(1)
    sys.excepthook = hook


mpi = Communicator() if launched_by_mpi() else None
in_mpi = mpi is not None and mpi.size > 1
rank = mpi.rank if mpi is not None else 0
world_size = mpi.size if mpi is not None else 1
if in_mpi:
    _abort_on_uncaught(mpi)


_device_libraries = {}  # backend name -> its collective library, created once per process


def device_collectives(handle):
    """The collective library working on the buffers of ``handle``'s device (NCCL on
    cuda, through the backend's optional ``metajit_backend_collectives`` hook), created
    once per process when a collective first runs there; None where the backend has none
    (collectives then copy their values to the host and run through MPI)."""
    if handle.collectives is None or not in_mpi:
        return None
    library = _device_libraries.get(handle.name)
    if library is None:
        library = _device_libraries[handle.name] = handle.collectives(rank, world_size, mpi.broadcast_object)
    return library


class CollectiveRunner:
    """Runs one collective (an opaque node's runner, see `custom_ops`): ``start`` begins
    it as soon as the input is computed — on the device through its collective library
    (`device_collectives`), otherwise through MPI on a host copy, on the communication
    thread — and ``finish`` hands its result to the output."""

    replayable = True  # its gradient is a collective of the same structure: templates may replay it

    def __init__(self, kind, op, root):
        self.kind, self.op, self.root = kind, op, root
        self.structure = (kind, op, root)

    def start(self, input_nodes):
        """Begin reducing (or broadcasting) the input's value across ranks."""
        handle, source = plugins.current(), input_nodes[0]
        library = device_collectives(handle)
        if library is None:
            return mpi.start(self.kind, executor.to_host(source), self.op, self.root)
        executor.migrate(handle, source)
        mpi.agree(f"{self.kind}({self.op}, root {self.root}, {source.shape}, {source.dtype}) on {handle.name}")
        count = int(np.prod(source.shape))
        if self.kind == "reduce" and rank != self.root:  # the library leaves other ranks' outputs untouched
            result = executor.upload(handle, np.zeros(source.shape, source.dtype.numpy))
        else:
            result = executor.DeviceBuffer(handle, count * source.dtype.itemsize)
        if count:
            arguments = (source.buffer.raw, result.raw, count, str(source.dtype))
            if self.kind == "all_reduce":
                library.all_reduce(*arguments, self.op)
            else:
                getattr(library, self.kind)(*arguments, self.root)
        return result

    def finish(self, started, output_nodes):
        """Set the outputs to the collective's result (waiting for a host collective)."""
        if isinstance(started, executor.DeviceBuffer):
            buffer = started
        else:
            buffer = executor.upload(plugins.current(), mpi.finish(started))
        for node in output_nodes:
            if node is not None:
                node.buffer = buffer

    def gradients(self, node, k, grad_node):
        """The collectives' adjoints (the loss being the sum of every rank's loss)."""
        g = Var.from_node(grad_node)
        if self.kind == "broadcast":
            return [_collective(g, "reduce", "add", self.root)._node]
        if self.kind == "reduce":
            return [_collective(g, "broadcast", None, self.root)._node]
        if self.op == "add":
            return [_collective(g, "all_reduce", "add")._node]
        source = Var.from_node(node.inputs[0])
        chosen = cast(source == Var.from_node(node), source.dtype)
        return [(_collective(g, "all_reduce", "add") * chosen)._node]


def _collective(x, kind, op=None, root=0):
    if not isinstance(x, Var):
        x = Var(x)
    if not in_mpi:
        return x
    if not 0 <= root < world_size:
        raise MetajitValueError(f"mpi_{kind}: root {root} is not a rank (there are {world_size})")
    (node,) = custom_ops.opaque_outputs(CollectiveRunner(kind, op, root), [x._node], [(x.shape, x.dtype)],
                                        graph.derived_requires_grad)
    return Var.from_node(node)


def _mean_of_sum(total):
    """``total / world_size`` in ``total``'s dtype (an integer mean truncates, as numpy's
    cast of the float64 quotient does); ``total`` itself outside MPI."""
    if not in_mpi:
        return total
    if dtypes.is_float(total.dtype):
        return total / world_size
    return cast(cast(total, "float64") / world_size, total.dtype)


def mpi_all_reduce(x, op="add"):
    """``op`` ("add", "mean", "max", "min") of ``x`` over every rank, on every rank
    (``x`` itself outside MPI). Differentiable."""
    if op not in ALL_REDUCE_OPS:
        raise MetajitValueError(f"mpi_all_reduce: op must be one of {ALL_REDUCE_OPS}, got {op!r}")
    total = _collective(x, "all_reduce", "add" if op == "mean" else op)
    return _mean_of_sum(total) if op == "mean" else total


def mpi_reduce(x, op="add", root=0):
    """``op`` ("add", "mean") of ``x`` over every rank on rank ``root``; zeros on the
    others, as in Jittor. Differentiable (the gradient is broadcast from ``root``)."""
    if op not in REDUCE_OPS:
        raise MetajitValueError(f"mpi_reduce: op must be one of {REDUCE_OPS}, got {op!r}")
    total = _collective(x, "reduce", "add", root)
    return _mean_of_sum(total) if op == "mean" else total


def mpi_broadcast(x, root=0):
    """Rank ``root``'s ``x`` on every rank. Differentiable (the gradient is reduced to ``root``)."""
    return _collective(x, "broadcast", None, root)


BUCKET_BYTES = int(float(os.environ.get("METAJIT_MPI_BUCKET_MB", "25")) * (1 << 20))


def _buckets(variables, capacity=BUCKET_BYTES):
    """``variables`` in consecutive groups of one dtype and at most ``capacity`` bytes
    (a larger variable is a group alone)."""
    groups, current, size = [], [], 0
    for variable in variables:
        nbytes = variable.numel() * variable.dtype.itemsize
        if current and (size + nbytes > capacity or variable.dtype != current[0].dtype):
            groups.append(current)
            current, size = [], 0
        current.append(variable)
        size += nbytes
    return groups + ([current] if current else [])


def _through_one_collective(values, collective):
    """``collective`` applied to the values of one bucket at once: flattened, joined,
    reduced, and cut back into their shapes (lazy)."""
    from .shape_ops import concat
    flat = concat([v.reshape(-1) for v in values]) if len(values) > 1 else values[0].reshape(-1)
    reduced, pieces, offset = collective(flat), [], 0
    for value in values:
        count = value.numel()
        pieces.append(reduced[offset:offset + count].reshape(value.shape))
        offset += count
    return pieces


def broadcast_parameters(parameters):
    """Make every rank's ``parameters`` rank 0's (an optimiser does this when created under
    MPI, so ranks that initialised differently start equal); in size-capped buckets."""
    if not in_mpi:
        return
    for bucket in _buckets([p for p in parameters if p.numel()]):
        for parameter, value in zip(bucket, _through_one_collective(bucket, lambda flat: mpi_broadcast(flat, 0))):
            parameter.assign(value)
    executor.realise([p._node for p in parameters])


_averaged_in_backward = weakref.WeakValueDictionary()  # id -> parameter a DDP wrapper averages


def mark_averaged_in_backward(parameter):
    """Leave ``parameter``'s gradient to the backward pass's averaging
    (`metajit.nn.parallel.DistributedDataParallel`): optimisers do not average it again."""
    _averaged_in_backward[id(parameter)] = parameter


class GradientAverager:
    """Averages gradients over the ranks before an update (data parallelism), in buckets
    of `BUCKET_BYTES` taken in the order the backward pass makes the gradients ready:
    learnt from the gradient graph the first time a parameter set is seen and reused
    while it repeats (DDP's static-graph idea), so the first bucket's all-reduce needs
    only the backward of the last layers."""

    def __init__(self):
        self.orders = {}
        self.averaged = {}  # id(parameter) -> weak reference to the gradient Var already averaged

    def average(self, parameters, skip_marked=False):
        """Replace each parameter's ``.grad`` by its mean over the ranks (lazily); with
        ``skip_marked``, not those of `mark_averaged_in_backward` (an optimiser's step)."""
        if not in_mpi:  # every optimiser step asks: no work outside MPI
            return
        pending = [p for p in parameters if p.grad is not None and not self._is_averaged(p)
                   and not (skip_marked and _averaged_in_backward.get(id(p)) is p)]
        if not pending:
            return
        key = tuple(id(p) for p in pending)
        order = self.orders.get(key)
        if order is None:
            # a gradient is ready once everything it depends on is computed: the fewer
            # nodes it needs, the earlier (the last layers' first; a tie keeps their order)
            needed = [len(graphwalk.realised_order([p.grad._node])) for p in pending]
            order = self.orders[key] = sorted(range(len(pending)), key=lambda k: needed[k])
        ready = [pending[k] for k in order]
        for bucket in _buckets([p.grad for p in ready]):
            owners, ready = ready[:len(bucket)], ready[len(bucket):]
            for parameter, mean in zip(owners, _through_one_collective(bucket, lambda flat: mpi_all_reduce(flat, "mean"))):
                parameter.grad = mean
                self.averaged[id(parameter)] = weakref.ref(mean)

    def _is_averaged(self, parameter):
        reference = self.averaged.get(id(parameter))
        return reference is not None and reference() is parameter.grad


for _name, _function in (("mpi_all_reduce", mpi_all_reduce), ("mpi_reduce", mpi_reduce),
                         ("mpi_broadcast", mpi_broadcast)):
    setattr(Var, _name, _function)
    if mpi is not None:
        setattr(mpi, _name, _function)


# PyTorch's ``torch.distributed`` spellings over the same MPI world, so a DDP script runs
# under ``mpirun`` (``jt.distributed.init_process_group("nccl")`` ... ``all_reduce(t)``).

class ReduceOp:
    """``torch.distributed.ReduceOp``'s members that MPI reductions here offer."""
    SUM, AVG, MAX, MIN = "add", "mean", "max", "min"


_process_group = {"initialised": False, "backend": None}


def is_available():
    """True: collectives run over MPI when launched by ``mpirun`` (one process otherwise)."""
    return True


def _check_group(group):
    if group is not None:
        raise MetajitValueError("metajit's collectives run over the world of the MPI launch: pass group=None")


def init_process_group(backend=None, init_method=None, timeout=None, world_size=-1, rank=-1, store=None,
                       group_name="", pg_options=None, device_id=None):
    """PyTorch's ``init_process_group``: the process group is the MPI world this script was
    launched in (``mpirun -np N``; a single process otherwise), whatever ``backend``
    ("nccl", "gloo", "mpi") names: device collectives use the backend's library where it
    has one. A ``world_size`` or ``rank`` that contradicts the launch raises
    `MetajitValueError`. Example: ``jt.distributed.init_process_group("nccl")``."""
    if world_size not in (-1, None) and world_size != globals()["world_size"]:
        raise MetajitValueError(f"init_process_group(world_size={world_size}) but this job has "
                                f"{globals()['world_size']} process(es): launch it with mpirun -np {world_size}")
    if rank not in (-1, None) and rank != globals()["rank"]:
        raise MetajitValueError(f"init_process_group(rank={rank}) but this process is rank {globals()['rank']} "
                                "of the MPI launch; leave rank out")
    _process_group.update(initialised=True, backend=backend or "mpi")


def is_initialized():
    """Whether `init_process_group` was called (and not `destroy_process_group`)."""
    return _process_group["initialised"]


def destroy_process_group(group=None):
    """End the process group started by `init_process_group` (MPI itself ends with the process)."""
    _check_group(group)
    _process_group.update(initialised=False, backend=None)


def get_backend(group=None):
    """The backend named to `init_process_group`."""
    _check_group(group)
    return _process_group["backend"]


def get_rank(group=None):
    """This process's rank (0 .. world size - 1)."""
    _check_group(group)
    return rank


def get_world_size(group=None):
    """The number of processes."""
    _check_group(group)
    return world_size


def barrier(group=None, async_op=False, device_ids=None):
    """Wait until every rank gets here."""
    _check_group(group)
    if in_mpi:
        mpi.barrier()


class _Work:
    """What ``async_op=True`` collectives return: ``wait()`` computes the result (the
    collective is a graph node already running as soon as its input exists)."""

    def __init__(self, values):
        self.values = values

    def wait(self, timeout=None):
        """Compute the collective's result; returns True."""
        executor.realise([v._node for v in self.values])
        return True

    def is_completed(self):
        """Whether the result is computed."""
        return all(v._node.is_realised for v in self.values)


def _in_place(values, async_op):
    return _Work(values) if async_op else None


def all_reduce(tensor, op=ReduceOp.SUM, group=None, async_op=False):
    """PyTorch's in-place ``all_reduce``: ``tensor`` becomes ``op`` of every rank's."""
    _check_group(group)
    tensor._replace(mpi_all_reduce(tensor, op)._node)
    return _in_place([tensor], async_op)


def reduce(tensor, dst, op=ReduceOp.SUM, group=None, async_op=False):
    """PyTorch's in-place ``reduce``: rank ``dst``'s ``tensor`` becomes the reduction
    ("add" or "mean"); the others' become zeros, as `mpi_reduce` (PyTorch leaves them unspecified)."""
    _check_group(group)
    tensor._replace(mpi_reduce(tensor, op, dst)._node)
    return _in_place([tensor], async_op)


def broadcast(tensor, src, group=None, async_op=False):
    """PyTorch's in-place ``broadcast``: every rank's ``tensor`` becomes rank ``src``'s."""
    _check_group(group)
    tensor._replace(mpi_broadcast(tensor, src)._node)
    return _in_place([tensor], async_op)


def all_gather(tensor_list, tensor, group=None, async_op=False):
    """PyTorch's ``all_gather``: ``tensor_list[k]`` becomes rank k's ``tensor`` (the
    same shape on every rank), through one all-reduce of the ranks' pieces in place."""
    from .shape_ops import concat
    from .creation import zeros
    _check_group(group)
    if len(tensor_list) != world_size:
        raise MetajitValueError(f"all_gather: tensor_list has {len(tensor_list)} entries for {world_size} ranks")
    piece = tensor.reshape((1,) + tuple(tensor.shape))
    blanks = [zeros(piece.shape, dtype=tensor.dtype)] * (world_size - 1)
    gathered = mpi_all_reduce(concat(blanks[:rank] + [piece] + blanks[rank:], 0), "add")
    for k, target in enumerate(tensor_list):
        target._replace(gathered[k]._node)
    return _in_place(list(tensor_list), async_op)


def all_gather_object(object_list, obj, group=None):
    """PyTorch's ``all_gather_object``: ``object_list[k]`` becomes rank k's picklable ``obj``."""
    _check_group(group)
    object_list[:] = mpi.gather_objects(obj) if in_mpi else [obj]


def broadcast_object_list(object_list, src=0, group=None, device=None):
    """PyTorch's ``broadcast_object_list``: every rank's list becomes rank ``src``'s."""
    _check_group(group)
    if in_mpi:
        object_list[:] = mpi.broadcast_object(list(object_list), src)
