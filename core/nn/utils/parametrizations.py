"""PyTorch's ``torch.nn.utils.parametrizations``: `weight_norm` and `spectral_norm` as
parametrizations (`parametrize.register_parametrization`), with PyTorch's state-dict keys
(``parametrizations.weight.original0`` / ``original1`` for the magnitude and direction;
``parametrizations.weight.original`` and ``parametrizations.weight.0._u`` / ``_v`` for
the spectral norm). Example::

    layer = weight_norm(nn.Linear(20, 40))
    layer.parametrizations.weight.original0.shape   # (40, 1)
"""
from ...flags import no_grad
from ...math_ops import binary
from ..functional import normalize
from ..module import Module
from .parametrize import register_parametrization
from .spectral_norm import check_iterations, first_vectors, output_dim, spectral_norm_of, weight_matrix
from .weight_norm import norm_except_dim, normalised_weight


class _WeightNorm(Module):
    """The weight of a magnitude and a direction (``forward(g, v)``), and back."""

    def __init__(self, dim=0):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def execute(self, weight_g, weight_v):
        return normalised_weight(weight_g, weight_v, self.dim)

    def right_inverse(self, weight):
        """``(magnitude, direction)`` of ``weight``."""
        return norm_except_dim(weight, self.dim), weight


class _SpectralNorm(Module):
    """A weight divided by its spectral norm; the singular-vector estimates ``_u`` and
    ``_v`` are buffers, refined before each training forward."""

    def __init__(self, weight, n_power_iterations=1, dim=0, eps=1e-12):
        super().__init__()
        check_iterations(n_power_iterations, "spectral_norm")
        self.dim = dim
        self.eps, self.n_power_iterations = eps, n_power_iterations
        if weight.ndim > 1:
            with no_grad():
                matrix = weight_matrix(weight, self.dim).detach()
                u, v = first_vectors(matrix, eps, weight.dtype)
                self.register_buffer("_u", u.detach())
                self.register_buffer("_v", v.detach())
                self._power_method(matrix, 15)

    def _power_method(self, matrix, iterations):
        u, v = self._u, self._v
        for _ in range(iterations):
            u = normalize(matrix @ v, dim=0, eps=self.eps)
            v = normalize(matrix.transpose() @ u, dim=0, eps=self.eps)
        self._u.assign(u)
        self._v.assign(v)

    def execute(self, weight):
        if weight.ndim == 1:
            return normalize(weight, dim=0, eps=self.eps)
        matrix = weight_matrix(weight, self.dim)
        if self.training:
            with no_grad():
                self._power_method(matrix.detach(), self.n_power_iterations)
        return binary("div", weight, spectral_norm_of(matrix, self._u.detach(), self._v.detach()))

    def right_inverse(self, value):
        """``value`` as it is: the stored weight is taken to be normalised already."""
        return value


def weight_norm(module, name="weight", dim=0):
    """Parametrize ``module.<name>`` as ``g * v / ||v||`` (norms over every dimension but
    ``dim``; over all of it when ``dim`` is None), storing ``g`` and ``v``. Returns
    ``module``."""
    register_parametrization(module, name, _WeightNorm(dim), unsafe=True)
    return module


def spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
    """Parametrize ``module.<name>`` as itself divided by its spectral norm (a vector is
    normalised instead); ``dim``: the output dimension, by default 1 for transposed
    convolutions and 0 otherwise. Returns ``module``."""
    weight = getattr(module, name)
    register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, output_dim(module, weight, dim),
                                                         eps))
    return module
