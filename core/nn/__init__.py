"""``metajit.nn``: modules, layers, activations and losses (Jittor / PyTorch names)."""
from . import functional
from .layers import (BCELoss, BCEWithLogitsLoss, CELU, ChannelShuffle, CrossEntropyLoss, Dropout, ELU, Embedding,
                     Flatten, GELU, GLU, Hardshrink, Hardsigmoid, Hardswish, Hardtanh, Identity, LogSigmoid,
                     RReLU, SELU, Softmin, Softshrink, Softsign, Tanhshrink, Threshold, KLDivLoss, L1Loss, LeakyReLU, Linear, LogSoftmax, Mish, MSELoss,
                     NLLLoss, PReLU, ReLU, ReLU6, Relu, Sigmoid, SiLU, SmoothL1Loss, Softmax,
                     Softplus, Tanh)
from .module import Module, ModuleDict, ModuleList, Parameter, ParameterDict, ParameterList, Sequential
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from . import parallel  # noqa: E402  (``nn.parallel.DistributedDataParallel``)
from .parallel import DataParallel
# Jittor keeps optimisers in nn too
from ..optim import SGD, Adagrad, Adam, AdamW, RMSprop, clip_grad_norm_, clip_grad_value_

from .. import init  # noqa: E402  (PyTorch's ``nn.init``)
utils = type("utils", (), {"clip_grad_norm_": staticmethod(clip_grad_norm_),
                           "clip_grad_value_": staticmethod(clip_grad_value_)})
from .conv import Conv, Conv1d, Conv2d, ConvTranspose2d, conv1d, conv2d, conv_transpose2d
from .pooling import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d, Pool,
                      adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, max_pool2d)
from .normalization import BatchNorm, BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, SyncBatchNorm
from .resampling import (ConstantPad2d, PixelShuffle, ReflectionPad2d, ReplicationPad2d, Upsample,
                         ZeroPad2d, interpolate)
from .functional import (binary_cross_entropy, binary_cross_entropy_with_logits, channel_shuffle,
                         celu, cross_entropy, dropout, elu, gelu, glu, hardshrink, hardsigmoid, hardswish,
                         hardtanh, kl_div, logsigmoid, rrelu, selu, softmin, softshrink, softsign, tanhshrink,
                         threshold, l1_loss, leaky_relu, linear, log_softmax,
                         mish, mse_loss, nll_loss, relu, relu6, silu, smooth_l1_loss, softmax, softplus)
from .grid_sample import affine_grid, grid_sample
from .unfold import Fold, Unfold, fold, unfold
from ..math_ops import matmul  # Jittor: nn.matmul, nn.bmm, nn.baddbmm
from ..tensor_ops import baddbmm, bmm

cross_entropy_loss = cross_entropy
bce_loss = binary_cross_entropy
