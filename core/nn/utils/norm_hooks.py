"""The forward pre-hooks of `weight_norm` and `spectral_norm`, kept per parameter name
so that each can be found again and removed, and registered at most once per name."""
from ...errors import MetajitValueError


def normalisable_parameter(module, name, what):
    """The parameter ``name`` of ``module`` that ``what`` (the function's name) is about
    to normalise; an error when it has no such parameter or ``name`` is normalised already."""
    hooks = module.__dict__.get("_norm_hooks", {})
    if name in hooks:
        existing = hooks[name][2]
        raise MetajitValueError(f"{what}: {type(module).__name__}.{name} already has a {existing}; "
                                f"call remove_{existing} first")
    weight = module.__dict__["_parameters"].get(name)
    if weight is None:
        raise MetajitValueError(f"{what}: {type(module).__name__} has no parameter named {name!r}")
    return weight


def add_norm_hook(module, name, hook, what):
    """Register ``hook`` (computing ``module.<name>`` before each forward) for ``name``."""
    hooks = module.__dict__.setdefault("_norm_hooks", {})
    hooks[name] = (hook, module.register_forward_pre_hook(hook), what)


def remove_norm_hook(module, name, what):
    """Take away the hook that ``what`` (the function's name) registered for ``name``
    and return it."""
    hooks = module.__dict__.get("_norm_hooks", {})
    if name not in hooks or hooks[name][2] != what:
        raise MetajitValueError(f"{what} of {name!r} not found in {type(module).__name__}")
    hook, handle, _ = hooks.pop(name)
    handle.remove()
    return hook
