"""The README demo under mpirun (1 epoch); saves each rank's accuracy and parameters."""
import sys

import numpy as np

import metajit as jt
from metajit.examples import train_digits

model, accuracy = train_digits.train(epochs=1)
state = np.concatenate([v.numpy().ravel().astype(np.float64) for v in model.state_dict().values()])
np.save(f"{sys.argv[1]}_{jt.rank}.npy", np.concatenate([[accuracy], state]))
