"""Under ``mpirun -np 2``: a DataLoader with two workers over an unseeded, shuffled,
sharded pipe. Each rank's batches are gathered on rank 0 and printed as one line of JSON
per epoch: ``[[rank 0's batches], [rank 1's batches]]``."""
import json

from mpi4py import MPI

import metajit as jt
from metajit.data import IterableWrapper

pipe = IterableWrapper(range(30)).shuffle().sharding_filter()
loader = jt.dataset.DataLoader(pipe, batch_size=4, num_workers=2)
for epoch in range(2):
    batches = [batch.numpy().tolist() for batch in loader]
    gathered = MPI.COMM_WORLD.gather(batches + [len(loader)], root=0)
    if jt.rank == 0:
        print(json.dumps(gathered), flush=True)
