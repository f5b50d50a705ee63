"""``metajit.nn``: modules, layers, activations and losses (Jittor / PyTorch names)."""
from . import functional
from .layers import (Bilinear, CELU, ChannelShuffle, ELU, Embedding, Flatten, GELU, GLU, Hardshrink, Hardsigmoid,
                     Hardswish, Hardtanh, Identity, LeakyReLU, Linear, LogSigmoid, LogSoftmax, Mish, PReLU, ReLU,
                     ReLU6, Relu, RReLU, SELU, Sigmoid, SiLU, Softmax, Softmax2d, Softmin, Softplus, Softshrink,
                     Softsign, Tanh, Tanhshrink, Threshold, Unflatten)
from .losses import (BCELoss, BCEWithLogitsLoss, CosineEmbeddingLoss, CrossEntropyLoss, GaussianNLLLoss,
                     HingeEmbeddingLoss, HuberLoss, KLDivLoss, L1Loss, MarginRankingLoss, MSELoss,
                     MultiLabelMarginLoss, MultiLabelSoftMarginLoss, MultiMarginLoss, NLLLoss, PoissonNLLLoss,
                     SmoothL1Loss, SoftMarginLoss, TripletMarginLoss, TripletMarginWithDistanceLoss)
from .distance import CosineSimilarity, PairwiseDistance
from .ctc_loss import CTCLoss
from .embedding_bag import EmbeddingBag
from .dropout import AlphaDropout, Dropout, Dropout1d, Dropout2d, Dropout3d, FeatureAlphaDropout
from .module import Module, ModuleDict, ModuleList, Parameter, ParameterDict, ParameterList, Sequential
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from . import parallel  # noqa: E402  (``nn.parallel.DistributedDataParallel``)
from .parallel import DataParallel
# Jittor keeps optimisers in nn too
from ..optim import SGD, Adagrad, Adam, AdamW, RMSprop, clip_grad_norm_, clip_grad_value_

from .. import init  # noqa: E402  (PyTorch's ``nn.init``)
from . import utils  # noqa: E402  (PyTorch's ``nn.utils``)
from .conv import (Conv, Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d, conv1d, conv2d,
                   conv3d, conv_transpose1d, conv_transpose2d, conv_transpose3d)
from .pooling import (AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveAvgPool3d, AdaptiveMaxPool1d, AdaptiveMaxPool2d,
                      AdaptiveMaxPool3d, AvgPool1d, AvgPool2d, AvgPool3d, LPPool1d, LPPool2d, LPPool3d, MaxPool1d,
                      MaxPool2d, MaxPool3d, MaxUnpool1d, MaxUnpool2d, MaxUnpool3d, Pool, adaptive_avg_pool1d,
                      adaptive_avg_pool2d, adaptive_avg_pool3d, adaptive_max_pool1d, adaptive_max_pool1d_with_indices,
                      adaptive_max_pool2d, adaptive_max_pool2d_with_indices, adaptive_max_pool3d,
                      adaptive_max_pool3d_with_indices, avg_pool1d, avg_pool2d, avg_pool3d, lp_pool1d, lp_pool2d,
                      lp_pool3d, max_pool1d, max_pool1d_with_indices, max_pool2d, max_pool2d_with_indices, max_pool3d,
                      max_pool3d_with_indices, max_unpool1d, max_unpool2d, max_unpool3d)
from .normalization import (BatchNorm, BatchNorm1d, BatchNorm2d, BatchNorm3d, GroupNorm, InstanceNorm1d,
                            InstanceNorm2d, InstanceNorm3d, LayerNorm, LocalResponseNorm, RMSNorm, SyncBatchNorm)
from .resampling import (CircularPad1d, CircularPad2d, CircularPad3d, ConstantPad1d, ConstantPad2d, ConstantPad3d,
                         PixelShuffle, PixelUnshuffle, ReflectionPad1d, ReflectionPad2d, ReflectionPad3d,
                         ReplicationPad1d, ReplicationPad2d, ReplicationPad3d, Upsample, ZeroPad1d, ZeroPad2d,
                         ZeroPad3d, interpolate, pixel_shuffle, pixel_unshuffle)
from .attention import MultiheadAttention, multi_head_attention_forward, scaled_dot_product_attention
from .transformer import (Transformer, TransformerDecoder, TransformerDecoderLayer, TransformerEncoder,
                          TransformerEncoderLayer)
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

# PyTorch's ``F`` also holds these (defined beside their layers; functional.py imports the older ones)
for _name in ("conv3d", "conv_transpose1d", "conv_transpose3d", "adaptive_avg_pool1d", "adaptive_avg_pool3d",
              "adaptive_max_pool1d", "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices",
              "adaptive_max_pool3d", "adaptive_max_pool3d_with_indices", "avg_pool1d", "avg_pool3d", "lp_pool1d",
              "lp_pool2d", "lp_pool3d", "max_pool1d", "max_pool1d_with_indices", "max_pool2d_with_indices",
              "max_pool3d", "max_pool3d_with_indices", "max_unpool1d", "max_unpool2d", "max_unpool3d",
              "pixel_shuffle", "pixel_unshuffle", "multi_head_attention_forward", "scaled_dot_product_attention"):
    setattr(functional, _name, globals()[_name])
del _name
