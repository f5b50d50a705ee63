"""A few data-parallel SGD steps of an MLP whose every parameter is its own gradient
bucket; records, on the last step, the order of kernel launches and of the collectives'
starts and finishes, and saves this rank's parameters and the events to
``<out>_<rank>.npy`` / ``<out>_<rank>.json``."""
import json
import os
import sys

os.environ["METAJIT_MPI_BUCKET_MB"] = "0.00001"  # one parameter per bucket (read at import)

import numpy as np  # noqa: E402

import metajit as jt  # noqa: E402
from metajit import nn  # noqa: E402

out = sys.argv[1]
jt.set_seed(3)
rng = np.random.default_rng(jt.rank)
x, y = rng.standard_normal((8, 6)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32)
model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
events = []
handle = jt.plugins.current()
launch_sequence, start, finish = handle.launch_sequence, jt.mpi.start, jt.mpi.finish


def logged_launch_sequence(launches, plan_key):
    events.append(["launch", len(launches)])
    return launch_sequence(launches, plan_key)


def logged_start(kind, array, op=None, root=0):
    events.append(["start", array.size])
    return start(kind, array, op, root)


def logged_finish(started):
    events.append(["finish"])
    return finish(started)


handle.launch_sequence, jt.mpi.start, jt.mpi.finish = logged_launch_sequence, logged_start, logged_finish
for step in range(4):
    events.clear()
    optimizer.step(((model(jt.array(x)) - jt.array(y)) ** 2).mean())
np.save(f"{out}_{jt.rank}.npy", np.concatenate([p.numpy().ravel() for p in model.parameters()]))
with open(f"{out}_{jt.rank}.json", "w") as file:
    json.dump({"events": events, "background": jt.mpi.background is not None}, file)
