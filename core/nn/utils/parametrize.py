"""PyTorch's ``torch.nn.utils.parametrize``: a parameter or buffer of a module computed
from stored values by modules (its parametrizations) at each read.

`register_parametrization` moves the tensor ``name`` of a module to
``module.parametrizations[name].original`` (``original0``, ``original1`` ... when the
parametrization's ``right_inverse`` returns several values) and makes ``module.name`` a
property that applies the parametrizations to it. The state-dict keys are PyTorch's, so
a checkpoint of a parametrized PyTorch model loads as is. Example::

    class Symmetric(nn.Module):
        def execute(self, x):
            return x.triu() + x.triu(1).transpose(0, 1)

    layer = nn.Linear(3, 3)
    register_parametrization(layer, "weight", Symmetric())
    layer.weight            # symmetric, differentiable with respect to the original
"""
import contextlib
import threading

from ...errors import MetajitShapeError, MetajitTypeError, MetajitValueError
from ...flags import no_grad
from ...var import Var
from ..module import Module, ModuleDict, ModuleList

_cache = threading.local()  # .values: {(id(module), name): value} while `cached` is active


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor, in order, with the stored value(s) they read:
    ``original``, or ``original0``, ``original1`` ... when the first one's
    ``right_inverse`` returns a sequence. Calling it gives the parametrized value."""

    def __init__(self, modules, original, unsafe=False, original_is_buffer=False):
        super().__init__(modules)
        self.unsafe = unsafe
        self.original_is_buffer = original_is_buffer
        originals = _right_inverse(modules[0], original)
        self.is_tensor = isinstance(originals, Var)
        self.ntensors = 1 if self.is_tensor else len(originals)
        for name, value in zip(self._original_names(), [originals] if self.is_tensor else originals):
            self._store(name, value, original.requires_grad)
        if not unsafe:
            _check_value(self(), original, "registering the parametrization")

    def _original_names(self):
        return ["original"] if self.is_tensor else [f"original{k}" for k in range(self.ntensors)]

    def _store(self, name, value, requires_grad):
        if not isinstance(value, Var):
            raise MetajitTypeError(f"right_inverse must return Vars, got {type(value).__name__}")
        if self.original_is_buffer:
            self.register_buffer(name, value.detach())
        else:
            stored = value.detach()
            stored.requires_grad = requires_grad
            setattr(self, name, stored)

    def originals(self):
        """The stored values the parametrizations read, in order."""
        return [getattr(self, name) for name in self._original_names()]

    def right_inverse(self, value):
        """Set the stored values so that the parametrized value is ``value`` (each
        parametrization's ``right_inverse`` from last to first; the identity where one
        has none)."""
        with no_grad():
            for parametrization in reversed(list(self)[1:]):
                value = _right_inverse(parametrization, value)
                if not isinstance(value, Var):
                    raise MetajitTypeError("only the first parametrization's right_inverse may return "
                                           "several values")
            values = _right_inverse(self[0], value)
            values = [values] if isinstance(values, Var) else list(values)
            if len(values) != self.ntensors:
                raise MetajitValueError(f"right_inverse returned {len(values)} values; the parametrization "
                                        f"stores {self.ntensors}")
            for stored, new in zip(self.originals(), values):
                if tuple(new.shape) != tuple(stored.shape) or new.dtype != stored.dtype:
                    raise MetajitShapeError(f"right_inverse returned a {new.dtype} Var of shape {new.shape} "
                                            f"for a stored {stored.dtype} value of shape {stored.shape}")
                stored.assign(new)

    def execute(self):
        """The parametrized value: the first parametrization applied to the stored value(s),
        then each of the others to the result."""
        originals = self.originals()
        value = self[0](*originals)
        for parametrization in list(self)[1:]:
            value = parametrization(value)
        return value


def _right_inverse(parametrization, value):
    inverse = getattr(parametrization, "right_inverse", None)
    return value if inverse is None else inverse(value)


def _check_value(value, original, when):
    if not isinstance(value, Var):
        raise MetajitTypeError(f"{when}: a parametrization must return a Var, got {type(value).__name__}")
    if tuple(value.shape) != tuple(original.shape) or value.dtype != original.dtype:
        raise MetajitShapeError(
            f"{when}: the parametrization gives a {value.dtype} Var of shape {value.shape} for a "
            f"{original.dtype} tensor of shape {original.shape}; pass unsafe=True to allow it")


def _parametrized_class(cls):
    """A new subclass of ``cls`` for one parametrized instance (named
    ``Parametrized<Class>`` as PyTorch's), to hold the properties of its parametrized
    names: instances of one class may parametrize different names."""
    return type(f"Parametrized{cls.__name__}", (cls,), {"__module__": cls.__module__, "_original_class": cls})


def _property(name):
    def get(module):
        values = getattr(_cache, "values", None)
        if values is None:
            return module.parametrizations[name]()
        key = (id(module), name)
        if key not in values:
            values[key] = module.parametrizations[name]()
        return values[key]

    def set_(module, value):
        module.parametrizations[name].right_inverse(value)

    return property(get, set_, doc=f"``{name}``, computed by ``parametrizations.{name}``")


def register_parametrization(module, tensor_name, parametrization, *, unsafe=False):
    """Make ``module.<tensor_name>`` (a parameter or buffer) the output of the Module
    ``parametrization`` applied to a stored value; a second call on the same name
    appends ``parametrization`` to the ones applied. ``unsafe`` skips the check that the
    parametrized value keeps the tensor's shape and dtype. Returns ``module``."""
    if not isinstance(parametrization, Module):
        raise MetajitTypeError(f"register_parametrization: the parametrization must be a Module, got "
                               f"{type(parametrization).__name__}")
    if is_parametrized(module, tensor_name):
        parametrizations = module.parametrizations[tensor_name]
        if not unsafe:
            value = parametrizations()
            _check_value(parametrization(value), value, f"register_parametrization({tensor_name!r})")
        parametrizations.append(parametrization)
        return module
    original = module.__dict__["_parameters"].get(tensor_name)
    table = "_parameters"
    if original is None:
        original, table = module.__dict__["_buffers"].get(tensor_name), "_buffers"
    if original is None:
        raise MetajitValueError(f"register_parametrization: {type(module).__name__} has no parameter or buffer "
                                f"named {tensor_name!r}")
    parametrizations = ParametrizationList([parametrization], original, unsafe, table == "_buffers")
    del module.__dict__[table][tensor_name]
    if not is_parametrized(module):
        module.__dict__["_modules"]["parametrizations"] = ModuleDict()
        module.__class__ = _parametrized_class(type(module))
    module.parametrizations[tensor_name] = parametrizations
    setattr(type(module), tensor_name, _property(tensor_name))
    return module


def is_parametrized(module, tensor_name=None):
    """Whether ``module`` has a parametrized tensor (``tensor_name`` when given)."""
    parametrizations = module.__dict__["_modules"].get("parametrizations")
    if not isinstance(parametrizations, ModuleDict) or not hasattr(type(module), "_original_class"):
        return False
    return len(parametrizations) > 0 if tensor_name is None else tensor_name in parametrizations


def type_before_parametrizations(module):
    """``module``'s class before its first parametrization."""
    return getattr(type(module), "_original_class", type(module))


def remove_parametrizations(module, tensor_name, leave_parametrized=True):
    """Undo `register_parametrization` on ``tensor_name``: the tensor becomes a plain
    parameter (or buffer) again, holding the parametrized value (``leave_parametrized``)
    or the stored one (which needs a single stored value). Returns ``module``."""
    if not is_parametrized(module, tensor_name):
        raise MetajitValueError(f"remove_parametrizations: {type(module).__name__} has no parametrization "
                                f"on {tensor_name!r}")
    parametrizations = module.parametrizations[tensor_name]
    if leave_parametrized:
        with no_grad():
            value = parametrizations().detach()
    elif parametrizations.is_tensor:
        value = parametrizations.original.detach()
    else:
        raise MetajitValueError("remove_parametrizations: leave_parametrized=False needs a parametrization "
                                "storing one value; this one stores several")
    is_buffer = parametrizations.original_is_buffer
    requires_grad = not is_buffer and parametrizations.originals()[0].requires_grad
    del module.parametrizations[tensor_name]
    cls = type(module)
    delattr(cls, tensor_name)
    if len(module.parametrizations) == 0:
        del module.__dict__["_modules"]["parametrizations"]
        module.__class__ = cls._original_class
    if is_buffer:
        module.register_buffer(tensor_name, value)
    else:
        value.requires_grad = requires_grad
        setattr(module, tensor_name, value)
    return module


@contextlib.contextmanager
def cached():
    """Inside the block each parametrized tensor is computed once, at its first read, and
    that value is reused (a weight read by several time steps of a recurrent layer)."""
    outer = getattr(_cache, "values", None)
    if outer is None:
        _cache.values = {}
    try:
        yield
    finally:
        if outer is None:
            _cache.values = None
