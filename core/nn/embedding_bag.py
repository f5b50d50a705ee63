"""PyTorch's ``EmbeddingBag`` and ``F.embedding_bag``: the sums, means or maxima of bags
of embedding rows, without the (bags, bag size, features) tensor in between. Bags are
the rows of a 2-d index Var, or runs of a 1-d one starting at ``offsets``. Example::

    bag = nn.EmbeddingBag(1000, 16, mode="mean")
    bag(jt.array([3, 7, 7, 1, 4]), jt.array([0, 2]))   # two bags: [3, 7] and [7, 1, 4]
"""
from ..creation import arange, zeros
from ..errors import MetajitShapeError, MetajitValueError
from ..ir import dtypes
from ..math_ops import binary, where
from ..var import Var
from .functional import embedding
from .layers import LookupTable

MODES = ("sum", "mean", "max")


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
                  sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """The ``mode`` ("sum", "mean" or "max") of each bag of rows of ``weight``, as
    ``torch.nn.functional.embedding_bag``: a 2-d ``input`` holds one bag per row; a 1-d
    one is cut at ``offsets`` (the first 0; with ``include_last_offset`` the last one is
    the end of the last bag). Entries equal to ``padding_idx`` belong to no bag; an empty
    bag gives zeros. ``per_sample_weights`` (``input``'s shape, mode "sum") scales each
    row. ``max_norm``, ``norm_type`` and ``scale_grad_by_freq`` are `embedding`'s.
    Returns a (bags, embedding_dim) Var."""
    if mode not in MODES:
        raise MetajitValueError(f"embedding_bag: mode must be 'sum', 'mean' or 'max', got {mode!r}")
    if per_sample_weights is not None and mode != "sum":
        raise MetajitValueError(f"embedding_bag: per_sample_weights is only supported for mode='sum' "
                                f"(got mode={mode!r})")
    if not isinstance(input, Var) or not dtypes.is_integer(input.dtype):
        raise MetajitValueError("embedding_bag: input must be a Var of integer indices")
    bag_of, bags = _bags(input, offsets, include_last_offset)
    indices = input.reshape(-1)
    rows = embedding(indices, weight, None, max_norm, norm_type, scale_grad_by_freq, sparse)
    if padding_idx is not None:
        padding_idx %= weight.shape[0]
        bag_of = where(binary("eq", indices, padding_idx), bags, bag_of)  # the extra bag, dropped below
    if per_sample_weights is not None:
        if tuple(per_sample_weights.shape) != tuple(input.shape):
            raise MetajitShapeError(f"embedding_bag: per_sample_weights has shape {tuple(per_sample_weights.shape)}; "
                                    f"it needs input's shape {tuple(input.shape)}")
        rows = binary("mul", rows, per_sample_weights.reshape(-1, 1).cast(rows.dtype))
    positions = bag_of.reshape(-1, 1).broadcast_to(*rows.shape)
    empty = zeros(bags + 1, weight.shape[1], dtype=weight.dtype)
    if mode == "max":
        return empty.scatter_reduce(0, positions, rows, "amax", include_self=False)[:bags]
    result = empty.scatter_add(0, positions, rows)[:bags]
    if mode == "mean":
        counts = zeros(bags + 1, dtype=weight.dtype).scatter_add(0, bag_of, 1.0)[:bags]
        result = binary("div", result, binary("maximum", counts, 1.0).reshape(-1, 1))
    return result


def _bags(input, offsets, include_last_offset):
    """``(bag of each entry of the flattened input, number of bags)``."""
    if input.ndim == 2:
        if offsets is not None:
            raise MetajitValueError("embedding_bag: a 2-d input holds one bag per row; offsets must be None")
        bags, size = input.shape
        return arange(bags).reshape(-1, 1).broadcast_to(bags, size).reshape(-1), bags
    if input.ndim != 1:
        raise MetajitShapeError(f"embedding_bag: input must be 1-d (with offsets) or 2-d, got shape "
                                f"{tuple(input.shape)}")
    if offsets is None:
        raise MetajitValueError("embedding_bag: a 1-d input needs offsets (where each bag starts)")
    if not isinstance(offsets, Var):
        offsets = Var(offsets)
    if offsets.ndim != 1 or not dtypes.is_integer(offsets.dtype):
        raise MetajitShapeError(f"embedding_bag: offsets must be a 1-d integer Var, got a {offsets.dtype} "
                                f"of shape {tuple(offsets.shape)}")
    bags = offsets.shape[0] - 1 if include_last_offset else offsets.shape[0]
    if bags < 1:
        raise MetajitShapeError("embedding_bag: include_last_offset needs at least two offsets")
    count = input.shape[0]
    # each bag's start after the first adds one at its offset; a running sum gives each entry's bag
    starts = zeros(count + 1, dtype="int64").scatter_add(0, offsets[1:bags].int64(), 1)
    return starts.cumsum(0)[:count], bags


class EmbeddingBag(LookupTable):
    """A lookup table whose rows are summed, averaged or maxed per bag (`embedding_bag`),
    with PyTorch's arguments; ``weight`` initialised N(0, 1) as PyTorch.

    Example: ``nn.EmbeddingBag(10000, 64, mode="sum")(tokens, offsets)``."""

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                 mode="mean", sparse=False, _weight=None, include_last_offset=False, padding_idx=None,
                 _freeze=False):
        if mode not in MODES:
            raise MetajitValueError(f"EmbeddingBag: mode must be 'sum', 'mean' or 'max', got {mode!r}")
        super().__init__(num_embeddings, embedding_dim, padding_idx, _weight, _freeze)
        self.max_norm, self.norm_type, self.scale_grad_by_freq = max_norm, norm_type, scale_grad_by_freq
        self.mode, self.sparse, self.include_last_offset = mode, sparse, include_last_offset

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
                        mode="mean", sparse=False, include_last_offset=False, padding_idx=None):
        """An EmbeddingBag holding the 2-d ``embeddings`` (not trained when ``freeze``)."""
        return cls(*cls.pretrained_shape(embeddings, "EmbeddingBag"), max_norm, norm_type, scale_grad_by_freq,
                   mode, sparse, embeddings, include_last_offset, padding_idx, _freeze=freeze)

    def execute(self, input, offsets=None, per_sample_weights=None):
        return embedding_bag(input, self.weight, offsets, self.max_norm, self.norm_type, self.scale_grad_by_freq,
                             self.mode, self.sparse, per_sample_weights, self.include_last_offset, self.padding_idx)

    def extra_repr(self):
        options = f", mode={self.mode!r}" + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
        return f"{self.num_embeddings}, {self.embedding_dim}{options}"
