"""``functional_call``: call a module with other parameters and buffers, as
``torch.func.functional_call`` (the module's own are put back afterwards).

With `vmap` it runs an ensemble of models stacked along a dim::

    params = {name: jt.stack([p[name] for p in models]) for name in models[0]}
    outputs = vmap(lambda p, x: functional_call(net, p, (x,)), in_dims=(0, None))(params, x)
"""
import contextlib

from ..errors import MetajitValueError
from ..var import Var


def functional_call(module, parameter_and_buffer_dicts, args=(), kwargs=None, *, tie_weights=True, strict=False):
    """``module(*args, **kwargs)`` with the named parameters and buffers in
    ``parameter_and_buffer_dicts`` (a dict of ``"layer.weight": Var``, or a tuple of
    dicts) in place of the module's own; with ``strict`` every one must be given."""
    dicts = parameter_and_buffer_dicts if isinstance(parameter_and_buffer_dicts, (tuple, list)) \
        else (parameter_and_buffer_dicts,)
    replacements = {}
    for mapping in dicts:
        for name, value in mapping.items():
            if name in replacements:
                raise MetajitValueError(f"functional_call: {name!r} is given twice")
            replacements[name] = value if isinstance(value, Var) else Var(value)
    if not isinstance(args, tuple):
        args = (args,)
    with _swapped(module, replacements, strict):
        return module(*args, **(kwargs or {}))


@contextlib.contextmanager
def _swapped(module, replacements, strict):
    slots = {}
    for name, _ in list(module.named_parameters()) + list(module.named_buffers()):
        owner, _, attribute = name.rpartition(".")
        target = module
        for part in owner.split(".") if owner else ():
            target = target._modules[part]
        table = target._parameters if attribute in target._parameters else target._buffers
        slots[name] = (table, attribute)
    unknown = sorted(set(replacements) - set(slots))
    if unknown:
        raise MetajitValueError(f"functional_call: the module has no parameter or buffer {', '.join(unknown)}")
    if strict and set(slots) - set(replacements):
        raise MetajitValueError("functional_call(strict=True): missing " + ", ".join(sorted(set(slots) - set(replacements))))
    saved = {name: slots[name][0][slots[name][1]] for name in replacements}
    try:
        for name, value in replacements.items():
            table, attribute = slots[name]
            table[attribute] = value
        yield
    finally:
        for name, value in saved.items():
            table, attribute = slots[name]
            table[attribute] = value
