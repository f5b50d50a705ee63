"""Under mpirun, on device ``cpu``, ``cuda`` (NCCL; each rank on the GPU of its local
rank) or ``cpu_collectives`` (the cpu backend plus a collective library working in place
on its buffers through its own MPI communicator, a stand-in for NCCL on a GPU): every
collective op's value against numpy, then data-parallel SGD steps with synchronised
BatchNorm. Saves this rank's values and parameters to ``<out>_<device>_<rank>.npy`` and
the stand-in library's calls to ``<out>_<device>_<rank>.json``."""
import dataclasses
import json
import os
import sys
import types

import numpy as np
from mpi4py import MPI

import metajit as jt
from metajit import nn
from metajit.backends import cpu
from metajit.hookspec import hookimpl

calls = []


class HostCollectives:
    """The `metajit_backend_collectives` contract on cpu buffers (``buffer.array`` bytes)."""

    def __init__(self, rank, size, broadcast):
        self.comm = MPI.COMM_WORLD.Dup()
        assert broadcast("setup" if rank == 0 else None) == "setup" and self.comm.Get_size() == size

    def all_reduce(self, source, destination, count, dtype, op):
        calls.append(("all_reduce", op, count, dtype))
        operation = {"add": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
        self.comm.Allreduce(self._view(source, count, dtype), self._view(destination, count, dtype), operation)

    def reduce(self, source, destination, count, dtype, root):
        calls.append(("reduce", root, count, dtype))
        self.comm.Reduce(self._view(source, count, dtype), self._view(destination, count, dtype), MPI.SUM, root)

    def broadcast(self, source, destination, count, dtype, root):
        calls.append(("broadcast", root, count, dtype))
        values = self._view(destination, count, dtype)
        values[:] = self._view(source, count, dtype)
        self.comm.Bcast(values, root)

    @staticmethod
    def _view(buffer, count, dtype):
        return buffer.array[:count * np.dtype(dtype).itemsize].view(dtype)


def cpu_with_collectives():
    plugin = types.ModuleType("cpu_collectives")
    for name in dir(cpu):
        if name.startswith("metajit_backend_") and name != "metajit_backend_describe":
            setattr(plugin, name, getattr(cpu, name))

    @hookimpl
    def metajit_backend_describe():
        return dataclasses.replace(cpu.metajit_backend_describe(), name="cpu_collectives")

    @hookimpl
    def metajit_backend_collectives(rank, size, broadcast):
        return HostCollectives(rank, size, broadcast)
    plugin.metajit_backend_describe, plugin.metajit_backend_collectives = (metajit_backend_describe,
                                                                           metajit_backend_collectives)
    return plugin


out, device = sys.argv[1], sys.argv[2]
os.environ.setdefault("METAJIT_CUDA_DEVICE", os.environ.get("OMPI_COMM_WORLD_LOCAL_RANK", "0"))  # NCCL: a GPU each
if device == "cpu_collectives":
    jt.plugins.register_backend(cpu_with_collectives(), "cpu_collectives")
jt.set_device(device)
rng = np.random.default_rng(jt.rank)
x = jt.array(rng.standard_normal(6).astype(np.float32))
counts = jt.array(np.arange(5, dtype=np.int32) * (jt.rank + 1) - 3)
values = [x.mpi_all_reduce(op) for op in ("add", "mean", "max", "min")] + [
    x.mpi_reduce("add", 1), x.mpi_reduce("mean", 1), x.mpi_broadcast(1), counts.mpi_all_reduce("mean"),
    jt.zeros((0,)).mpi_all_reduce("add")]
everyone = np.array(MPI.COMM_WORLD.allgather(x.numpy()))
every_count = np.array(MPI.COMM_WORLD.allgather(counts.numpy()))
root_only = (lambda v: v) if jt.rank == 1 else np.zeros_like
expected = [everyone.sum(0), everyone.mean(0), everyone.max(0), everyone.min(0), root_only(everyone.sum(0)),
            root_only(everyone.mean(0)), everyone[1], np.trunc(every_count.sum(0) / 2), np.zeros(0)]
for value, wanted in zip(values, expected):
    np.testing.assert_allclose(value.numpy(), wanted, rtol=1e-6)
assert values[-2].dtype == jt.int32
jt.set_seed(5 + jt.rank)
model = nn.Sequential(nn.Linear(4, 8), nn.SyncBatchNorm(8), nn.ReLU(), nn.Linear(8, 2))
optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
inputs = rng.standard_normal((8, 4)).astype(np.float32)
for step in range(3):
    optimizer.step(((model(jt.array(inputs + step)) - 1) ** 2).mean())
state = [v.numpy().ravel().astype(np.float64) for v in values + list(model.state_dict().values())]
np.save(f"{out}_{device}_{jt.rank}.npy", np.concatenate(state))
with open(f"{out}_{device}_{jt.rank}.json", "w") as file:
    json.dump(calls, file)
