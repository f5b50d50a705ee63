"""``metajit.nn``: modules, layers, activations and losses (Jittor / PyTorch names)."""
from . import functional
from .layers import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, Dropout, ELU, Embedding, Flatten,
                     GELU, Identity, KLDivLoss, L1Loss, LeakyReLU, Linear, LogSoftmax, Mish, MSELoss,
                     NLLLoss, PReLU, ReLU, ReLU6, Relu, Sigmoid, SiLU, SmoothL1Loss, Softmax,
                     Softplus, Tanh)
from .module import Module, ModuleDict, ModuleList, Parameter, ParameterList, Sequential
from ..optim import clip_grad_norm_

utils = type("utils", (), {"clip_grad_norm_": staticmethod(clip_grad_norm_)})
