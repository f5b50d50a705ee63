"""Per-sample gradients of an MLP (batch 64): ``vmap(grad(loss))`` against a Python loop
over the samples and against ``torch.func``, measured in the same process in alternating
blocks with the same threads.

    python bench/func_vs_torch.py [--batch 64] [--repeat R]

Prints the median time of each and the ratios (targets from issue 20: the loop / vmap
at least 10, and vmap against torch.func printed).
"""
import argparse
import os
import sys

os.environ.setdefault("GOMP_SPINCOUNT", "10000")
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_vs_torch import paired_medians  # noqa: E402  (the shared alternating timer)


def main():
    """Run the three ways and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=30)
    arguments = parser.parse_args()
    import torch
    import torch.func as tf
    import metajit as jt
    from metajit import nn
    from metajit.func import functional_call, grad, vmap
    torch.set_num_threads(jt.flags.num_threads)
    model = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))
    torch_model = torch.nn.Sequential(torch.nn.Linear(32, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                                      torch.nn.ReLU(), torch.nn.Linear(128, 10))
    torch_model.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in model.state_dict().items()})
    rng = np.random.default_rng(0)
    data = rng.standard_normal((arguments.batch, 32)).astype(np.float32)
    labels = rng.integers(0, 10, arguments.batch)
    x, y = jt.array(data).sync(), jt.array(labels).sync()
    tx, ty = torch.from_numpy(data), torch.from_numpy(labels)
    params = dict(model.named_parameters())
    torch_params = {k: v.detach() for k, v in torch_model.named_parameters()}

    def loss(p, sample, target):
        return nn.cross_entropy_loss(functional_call(model, p, (sample[None],)), target[None])

    def torch_loss(p, sample, target):
        return torch.nn.functional.cross_entropy(tf.functional_call(torch_model, p, (sample[None],)), target[None])
    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))
    torch_per_sample = tf.vmap(tf.grad(torch_loss), in_dims=(None, 0, 0))
    gradient_of = grad(loss)

    def vmapped():
        grads = per_sample(params, x, y)
        jt.sync_all()  # every gradient in one realisation (they share the forward pass)
        return grads

    def looped():
        grads = [gradient_of(params, x[k], y[k]) for k in range(arguments.batch)]
        jt.sync_all()
        return grads

    ours = per_sample(params, x, y)
    theirs = torch_per_sample(torch_params, tx, ty)
    for name in ours:
        np.testing.assert_allclose(ours[name].numpy(), theirs[name].numpy(), rtol=1e-3, atol=1e-5)
    vmap_time, loop_time = paired_medians(vmapped, looped, max(3, arguments.repeat // 5))
    vmap_time2, torch_time = paired_medians(vmapped, lambda: torch_per_sample(torch_params, tx, ty), arguments.repeat)
    print(f"per-sample gradients, MLP 32-128-128-10, batch {arguments.batch}, {jt.flags.num_threads} threads")
    print(f"  vmap(grad):        {min(vmap_time, vmap_time2) * 1e3:8.3f} ms")
    print(f"  loop over samples: {loop_time * 1e3:8.3f} ms   loop / vmap = {loop_time / vmap_time:6.1f}  (target >= 10)")
    print(f"  torch.func:        {torch_time * 1e3:8.3f} ms   vmap / torch.func = {vmap_time2 / torch_time:6.2f}")


if __name__ == "__main__":
    main()
