"""Several data-parallel SGD steps on a global batch (rank r takes its share through the
dataset); saves this rank's parameters and statistics to ``<out>_<world size>_<rank>.npy``.
Ranks start from different random parameters: the optimiser broadcasts rank 0's."""
import sys

import numpy as np

import metajit as jt
from metajit import nn

out, sync = sys.argv[1], sys.argv[2] == "sync"
jt.set_seed(7 + jt.rank)
rng = np.random.default_rng(0)
inputs = rng.standard_normal((48, 5)).astype(np.float32)
targets = rng.standard_normal((48, 2)).astype(np.float32)
layers = [nn.Linear(5, 8)] + ([nn.SyncBatchNorm(8)] if sync else []) + [nn.ReLU(), nn.Linear(8, 2)]
model = nn.Sequential(*layers)
optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
data = jt.dataset.TensorDataset(inputs, targets).set_attrs(batch_size=16, shuffle=True, seed=3)
for epoch in range(2):
    for x, y in data:
        optimizer.step(((model(x) - y) ** 2).mean())
state = [v.numpy().ravel() for v in model.state_dict().values()]
np.save(f"{out}_{jt.world_size}_{jt.rank}.npy", np.concatenate([s.astype(np.float64) for s in state]))
