"""Under mpirun: every collective's value and its gradient (jt.grad) against central
finite differences of the loss summed over all ranks; prints one line per op checked."""
import numpy as np
from mpi4py import MPI

import metajit as jt

OPS = [("all_reduce", "add", 0), ("all_reduce", "mean", 0), ("all_reduce", "max", 0), ("all_reduce", "min", 0),
       ("reduce", "add", 1), ("reduce", "mean", 1), ("broadcast", None, 1)]
rank, size = jt.rank, jt.world_size
rng = np.random.default_rng(rank)
x = rng.standard_normal(4)
weights = rng.standard_normal(4)


def apply(kind, op, root, value):
    if kind == "all_reduce":
        return value.mpi_all_reduce(op)
    if kind == "reduce":
        return value.mpi_reduce(op, root)
    return value.mpi_broadcast(root)


def total_loss(kind, op, root, value):
    local = (apply(kind, op, root, jt.array(value)) * jt.array(weights)).sum().item()
    return MPI.COMM_WORLD.allreduce(local)


everyone = np.array(MPI.COMM_WORLD.allgather(x))
for kind, op, root in OPS:
    output = apply(kind, op, root, jt.array(x)).numpy()
    expected = {"add": everyone.sum(0), "mean": everyone.mean(0), "max": everyone.max(0),
                "min": everyone.min(0), None: everyone[root]}[op]
    if kind == "reduce" and rank != root:
        expected = np.zeros(4)
    assert np.allclose(output, expected), (kind, op, output, expected)
    variable = jt.array(x)
    (gradient,) = jt.grad((apply(kind, op, root, variable) * jt.array(weights)).sum(), [variable])
    gradient = gradient.numpy()
    eps = 1e-6
    numeric = np.zeros(4)
    for owner in range(size):
        for element in range(4):
            plus, minus = x.copy(), x.copy()
            if rank == owner:
                plus[element] += eps
                minus[element] -= eps
            difference = (total_loss(kind, op, root, plus) - total_loss(kind, op, root, minus)) / (2 * eps)
            if rank == owner:
                numeric[element] = difference
    assert np.allclose(gradient, numeric, rtol=1e-5, atol=1e-7), (kind, op, rank, gradient, numeric)
    print(f"rank {rank}: {kind} {op} ok", flush=True)
