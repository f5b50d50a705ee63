"""Normalisation layers: BatchNorm1d/2d (running statistics, momentum, eval mode),
LayerNorm, GroupNorm; all from reductions and element-wise meta-ops."""
from .. import creation, distributed
from ..errors import MetajitShapeError, MetajitValueError
from ..flags import no_grad
from ..ir import dtypes, graph
from ..math_ops import binary, cast, unary
from ..optimizer import update_average
from ..shape_ops import concat
from ..var import Var
from . import library
from .module import Module


def _statistics(x, axes, eps):
    """(mean, biased variance, 1 / sqrt(variance + eps)) over ``axes``, kept as size-1 dims.

    Both come from sums over ``d = x - k``, with ``k`` the first element of each reduced
    slice, detached (the shifted-data algorithm): ``mean = k + mean(d)`` and ``variance =
    mean(d**2) - mean(d)**2``. That is the variance for any constant ``k``, so its
    gradients of every order are exact, and a ``k`` drawn from the data keeps the
    difference from cancelling (an offset of 1e3 costs nothing). The two sums read ``x``
    in one pass (`fusion._sibling_reductions`), where the two-pass form reads it twice;
    the gradient sums no full-size value into the shift."""
    first, shifted = _shifted(x, axes)
    shift_mean = shifted.mean(dims=axes, keepdims=True)
    mean = shift_mean if first is None else binary("add", first, shift_mean)
    variance = binary("sub", binary("mul", shifted, shifted).mean(dims=axes, keepdims=True),
                      binary("mul", shift_mean, shift_mean))
    return mean, variance, binary("div", 1.0, unary("sqrt", binary("add", variance, eps)))


def _shifted(x, axes):
    """``(k, x - k)``: ``k`` the first element of each slice over ``axes`` (size-1 dims
    there), detached; ``(None, x)`` when a slice is empty."""
    if any(x.shape[axis] == 0 for axis in axes):
        return None, x
    first = x[tuple(slice(0, 1) if axis in axes else slice(None) for axis in range(x.ndim))].detach()
    return first, binary("sub", x, first)


def _synchronised_statistics(x, axes, eps):
    """`_statistics` over ``axes`` of the batches of every MPI rank together, and the total
    element count per channel (differentiable through the all-reduce).

    Each rank takes its own mean and centred sum of squares from shifted sums (one pass,
    as `_statistics`); one all-reduce of ``count * mean``, ``centred squares + count *
    mean**2`` and the counts, in float64, combines them: the difference with the global
    mean loses nothing to an offset in float64, where float32 sums of ``x`` and ``x**2``
    cancel (inputs around 1e3 lost the variance)."""
    channels = x.shape[1]
    count = x.numel() // channels
    first, shifted = _shifted(x, axes)
    wide = lambda value: cast(value, dtypes.float64)
    shift_sum = wide(shifted.sum(dims=axes))
    local_mean = binary("div", shift_sum, max(count, 1))
    if first is not None:
        local_mean = binary("add", wide(first.reshape(channels)), local_mean)
    centred = binary("sub", wide(binary("mul", shifted, shifted).sum(dims=axes)),
                     binary("div", binary("mul", shift_sum, shift_sum), max(count, 1)))
    weighted = binary("mul", local_mean, float(count))
    counts = creation.full((1,), float(count), dtype=dtypes.float64)
    total = distributed.mpi_all_reduce(
        concat([weighted, binary("add", centred, binary("mul", weighted, local_mean)), counts]), "add")
    total_count = total[2 * channels:]
    mean = binary("div", total[:channels], total_count)
    variance = binary("sub", binary("div", total[channels:2 * channels], total_count), binary("mul", mean, mean))
    mean, variance, total_count = (cast(v, x.dtype) for v in (mean, variance, total_count))
    shape = [1, channels] + [1] * (x.ndim - 2)
    inverse_std = binary("div", 1.0, unary("sqrt", binary("add", variance, eps)))
    return mean.reshape(shape), variance.reshape(shape), inverse_std.reshape(shape), total_count


def _normalise(x, axes, eps):
    mean, variance, inverse_std = _statistics(x, axes, eps)
    return binary("mul", binary("sub", x, mean), inverse_std), mean, variance


def _scale_and_shift(x, scale, shift):
    """``x * scale + shift`` with per-channel ``scale`` and ``shift``: one pass over ``x``,
    whatever the statistics and affine parameters folded into them."""
    return binary("add", binary("mul", x, scale), shift)


class _BatchNorm(Module):
    dims = None
    optional_state = ("num_batches_tracked",)  # PyTorch before 0.4.1 did not save it

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, sync=False,
                 is_train=True):
        super().__init__()
        self.num_features, self.eps, self.momentum, self.sync = num_features, eps, momentum, sync
        self.training = is_train
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = creation.ones(num_features) if affine else None
        self.bias = creation.zeros(num_features) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features))
            self.register_buffer("running_var", creation.ones(num_features))
            self.register_buffer("num_batches_tracked", creation.zeros((), dtype="int64"))

    def execute(self, x):
        if x.ndim not in self.dims or x.shape[1] != self.num_features:
            raise MetajitShapeError(f"{type(self).__name__}({self.num_features}) got input shape {x.shape}")
        axes = (0,) + tuple(range(2, x.ndim))
        shape = [1, self.num_features] + [1] * (x.ndim - 2)
        if self.training or not self.track_running_stats:
            if self.sync and self.training and distributed.in_mpi:
                mean, variance, inverse_std, count = _synchronised_statistics(x, axes, self.eps)
                correction = binary("div", count, binary("maximum", binary("sub", count, 1.0), 1.0))
            else:
                mean, variance, inverse_std = _statistics(x, axes, self.eps)
                count = x.numel() // self.num_features
                correction = count / max(count - 1, 1)
            if self.training and self.track_running_stats:
                with no_grad():
                    unbiased = binary("mul", variance.reshape(self.num_features), correction)
                    decay = self._decay(x.dtype)
                    update_average(self.running_mean, mean.reshape(self.num_features), decay)
                    update_average(self.running_var, unbiased, decay)
                    self.num_batches_tracked.assign(binary("add", self.num_batches_tracked, 1))
        else:
            scale, shift = self._running_scale_and_shift(shape)
            folded = self._folded_convolution(x, scale, shift)
            return folded if folded is not None else _scale_and_shift(x, scale, shift)
        return _scale_and_shift(x, *self._scale_and_shift(mean, inverse_std, shape))

    def _decay(self, dtype):
        """How much of the running statistics a training step keeps: ``1 - momentum``, or
        with ``momentum=None`` (PyTorch's cumulative average over every batch seen)
        ``1 - 1 / batches tracked``, this batch included."""
        if self.momentum is not None:
            return 1 - self.momentum
        tracked = cast(binary("add", self.num_batches_tracked, 1), dtype)
        return binary("sub", 1.0, binary("div", 1.0, tracked))

    def _scale_and_shift(self, mean, inverse_std, shape):
        """The statistics and the affine parameters folded into one per-channel scale and shift."""
        scale = binary("mul", inverse_std, self.weight.reshape(shape)) if self.affine else inverse_std
        shift = binary("mul", mean, scale)
        shift = binary("sub", self.bias.reshape(shape), shift) if self.affine else unary("neg", shift)
        return scale, shift

    def _running_scale_and_shift(self, shape):
        """`_scale_and_shift` of the running statistics, built again only when a parameter or
        statistic was replaced (a graph value never changes, so the same nodes give the same
        scale and shift): an evaluation-mode forward then costs one multiply-add per layer."""
        state = (self.running_mean, self.running_var, self.weight, self.bias)
        key = tuple(None if v is None else v._node for v in state) + (tuple(shape), self.eps, graph.grad_mode())
        cached = self.__dict__.get("_running_folded")
        if cached is None or any(a is not b for a, b in zip(cached[0][:4], key[:4])) or cached[0][4:] != key[4:]:
            mean = self.running_mean.reshape(shape)
            inverse_std = binary("div", 1.0, unary("sqrt", binary("add", self.running_var, self.eps))).reshape(shape)
            cached = self.__dict__["_running_folded"] = (key, self._scale_and_shift(mean, inverse_std, shape))
        return cached[1]

    def _folded_convolution(self, x, scale, shift):
        """Inference (no gradients tracked) on a convolution's pending output: the convolution
        again with this layer folded into its weights and bias, ``conv(x, w * scale) + (b *
        scale + shift)``, as ONNX runtimes fold it (one pass over the activations less). The
        folded weights are computed once and kept while the convolution's parameters and this
        layer's folded statistics are the same nodes; None when ``x`` is something else."""
        node = library.pending_for_inference(x, ("conv2d", "conv2d_bias"))
        if node is None or not library.claimed("conv2d_bias", node.dtype):
            return None
        source, weight = node.inputs[:2]
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        key = (weight, bias, scale._node, shift._node)
        cached = self.__dict__.get("_folded_conv")
        if cached is None or any(a is not b for a, b in zip(cached[0], key)):
            channels = weight.shape[0]
            folded_weight = binary("mul", Var.from_node(weight), scale.reshape(channels, 1, 1, 1))
            folded_bias = shift.reshape(channels)
            if bias is not None:
                folded_bias = binary("add", binary("mul", Var.from_node(bias), scale.reshape(channels)), folded_bias)
            folded_weight.sync(), folded_bias.sync()  # computed now, once: kept realised
            cached = self.__dict__["_folded_conv"] = (key, (folded_weight, folded_bias))
        folded_weight, folded_bias = cached[1]
        return library.apply("conv2d_bias", [Var.from_node(source), folded_weight, folded_bias], node.attrs[1],
                             node.shape)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs."""

    dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs."""

    dims = (4,)


class BatchNorm(_BatchNorm):
    """Jittor's ``nn.BatchNorm``: (N, C, ...) inputs, statistics synchronised across MPI
    ranks by default (``sync=True``), as in Jittor."""

    dims = (2, 3, 4, 5)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, is_train=True, sync=True,
                 track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, sync, is_train)


class SyncBatchNorm(_BatchNorm):
    """PyTorch's ``nn.SyncBatchNorm``: batch normalisation whose training statistics cover
    the batches of every MPI rank (the same as `BatchNorm2d` outside MPI)."""

    dims = (2, 3, 4, 5)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 process_group=None):
        if process_group is not None:
            raise MetajitValueError("SyncBatchNorm: process groups are not supported; statistics cover every rank")
        super().__init__(num_features, eps, momentum, affine, track_running_stats, sync=True)


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dims, with an elementwise affine."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = creation.ones(shape) if elementwise_affine else None
        self.bias = creation.zeros(shape) if elementwise_affine else None

    def execute(self, x):
        if tuple(x.shape[x.ndim - len(self.normalized_shape):]) != self.normalized_shape:
            raise MetajitShapeError(f"LayerNorm{self.normalized_shape} got input shape {x.shape}")
        axes = tuple(range(x.ndim - len(self.normalized_shape), x.ndim))
        normalised = _normalise(x, axes, self.eps)[0]
        if self.weight is not None:
            normalised = binary("add", binary("mul", normalised, self.weight), self.bias)
        return normalised


class GroupNorm(Module):
    """Normalise over groups of channels (and all spatial dims), then a per-channel affine."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True):
        super().__init__()
        if num_channels % num_groups:
            raise MetajitShapeError(f"GroupNorm: {num_channels} channels do not split into {num_groups} groups")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = creation.ones(num_channels) if affine else None
        self.bias = creation.zeros(num_channels) if affine else None

    def execute(self, x):
        batch = x.shape[0]
        grouped = x.reshape(batch, self.num_groups, -1)
        normalised = _normalise(grouped, (2,), self.eps)[0].reshape(x.shape)
        if self.weight is not None:
            shape = [1, self.num_channels] + [1] * (x.ndim - 2)
            normalised = binary("add", binary("mul", normalised, self.weight.reshape(shape)),
                                self.bias.reshape(shape))
        return normalised
