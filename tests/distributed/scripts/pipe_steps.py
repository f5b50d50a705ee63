"""An iterable source with a share one sample longer on rank 0 (21 samples, 2 ranks,
per-rank batch 5): every rank must take the same number of steps; prints them."""
import metajit as jt
from metajit.data import IterableWrapper

loader = jt.dataset.DataLoader(IterableWrapper(range(21)).sharding_filter(), batch_size=10)
steps = 0
for batch in loader:
    batch.mpi_all_reduce().sync()  # a collective per step, as training does
    steps += 1
print(f"rank {jt.rank} steps {steps}", flush=True)
