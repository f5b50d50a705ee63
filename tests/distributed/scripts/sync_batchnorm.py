"""SyncBatchNorm on this rank's share of a global batch against torch's BatchNorm2d on the
whole batch: training output, input and weight gradients and running statistics, for
inputs around 0 and around 1e3 (where sums of x and x**2 in float32 would cancel).
Prints "<offset> ok" per case."""
import sys

import numpy as np
import torch

import metajit as jt

rng = np.random.default_rng(0)
for offset in (0.0, 1e3):
    data = (rng.standard_normal((6, 3, 5, 5)) * 2 + offset).astype(np.float32)
    weights = rng.standard_normal(data.shape).astype(np.float32)
    share = slice(3 * jt.rank, 3 * jt.rank + 3)
    theirs = torch.nn.BatchNorm2d(3)
    tx = torch.tensor(data, requires_grad=True)
    tout = theirs(tx)
    (tout * torch.tensor(weights)).sum().backward()
    ours = jt.nn.SyncBatchNorm(3)
    x = jt.array(data[share])
    out = ours(x)
    grads = jt.grad((out * jt.array(weights[share])).sum(), [x, ours.weight, ours.bias])
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy()[share], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grads[0].numpy(), tx.grad.numpy()[share], rtol=1e-3, atol=1e-4)
    # each rank's parameter gradient covers its share; their sum is torch's
    for grad, want in zip(grads[1:], (theirs.weight.grad, theirs.bias.grad)):
        np.testing.assert_allclose(jt.mpi_all_reduce(grad, "add").numpy(), want.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(ours.running_mean.numpy(), theirs.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-4)
    sys.stdout.write(f"{offset} ok\n")  # one write: the ranks' lines reach mpirun's output whole
    sys.stdout.flush()
