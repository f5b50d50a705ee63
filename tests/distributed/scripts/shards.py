"""Each rank's share of every batch of a shuffled dataset, gathered on every rank and printed
as one line of JSON per batch: ``[[rank 0's indices], [rank 1's indices]]``."""
import json

import numpy as np
from mpi4py import MPI

import metajit as jt

data = jt.dataset.TensorDataset(np.arange(22)).set_attrs(batch_size=6, shuffle=True)
for epoch in range(2):
    for (batch,) in data:
        shares = MPI.COMM_WORLD.allgather(batch.numpy().tolist())
        if jt.rank == 0:
            print(json.dumps(shares), flush=True)
    if jt.rank == 0:
        print("epoch", flush=True)
