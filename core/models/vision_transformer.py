"""Vision Transformer (Dosovitskiy et al. 2021): an image cut into patches, each a token,
through a pre-norm Transformer encoder; the class token's output is classified."""
import collections
import functools
import math

from .. import init, nn
from ..creation import zeros
from ..errors import MetajitValueError
from ..shape_ops import concat
from .blocks import conv_norm_activation
from .ops import MLP
from .pretrained import model_function

__all__ = ["VisionTransformer", "ConvStemConfig", "MLPBlock", "EncoderBlock", "Encoder", "vit_b_16",
           "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14"]

ConvStemConfig = collections.namedtuple("ConvStemConfig", "out_channels kernel_size stride norm_layer activation_layer",
                                        defaults=(nn.BatchNorm2d, nn.ReLU))
ConvStemConfig.__doc__ = """One convolution of a ViT's convolutional stem (torchvision's
``ConvStemConfig``): ``out_channels``, ``kernel_size``, ``stride``, ``norm_layer``,
``activation_layer``."""


class MLPBlock(MLP):
    """The encoder's feed-forward block: ``in_dim -> mlp_dim -> in_dim`` with GELU, Xavier
    weights and N(0, 1e-6) biases, as torchvision's."""

    def __init__(self, in_dim, mlp_dim, dropout):
        super().__init__(in_dim, [mlp_dim, in_dim], activation_layer=nn.GELU, dropout=dropout)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                init.xavier_uniform_(module.weight)
                init.normal_(module.bias, std=1e-6)


_layer_norm = functools.partial(nn.LayerNorm, eps=1e-6)


class EncoderBlock(nn.Module):
    """Pre-norm self-attention and MLP, each with a residual connection (children ``ln_1``,
    ``self_attention``, ``ln_2``, ``mlp`` as torchvision's)."""

    def __init__(self, num_heads, hidden_dim, mlp_dim, dropout, attention_dropout, norm_layer=_layer_norm):
        super().__init__()
        self.num_heads = num_heads
        self.ln_1 = norm_layer(hidden_dim)
        self.self_attention = nn.MultiheadAttention(hidden_dim, num_heads, dropout=attention_dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.ln_2 = norm_layer(hidden_dim)
        self.mlp = MLPBlock(hidden_dim, mlp_dim, dropout)

    def execute(self, x):
        if x.ndim != 3:
            raise MetajitValueError(f"EncoderBlock expects (batch_size, seq_length, hidden_dim), got {tuple(x.shape)}")
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + self.dropout(y)
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    """Learnt position embeddings added to the tokens, ``num_layers`` `EncoderBlock` s
    (``layers.encoder_layer_{i}``) and a final LayerNorm ``ln``."""

    def __init__(self, seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout, attention_dropout,
                 norm_layer=_layer_norm):
        super().__init__()
        self.pos_embedding = nn.Parameter(zeros((1, seq_length, hidden_dim)))
        init.normal_(self.pos_embedding, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.Sequential(collections.OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout, attention_dropout, norm_layer))
            for i in range(num_layers)))
        self.ln = norm_layer(hidden_dim)

    def execute(self, x):
        if x.ndim != 3:
            raise MetajitValueError(f"Encoder expects (batch_size, seq_length, hidden_dim), got {tuple(x.shape)}")
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    """ViT with torchvision's arguments and parameter names: ``image_size`` (square,
    divisible by ``patch_size``), encoder depth ``num_layers``, ``num_heads``,
    ``hidden_dim``, ``mlp_dim``, ``dropout``, ``attention_dropout``, ``num_classes``,
    ``representation_size`` (a tanh pre-logits layer), ``norm_layer`` and
    ``conv_stem_configs`` (a convolutional stem instead of the patch convolution).

    Example: ``VisionTransformer(32, 8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32)``.
    """

    def __init__(self, image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim, dropout=0.0,
                 attention_dropout=0.0, num_classes=1000, representation_size=None, norm_layer=_layer_norm,
                 conv_stem_configs=None):
        super().__init__()
        if image_size % patch_size:
            raise MetajitValueError(f"VisionTransformer: image_size {image_size} is not divisible by "
                                    f"patch_size {patch_size}")
        self.image_size, self.patch_size, self.hidden_dim, self.mlp_dim = image_size, patch_size, hidden_dim, mlp_dim
        self.attention_dropout, self.dropout, self.num_classes = attention_dropout, dropout, num_classes
        self.representation_size, self.norm_layer = representation_size, norm_layer
        if conv_stem_configs is not None:
            stem, channels = nn.Sequential(), 3
            for index, config in enumerate(conv_stem_configs):
                stem.add_module(f"conv_bn_relu_{index}", conv_norm_activation(
                    channels, config.out_channels, config.kernel_size, config.stride,
                    activation=config.activation_layer, norm_layer=config.norm_layer))
                channels = config.out_channels
            stem.add_module("conv_last", nn.Conv2d(channels, hidden_dim, 1))
            self.conv_proj = stem
            init.normal_(stem.conv_last.weight, 0.0, math.sqrt(2.0 / hidden_dim))
            init.zeros_(stem.conv_last.bias)
        else:
            self.conv_proj = nn.Conv2d(3, hidden_dim, patch_size, stride=patch_size)
            init.trunc_normal_(self.conv_proj.weight, std=math.sqrt(1 / (3 * patch_size * patch_size)))
            init.zeros_(self.conv_proj.bias)
        self.seq_length = (image_size // patch_size) ** 2 + 1
        self.class_token = nn.Parameter(zeros((1, 1, hidden_dim)))
        self.encoder = Encoder(self.seq_length, num_layers, num_heads, hidden_dim, mlp_dim, dropout,
                               attention_dropout, norm_layer)
        heads = collections.OrderedDict()
        if representation_size is None:
            heads["head"] = nn.Linear(hidden_dim, num_classes)
        else:
            heads["pre_logits"] = nn.Linear(hidden_dim, representation_size)
            heads["act"] = nn.Tanh()
            heads["head"] = nn.Linear(representation_size, num_classes)
            init.trunc_normal_(heads["pre_logits"].weight, std=math.sqrt(1 / hidden_dim))
            init.zeros_(heads["pre_logits"].bias)
        init.zeros_(heads["head"].weight)
        init.zeros_(heads["head"].bias)
        self.heads = nn.Sequential(heads)

    def _process_input(self, x):
        """(N, 3, S, S) images as (N, patches, hidden_dim) tokens."""
        n, _, height, width = x.shape
        if (height, width) != (self.image_size, self.image_size):
            raise MetajitValueError(f"VisionTransformer was built for {self.image_size}x{self.image_size} images, "
                                    f"got {height}x{width}")
        x = self.conv_proj(x)
        return x.reshape(n, self.hidden_dim, -1).permute(0, 2, 1)

    def execute(self, x):
        x = self._process_input(x)
        tokens = concat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.heads(self.encoder(tokens)[:, 0])


def _vit_function(name, patch_size, num_layers, num_heads, hidden_dim, mlp_dim, files, sizes):
    """The public builder of one ViT size; ``sizes``: the image size each weights name was trained at."""
    def construct(image_size=224, **kwargs):
        return VisionTransformer(image_size=image_size, **kwargs)
    construct.__module__ = __name__
    return model_function(name, files, construct, target="`VisionTransformer`",
                          defaults=dict(patch_size=patch_size, num_layers=num_layers, num_heads=num_heads,
                                        hidden_dim=hidden_dim, mlp_dim=mlp_dim),
                          weights_arguments={weights: {"image_size": size} for weights, size in sizes.items()})


vit_b_16 = _vit_function("vit_b_16", 16, 12, 12, 768, 3072,
                         {"IMAGENET1K_V1": "vit_b_16-c867db91.pth", "IMAGENET1K_SWAG_E2E_V1": "vit_b_16_swag-9ac1b537.pth",
                          "IMAGENET1K_SWAG_LINEAR_V1": "vit_b_16_lc_swag-4e70ced5.pth"},
                         {"IMAGENET1K_V1": 224, "IMAGENET1K_SWAG_E2E_V1": 384, "IMAGENET1K_SWAG_LINEAR_V1": 224})
vit_b_32 = _vit_function("vit_b_32", 32, 12, 12, 768, 3072, {"IMAGENET1K_V1": "vit_b_32-d86f8d99.pth"},
                         {"IMAGENET1K_V1": 224})
vit_l_16 = _vit_function("vit_l_16", 16, 24, 16, 1024, 4096,
                         {"IMAGENET1K_V1": "vit_l_16-852ce7e3.pth", "IMAGENET1K_SWAG_E2E_V1": "vit_l_16_swag-4f3808c9.pth",
                          "IMAGENET1K_SWAG_LINEAR_V1": "vit_l_16_lc_swag-4d563306.pth"},
                         {"IMAGENET1K_V1": 224, "IMAGENET1K_SWAG_E2E_V1": 512, "IMAGENET1K_SWAG_LINEAR_V1": 224})
vit_l_32 = _vit_function("vit_l_32", 32, 24, 16, 1024, 4096, {"IMAGENET1K_V1": "vit_l_32-c7638314.pth"},
                         {"IMAGENET1K_V1": 224})
vit_h_14 = _vit_function("vit_h_14", 14, 32, 16, 1280, 5120,
                         {"IMAGENET1K_SWAG_E2E_V1": "vit_h_14_swag-80465313.pth",
                          "IMAGENET1K_SWAG_LINEAR_V1": "vit_h_14_lc_swag-c1eb923e.pth"},
                         {"IMAGENET1K_SWAG_E2E_V1": 518, "IMAGENET1K_SWAG_LINEAR_V1": 224})
