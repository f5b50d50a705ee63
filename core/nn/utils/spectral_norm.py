"""PyTorch's ``torch.nn.utils.spectral_norm`` / ``remove_spectral_norm``: a weight divided
by its largest singular value (Miyato et al., 2018), estimated by power iteration. The
parameter becomes ``<name>_orig``; the buffers ``<name>_u`` and ``<name>_v`` hold the
singular-vector estimates, refined by ``n_power_iterations`` steps before each training
forward and used as they are in evaluation. The state-dict keys are PyTorch's.
`parametrizations.spectral_norm` is the same normalisation as a parametrization.
Example::

    critic = spectral_norm(nn.Linear(20, 40))
    critic.weight_u.shape   # (40,)
"""
from ...creation import randn
from ...errors import MetajitValueError
from ...flags import no_grad
from ...math_ops import binary
from ...reductions import sum as total
from ..functional import normalize
from ..module import Parameter
from .norm_hooks import add_norm_hook, normalisable_parameter, remove_norm_hook


def weight_matrix(weight, dim):
    """``weight`` as a matrix whose rows are its slices along ``dim``."""
    if dim != 0:
        weight = weight.permute(dim, *[k for k in range(weight.ndim) if k != dim])
    return weight.reshape(weight.shape[0], -1)


def first_vectors(matrix, eps, dtype):
    """Random unit vectors ``(u, v)`` of the matrix's row and column counts."""
    rows, columns = matrix.shape
    return (normalize(randn(rows, dtype=dtype), dim=0, eps=eps),
            normalize(randn(columns, dtype=dtype), dim=0, eps=eps))


def spectral_norm_of(matrix, u, v):
    """``u . (matrix v)``: the largest singular value once ``u`` and ``v`` have converged
    (differentiable with respect to ``matrix``; the vectors are constants)."""
    return total(binary("mul", u, matrix @ v))


def output_dim(module, weight, dim):
    """``dim`` as a non-negative dimension of ``weight``; by default that of the output
    channels: 1 for a transposed convolution, else 0."""
    if dim is None:
        return 1 if type(module).__name__.startswith("ConvTranspose") else 0
    if not -weight.ndim <= dim < max(weight.ndim, 1):
        raise MetajitValueError(f"spectral_norm: dim {dim} is out of range for a weight of shape "
                                f"{tuple(weight.shape)}")
    return dim % max(weight.ndim, 1)


def check_iterations(n_power_iterations, what):
    """Refuse a power-iteration count below 1."""
    if n_power_iterations <= 0:
        raise MetajitValueError(f"{what}: n_power_iterations must be positive, got {n_power_iterations}")


class _SpectralNormHook:
    """The forward pre-hook computing ``module.<name>`` from ``<name>_orig``."""

    def __init__(self, name, n_power_iterations, dim, eps):
        self.name, self.n_power_iterations, self.dim, self.eps = name, n_power_iterations, dim, eps

    def compute_weight(self, module, do_power_iteration):
        """The weight divided by its spectral norm, after refining the buffers' vectors
        in place when ``do_power_iteration``."""
        weight = getattr(module, self.name + "_orig")
        u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        matrix = weight_matrix(weight, self.dim)
        if do_power_iteration:
            with no_grad():
                constant = matrix.detach()
                new_u, new_v = u, v
                for _ in range(self.n_power_iterations):
                    new_v = normalize(constant.transpose() @ new_u, dim=0, eps=self.eps)
                    new_u = normalize(constant @ new_v, dim=0, eps=self.eps)
                u.assign(new_u)
                v.assign(new_v)
        return binary("div", weight, spectral_norm_of(matrix, u.detach(), v.detach()))

    def __call__(self, module, inputs):
        module.__dict__[self.name] = self.compute_weight(module, do_power_iteration=module.training)


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """Divide the parameter ``name`` of ``module`` by its spectral norm before each forward
    (``dim``: the output dimension, by default 1 for transposed convolutions and 0
    otherwise). Returns ``module``."""
    check_iterations(n_power_iterations, "spectral_norm")
    weight = normalisable_parameter(module, name, "spectral_norm")
    dim = output_dim(module, weight, dim)
    hook = _SpectralNormHook(name, n_power_iterations, dim, eps)
    add_norm_hook(module, name, hook, "spectral_norm")
    with no_grad():
        u, v = first_vectors(weight_matrix(weight, dim), eps, weight.dtype)
    del module._parameters[name]
    setattr(module, name + "_orig", Parameter(weight.detach(), weight.requires_grad))
    module.__dict__[name] = weight.detach()
    module.register_buffer(name + "_u", u.detach())
    module.register_buffer(name + "_v", v.detach())
    return module


def remove_spectral_norm(module, name="weight"):
    """Undo `spectral_norm`: ``name`` becomes one parameter again, holding the weight
    divided by its current spectral-norm estimate. Returns ``module``."""
    hook = remove_norm_hook(module, name, "spectral_norm")
    original = getattr(module, name + "_orig")
    with no_grad():
        weight = Parameter(hook.compute_weight(module, do_power_iteration=False).detach(), original.requires_grad)
    module.__dict__.pop(name, None)
    for suffix in ("_orig", "_u", "_v"):
        delattr(module, name + suffix)
    setattr(module, name, weight)
    return module
