"""Nested tuples, lists and dicts of values ("pytrees", as in JAX and ``torch.utils._pytree``):
flattened to their leaves and rebuilt, for transforms that take and return structures.

Example::

    leaves, spec = flatten({"w": w, "b": (b1, b2)})   # [w, b1, b2]
    again = unflatten(spec, leaves)
"""
from ..errors import MetajitValueError


def flatten(tree):
    """``(leaves, spec)``: the leaves of ``tree`` in order and what `unflatten` needs."""
    leaves = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree, leaves):
    if isinstance(tree, (tuple, list)):
        return (type(tree), [_flatten(item, leaves) for item in tree])
    if isinstance(tree, dict):
        return (dict, [(key, _flatten(value, leaves)) for key, value in tree.items()])
    leaves.append(tree)
    return None


def unflatten(spec, leaves):
    """The structure ``spec`` (from `flatten`) holding ``leaves`` in order."""
    iterator = iter(leaves)
    return _unflatten(spec, iterator)


def _unflatten(spec, iterator):
    if spec is None:
        return next(iterator)
    kind, children = spec
    if kind is dict:
        return {key: _unflatten(child, iterator) for key, child in children}
    items = [_unflatten(child, iterator) for child in children]
    return kind(*items) if hasattr(kind, "_fields") else kind(items)


def broadcast_prefix(prefix, tree, what):
    """One value per leaf of ``tree``: ``prefix`` is a value for all of it, or a structure
    matching ``tree``'s top levels (as ``in_dims``/``out_dims`` are)."""
    if isinstance(prefix, (tuple, list)) and isinstance(tree, (tuple, list)):
        if len(prefix) != len(tree):
            raise MetajitValueError(f"{what} has {len(prefix)} entries for {len(tree)} values")
        return [value for p, t in zip(prefix, tree) for value in broadcast_prefix(p, t, what)]
    if isinstance(prefix, dict) and isinstance(tree, dict):
        return [value for key in tree for value in broadcast_prefix(prefix.get(key), tree[key], what)]
    return [prefix] * len(flatten(tree)[0])
