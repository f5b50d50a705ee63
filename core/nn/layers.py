"""Layers built from meta-ops: `Linear`, `Bilinear`, `Identity`, `Flatten`, `Unflatten`,
`Embedding`, `ChannelShuffle` and activation modules (thin wrappers over
`metajit.nn.functional`)."""
import math

from .. import creation, init
from ..errors import MetajitIndexError, MetajitShapeError
from ..math_ops import where
from . import functional as F
from .module import Module, functional_module, state_entries


class Linear(Module):
    """``y = x @ weight.T + bias`` with PyTorch's default initialisation.

    ``weight`` is (out_features, in_features), so PyTorch state dicts load as they are.
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = creation.empty(out_features, in_features)
        self.bias = creation.empty(out_features) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the parameters again, as at construction (`init.fan_in_uniform_`)."""
        init.fan_in_uniform_(self.weight, self.bias)

    def execute(self, x):
        return F.linear(x, *state_entries(self, "_parameters", ("weight", "bias")))

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Identity(Module):
    """Returns its input."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def execute(self, x):
        return x


class Flatten(Module):
    """Flattens dims ``start_dim..end_dim`` (default: all but the batch dim)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def execute(self, x):
        return x.flatten(self.start_dim, self.end_dim)


class LookupTable(Module):
    """The table of `Embedding` and `EmbeddingBag`: ``weight`` of shape ``(num_embeddings,
    embedding_dim)``, initialised N(0, 1) as PyTorch with the ``padding_idx`` row zero, or
    taken from ``_weight``; not trained when ``_freeze``."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, _weight=None, _freeze=False):
        super().__init__()
        name = type(self).__name__
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise MetajitIndexError(f"{name}: padding_idx {padding_idx} is out of range for {num_embeddings} "
                                        f"embeddings; give one in [-{num_embeddings}, {num_embeddings})")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = creation.empty(num_embeddings, embedding_dim).requires_grad_(not _freeze)
            self.reset_parameters()
        elif tuple(_weight.shape) != (num_embeddings, embedding_dim):
            raise MetajitShapeError(f"{name}: _weight shape {tuple(_weight.shape)} is not "
                                    f"({num_embeddings}, {embedding_dim})")
        else:
            self.weight = _weight.detach().requires_grad_(not _freeze)

    def reset_parameters(self):
        """Draw the table again from N(0, 1), the ``padding_idx`` row zero, as at construction."""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            rows = creation.arange(self.num_embeddings).reshape(-1, 1)
            self.weight.assign(where(rows == self.padding_idx, 0.0, self.weight))

    @staticmethod
    def pretrained_shape(embeddings, name):
        """The ``(num_embeddings, embedding_dim)`` of the 2-d ``embeddings`` given to
        ``from_pretrained``."""
        if embeddings.ndim != 2:
            raise MetajitShapeError(f"{name}.from_pretrained: expected 2-d embeddings, got shape "
                                    f"{tuple(embeddings.shape)}")
        return tuple(embeddings.shape)


class Embedding(LookupTable):
    """A lookup table, `F.embedding` of ``weight`` (initialised N(0, 1) as PyTorch, the
    ``padding_idx`` row zero), with PyTorch's options.

    Example: ``nn.Embedding(10000, 256, padding_idx=0)(tokens)``."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False):
        super().__init__(num_embeddings, embedding_dim, padding_idx, _weight, _freeze)
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, sparse=False):
        """An Embedding holding the 2-d ``embeddings`` (not trained when ``freeze``).

        Example: ``nn.Embedding.from_pretrained(vectors, freeze=False)``."""
        return cls(*cls.pretrained_shape(embeddings, "Embedding"), padding_idx, max_norm, norm_type,
                   scale_grad_by_freq, sparse, _weight=embeddings, _freeze=freeze)

    def execute(self, indices):
        return F.embedding(indices, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def extra_repr(self):
        options = "".join(f", {name}={getattr(self, name)}" for name in ("padding_idx", "max_norm")
                          if getattr(self, name) is not None)
        return f"{self.num_embeddings}, {self.embedding_dim}{options}"


class Bilinear(Module):
    """``y = x1 @ weight @ x2 + bias`` per output feature (`F.bilinear`), initialised
    uniformly in ``+-1/sqrt(in1_features)`` as PyTorch.

    Example: ``nn.Bilinear(20, 30, 40)(a, b)`` for (N, 20) ``a`` and (N, 30) ``b``."""

    def __init__(self, in1_features, in2_features, out_features, bias=True):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        self.weight = creation.empty(out_features, in1_features, in2_features)
        self.bias = creation.empty(out_features) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the parameters again, uniformly within ``1 / sqrt(in1_features)``, as at construction."""
        bound = 1 / math.sqrt(self.in1_features) if self.in1_features else 0
        for parameter in (self.weight, self.bias):
            if parameter is not None:
                init.uniform_(parameter, -bound, bound)

    def execute(self, x1, x2):
        return F.bilinear(x1, x2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


class Unflatten(Module):
    """Splits dim ``dim`` into ``unflattened_size`` (one entry may be -1), the inverse of
    `Flatten`. Example: ``nn.Unflatten(1, (2, 5))`` maps (N, 10) to (N, 2, 5)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def execute(self, x):
        dim = self.dim % x.ndim
        return x.reshape(tuple(x.shape[:dim]) + self.unflattened_size + tuple(x.shape[dim + 1:]))

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Softmax2d(Module):
    """Softmax over the channels (dim -3) of (N, C, H, W) or (C, H, W) inputs.

    Example: ``nn.Softmax2d()(segmentation_logits)``."""

    def execute(self, x):
        if x.ndim not in (3, 4):
            raise MetajitShapeError(f"Softmax2d expects a (C, H, W) or (N, C, H, W) input, got shape {tuple(x.shape)}")
        return F.softmax(x, -3)


ChannelShuffle = functional_module("ChannelShuffle", F.channel_shuffle, ("groups",))
ReLU = functional_module("ReLU", F.relu, ("inplace",))
Relu = ReLU
ReLU6 = functional_module("ReLU6", F.relu6, ("inplace",))
LeakyReLU = functional_module("LeakyReLU", F.leaky_relu, ("negative_slope", "inplace"))
Hardtanh = functional_module("Hardtanh", F.hardtanh, ("min_val", "max_val", "inplace"))
Hardsigmoid = functional_module("Hardsigmoid", F.hardsigmoid, ("inplace",))
Hardswish = functional_module("Hardswish", F.hardswish, ("inplace",))
SELU = functional_module("SELU", F.selu, ("inplace",))
CELU = functional_module("CELU", F.celu, ("alpha", "inplace"))
Softsign = functional_module("Softsign", F.softsign)
Tanhshrink = functional_module("Tanhshrink", F.tanhshrink)
Threshold = functional_module("Threshold", F.threshold, ("threshold", "value", "inplace"))
Hardshrink = functional_module("Hardshrink", F.hardshrink, ("lambd",))
Softshrink = functional_module("Softshrink", F.softshrink, ("lambd",))
LogSigmoid = functional_module("LogSigmoid", F.logsigmoid)
Softmin = functional_module("Softmin", F.softmin, ("dim",))
GLU = functional_module("GLU", F.glu, ("dim",))
ELU = functional_module("ELU", F.elu, ("alpha", "inplace"))
GELU = functional_module("GELU", F.gelu, ("approximate",))
SiLU = functional_module("SiLU", F.silu, ("inplace",))
Sigmoid = functional_module("Sigmoid", F.sigmoid)
Tanh = functional_module("Tanh", F.tanh)
Softmax = functional_module("Softmax", F.softmax, ("dim",))
LogSoftmax = functional_module("LogSoftmax", F.log_softmax, ("dim",))
Softplus = functional_module("Softplus", F.softplus, ("beta", "threshold"))
Mish = functional_module("Mish", F.mish, ("inplace",))


class RReLU(Module):
    """Randomised leaky ReLU (`F.rrelu`): random slopes in training, their mean in eval."""

    def __init__(self, lower=1.0 / 8, upper=1.0 / 3, inplace=False):
        super().__init__()
        self.lower, self.upper = lower, upper

    def execute(self, x):
        return F.rrelu(x, self.lower, self.upper, self.training)

    def extra_repr(self):
        return f"lower={self.lower}, upper={self.upper}"


class PReLU(Module):
    """Leaky ReLU with a learned slope (one, or one per channel of dim 1)."""

    def __init__(self, num_parameters=1, init=0.25):
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = creation.full((num_parameters,), float(init))

    def reset_parameters(self):
        """Every slope back to ``init``."""
        self.weight.assign(float(self.init))

    def execute(self, x):
        return F.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.weight.shape[0]}"
