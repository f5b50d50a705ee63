"""Layers built from meta-ops: `Linear`, `Identity`, `Flatten`, `Dropout`, `Embedding`,
`ChannelShuffle`, activation modules and loss modules (thin wrappers over
`metajit.nn.functional`)."""
import math

from .. import creation, init
from ..math_ops import where
from . import functional as F
from .module import Module, functional_module


class Linear(Module):
    """``y = x @ weight.T + bias`` with PyTorch's default initialisation.

    ``weight`` is (out_features, in_features), so PyTorch state dicts load as they are.
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.kaiming_uniform_(creation.empty(out_features, in_features), a=math.sqrt(5))
        if bias:
            bound = 1 / math.sqrt(in_features) if in_features else 0
            self.bias = init.uniform_(creation.empty(out_features), -bound, bound)
        else:
            self.bias = None

    def execute(self, x):
        return F.linear(x, self.weight, self.bias)

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


class Dropout(Module):
    """Zeroes elements with probability ``p`` while training, scaling the rest by ``1/(1-p)``
    (PyTorch's ``inplace`` is accepted and ignored: results are new Vars)."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = p

    def execute(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Embedding(Module):
    """A lookup table: ``weight[indices]``, weight initialised N(0, 1) as PyTorch."""

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        self.weight = init.normal_(creation.empty(num_embeddings, embedding_dim))

    def execute(self, indices):
        return self.weight[indices]


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
Sigmoid = functional_module("Sigmoid", lambda x: x.sigmoid())
Tanh = functional_module("Tanh", lambda x: x.tanh())
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
        self.weight = creation.full((num_parameters,), float(init), "float32")

    def execute(self, x):
        weight = self.weight
        if weight.shape[0] > 1:
            weight = weight.reshape([1, -1] + [1] * (x.ndim - 2))
        return where(x > 0.0, x, x * weight)


def _loss(name, function, settings):
    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        values = dict(zip(settings, args))
        values.update(kwargs)
        self.settings = values

    def execute(self, output, target):
        return function(output, target, **self.settings)

    return type(name, (Module,), {"__init__": __init__, "execute": execute,
                                  "__doc__": f"Module form of ``{function.__name__}``."})


MSELoss = _loss("MSELoss", F.mse_loss, ("reduction",))
L1Loss = _loss("L1Loss", F.l1_loss, ("reduction",))
SmoothL1Loss = _loss("SmoothL1Loss", F.smooth_l1_loss, ("reduction", "beta"))
BCELoss = _loss("BCELoss", F.binary_cross_entropy, ("weight", "reduction"))
BCEWithLogitsLoss = _loss("BCEWithLogitsLoss", F.binary_cross_entropy_with_logits,
                          ("weight", "reduction", "pos_weight"))
CrossEntropyLoss = _loss("CrossEntropyLoss", F.cross_entropy,
                         ("weight", "ignore_index", "reduction", "label_smoothing"))
NLLLoss = _loss("NLLLoss", F.nll_loss, ("weight", "ignore_index", "reduction"))
KLDivLoss = _loss("KLDivLoss", F.kl_div, ("reduction", "log_target"))
