"""Function transforms with ``torch.func``'s names: ``grad``, ``grad_and_value``, ``vjp``,
``jvp``, ``jacrev``, ``jacfwd``, ``hessian``.

Each returns lazy gradient graphs built on the inputs themselves (never on detached
copies), so transforms compose with each other and with `vmap`: ``grad(grad(f))`` is a
second derivative, ``vmap(grad(loss), in_dims=(None, 0, 0))`` gives per-sample
gradients, ``jacrev`` is ``vmap`` of a ``vjp`` over the rows of an identity. Example::

    d2f = grad(grad(lambda x: (x ** 3).sum()))(x)     # 6 x
"""
import functools

import numpy as np

from ..creation import zeros
from ..errors import MetajitShapeError, MetajitValueError
from ..gradients import grad as graph_grad
from ..ir import dtypes, graph
from ..reductions import sum as reduce_sum
from ..var import Var
from . import pytree
from .vmap import vmap


def _differentiable(tree):
    """``tree`` with every float Var replaced by a fresh identity of it that tracks
    gradients: differentiating with respect to that node counts only the paths through
    this argument (not through another argument computed from the same Var), while the
    identity still passes gradients on to the original, so outer transforms see through it."""
    leaves, spec = pytree.flatten(tree)
    return pytree.unflatten(spec, [_identity(leaf) if isinstance(leaf, Var) and dtypes.is_float(leaf.dtype) else leaf
                                   for leaf in leaves])


def _identity(var):
    node = graph.elementwise("cast", [var._node], var.dtype)
    node.requires_grad = True
    return Var.from_node(node)


def _argnums(argnums, count):
    positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for position in positions:
        if not -count <= position < count:
            raise MetajitValueError(f"argnums {argnums} is out of range for {count} arguments")
    return positions


def _gradients_of(value, tree):
    """d(value)/d(each Var leaf of ``tree``), in ``tree``'s structure (None for non-Var leaves)."""
    leaves, spec = pytree.flatten(tree)
    variables = [leaf for leaf in leaves if isinstance(leaf, Var)]
    found = iter(graph_grad(value, variables) if variables else [])
    return pytree.unflatten(spec, [next(found) if isinstance(leaf, Var) else None for leaf in leaves])


def grad_and_value(func, argnums=0, has_aux=False):
    """``func`` returning ``(gradient, value)`` (``(gradient, (value, aux))`` with
    ``has_aux``); the gradient is taken with respect to argument(s) ``argnums`` (pytrees
    allowed) of the scalar output."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        args = list(args)
        positions = _argnums(argnums, len(args))
        for position in positions:
            args[position] = _differentiable(args[position])
        result = func(*args, **kwargs)
        value, aux = _split_aux(result, has_aux)
        if not isinstance(value, Var) or value.ndim != 0 and value.numel() != 1:
            raise MetajitShapeError("grad: the function must return a scalar Var (one element), got "
                                    + (f"shape {value.shape}" if isinstance(value, Var) else type(value).__name__))
        gradients = [_gradients_of(value, args[p]) for p in positions]
        gradient = gradients[0] if isinstance(argnums, int) else tuple(gradients)
        return (gradient, (value, aux)) if has_aux else (gradient, value)
    return wrapper


def grad(func, argnums=0, has_aux=False):
    """The gradient of scalar-valued ``func`` with respect to argument(s) ``argnums``
    (``(gradient, aux)`` with ``has_aux``), as ``torch.func.grad``."""
    with_value = grad_and_value(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        gradient, value = with_value(*args, **kwargs)
        return (gradient, value[1]) if has_aux else gradient
    return wrapper


def _split_aux(result, has_aux):
    if not has_aux:
        return result, None
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise MetajitValueError("has_aux=True: the function must return a pair (output, aux)")
    return result[0], result[1]


def vjp(func, *primals, has_aux=False):
    """``(output, vjp_fn)`` (and ``aux``): ``vjp_fn(cotangents)`` gives, per primal, the
    cotangents (shaped as ``output``) pulled back through ``func``."""
    primals = tuple(_differentiable(p) for p in primals)
    output, aux = _split_aux(func(*primals), has_aux)
    outputs, out_spec = pytree.flatten(output)

    def vjp_fn(cotangents):
        given, spec = pytree.flatten(cotangents)
        if spec != out_spec:
            raise MetajitValueError("vjp_fn: the cotangents must have the structure of the output")
        total = None
        for out, cotangent in zip(outputs, given):
            if isinstance(out, Var):
                term = reduce_sum(out * cotangent)
                total = term if total is None else total + term
        if total is None:
            raise MetajitValueError("vjp: the function returned no Var")
        return tuple(_gradients_of(total, p) for p in primals)
    return (output, vjp_fn, aux) if has_aux else (output, vjp_fn)


def jvp(func, primals, tangents, *, has_aux=False):
    """``(output, Jacobian-vector product)`` (and ``aux``) of ``func`` at ``primals`` along
    ``tangents``: the VJP is linear in its cotangent, so differentiating it with respect to
    that cotangent gives the JVP (two reverse passes, all lazy)."""
    primals = tuple(_differentiable(p) for p in primals)
    output, aux = _split_aux(func(*primals), has_aux)
    outputs, out_spec = pytree.flatten(output)
    dummies = [zeros(o.shape, dtype=o.dtype).requires_grad_() if isinstance(o, Var) else None for o in outputs]
    pulled_total = None
    for out, dummy in zip(outputs, dummies):
        if dummy is not None:
            term = reduce_sum(out * dummy)
            pulled_total = term if pulled_total is None else pulled_total + term
    total = None
    for primal, tangent in zip(primals, tangents):
        pulled, _ = pytree.flatten(_gradients_of(pulled_total, primal))
        for gradient, direction in zip(pulled, pytree.flatten(tangent)[0]):
            if gradient is not None:
                term = reduce_sum(gradient * direction)
                total = term if total is None else total + term
    products = [None if d is None else graph_grad(total, d) for d in dummies]
    result = pytree.unflatten(out_spec, products)
    return (output, result, aux) if has_aux else (output, result)


def _basis(var):
    """The rows of an identity of ``var``'s element count, shaped ``(n,) + var.shape``."""
    count = var.numel()
    return Var(np.eye(count, dtype=var.dtype.numpy).reshape((count,) + tuple(var.shape)))


def jacrev(func, argnums=0, has_aux=False):
    """The Jacobian of ``func`` (one Var output) with respect to argument(s) ``argnums``
    by reverse mode: ``vmap`` of its VJP over the rows of an identity; shaped
    ``output.shape + input.shape``."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        positions = _argnums(argnums, len(args))

        def selected(*chosen):
            full = list(args)
            for position, value in zip(positions, chosen):
                full[position] = value
            return func(*full, **kwargs)
        result = vjp(selected, *[args[p] for p in positions], has_aux=has_aux)
        output, vjp_fn = result[0], result[1]
        if not isinstance(output, Var):
            raise MetajitValueError("jacrev: the function must return one Var")
        rows = vmap(vjp_fn)(_basis(output))
        jacobians = tuple(row.reshape(tuple(output.shape) + tuple(args[p].shape)) for row, p in zip(rows, positions))
        jacobian = jacobians[0] if isinstance(argnums, int) else jacobians
        return (jacobian, result[2]) if has_aux else jacobian
    return wrapper


def jacfwd(func, argnums=0, has_aux=False, *, randomness="error"):
    """The Jacobian of ``func`` (one Var output) with respect to argument ``argnums`` by
    forward mode: ``vmap`` of its JVP over the input's basis directions; shaped
    ``output.shape + input.shape``."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        positions = _argnums(argnums, len(args))
        jacobians, aux = [], None
        for position in positions:
            primal = args[position]

            def along(direction, position=position):
                full = list(args)
                full[position] = primal
                result = jvp(lambda value: func(*full[:position], value, *full[position + 1:], **kwargs),
                             (primal,), (direction,), has_aux=has_aux)
                return result[1]
            columns = vmap(along, randomness=randomness)(_basis(primal))  # (n_in,) + output.shape
            out_ndim = columns.ndim - 1
            moved = columns.permute(*range(1, out_ndim + 1), 0)
            jacobians.append(moved.reshape(tuple(columns.shape[1:]) + tuple(primal.shape)))
        if has_aux:
            aux = _split_aux(func(*args, **kwargs), True)[1]
        jacobian = jacobians[0] if isinstance(argnums, int) else tuple(jacobians)
        return (jacobian, aux) if has_aux else jacobian
    return wrapper


def hessian(func, argnums=0):
    """The Hessian of scalar ``func``: ``jacfwd(jacrev(func))``, as ``torch.func.hessian``."""
    return jacfwd(jacrev(func, argnums), argnums)
