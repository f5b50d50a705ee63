"""Faults under mpirun, chosen by argv[1]: ``raise`` (rank 1 fails before a collective),
``skip`` (rank 1 skips a collective), ``slow`` (rank 1 arrives after the timeout)."""
import sys
import time

import metajit as jt

mode = sys.argv[1]
x = jt.array([1.0, 2.0])
x.mpi_all_reduce().sync()
if jt.rank == 1:
    if mode == "raise":
        raise RuntimeError("a bug on rank 1")
    if mode == "slow":
        time.sleep(8)
if not (mode == "skip" and jt.rank == 1):
    x.mpi_all_reduce("mean").sync()
x.mpi_broadcast(0).sync()
print("finished", flush=True)
