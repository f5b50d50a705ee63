"""Composable function transforms, with ``torch.func``'s names: `vmap`, `grad`,
`grad_and_value`, `vjp`, `jvp`, `jacrev`, `jacfwd`, `hessian`, `functional_call`.

Example (per-sample gradients)::

    from metajit.func import functional_call, grad, vmap

    def loss(params, x, y):
        return ((functional_call(model, params, (x[None],)) - y) ** 2).sum()

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(dict(model.named_parameters()), x, y)
"""
from .functional_call import functional_call
from .transforms import grad, grad_and_value, hessian, jacfwd, jacrev, jvp, vjp
from .vmap import vmap

__all__ = ["vmap", "grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "functional_call"]
