"""PyTorch's ``torch.nn.utils.weight_norm`` / ``remove_weight_norm``: a weight split into
a magnitude ``<name>_g`` and a direction ``<name>_v`` (Salimans and Kingma, 2016), both
parameters, the weight ``v * g / ||v||`` computed before each forward. The state-dict
keys are PyTorch's (``weight_g``, ``weight_v``). `parametrizations.weight_norm` is the
same split as a parametrization. Example::

    layer = weight_norm(nn.Linear(20, 40), name="weight")
    layer.weight_g.shape    # (40, 1): one magnitude per output
"""
from ...errors import MetajitValueError
from ...math_ops import binary, unary
from ...reductions import norm
from ..module import Parameter
from .norm_hooks import add_norm_hook, normalisable_parameter, remove_norm_hook


def norm_except_dim(v, dim):
    """The 2-norm of ``v`` over every dimension but ``dim``, keeping the reduced ones as 1
    (one norm per slice along ``dim``); over the whole of ``v`` when ``dim`` is None or
    -1 (PyTorch's meaning of -1 here), a 0-d Var."""
    if dim is None or dim == -1:
        return norm(v)
    if not -v.ndim <= dim < v.ndim:
        raise MetajitValueError(f"weight_norm: dim {dim} is out of range for a weight of shape {tuple(v.shape)}")
    dim %= v.ndim
    axes = tuple(k for k in range(v.ndim) if k != dim)
    return norm(v, 2, axes, keepdim=True) if axes else unary("abs", v)


def normalised_weight(g, v, dim):
    """``v * (g / norm_except_dim(v, dim))``: the weight of magnitudes ``g`` along ``dim``
    and directions ``v``."""
    return binary("mul", v, binary("div", g, norm_except_dim(v, dim)))


class _WeightNormHook:
    """The forward pre-hook computing ``module.<name>`` from ``<name>_g`` and ``<name>_v``."""

    def __init__(self, name, dim):
        self.name, self.dim = name, dim

    def compute_weight(self, module):
        """The weight from the module's current magnitude and direction."""
        return normalised_weight(getattr(module, self.name + "_g"), getattr(module, self.name + "_v"), self.dim)

    def __call__(self, module, inputs):
        module.__dict__[self.name] = self.compute_weight(module)


def weight_norm(module, name="weight", dim=0):
    """Replace the parameter ``name`` of ``module`` by ``<name>_g`` (its norms over every
    dimension but ``dim``; over all of it when ``dim`` is None) and ``<name>_v`` (the
    parameter itself), the weight recomputed from them before each forward. Returns
    ``module``."""
    weight = normalisable_parameter(module, name, "weight_norm")
    magnitude = norm_except_dim(weight, dim).detach()  # (checks dim before the module changes)
    hook = _WeightNormHook(name, dim)
    add_norm_hook(module, name, hook, "weight_norm")
    del module._parameters[name]
    setattr(module, name + "_g", Parameter(magnitude, weight.requires_grad))
    setattr(module, name + "_v", Parameter(weight.detach(), weight.requires_grad))
    hook(module, ())
    return module


def remove_weight_norm(module, name="weight"):
    """Undo `weight_norm`: ``name`` becomes one parameter again, holding the current
    weight. Returns ``module``."""
    hook = remove_norm_hook(module, name, "weight_norm")
    direction = getattr(module, name + "_v")
    weight = Parameter(hook.compute_weight(module).detach(), direction.requires_grad)
    module.__dict__.pop(name, None)
    delattr(module, name + "_g")
    delattr(module, name + "_v")
    setattr(module, name, weight)
    return module
