"""Normalisation: batch, instance, layer, group, RMS and local response normalisation,
as functions (``F.batch_norm`` ...) and layers (running statistics, momentum, eval
mode); all from reductions and element-wise meta-ops."""
import math

from .. import creation, distributed, init
from ..errors import MetajitShapeError, MetajitValueError
from ..flags import no_grad
from ..ir import dtypes, graph
from ..math_ops import binary, cast, unary
from ..optimizer import update_average
from ..shape_ops import concat, pad
from ..var import Var
from . import library
from .functional import _var
from .module import Module, state_entries


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
    return mean, variance, _inverse_std(variance, eps)


def _inverse_std(variance, eps):
    return binary("div", 1.0, unary("sqrt", binary("add", variance, eps)))


def _shifted(x, axes):
    """``(k, x - k)``: ``k`` the first element of each slice over ``axes`` (size-1 dims
    there), detached; ``(None, x)`` when a slice is empty."""
    if any(x.shape[axis] == 0 for axis in axes):
        return None, x
    first = x.reindex([1 if axis in axes else size for axis, size in enumerate(x.shape)],
                      ["0" if axis in axes else f"i{axis}" for axis in range(x.ndim)]).detach()
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
    return mean.reshape(shape), variance.reshape(shape), _inverse_std(variance, eps).reshape(shape), total_count


def _normalise(x, axes, eps):
    mean, _, inverse_std = _statistics(x, axes, eps)
    return binary("mul", binary("sub", x, mean), inverse_std)


def _scale_and_shift(x, scale, shift):
    """``x * scale + shift`` with per-channel ``scale`` and ``shift``: one pass over ``x``,
    whatever the statistics and affine parameters folded into them."""
    return binary("add", binary("mul", x, scale), shift)


def _folded_affine(mean, inverse_std, weight, bias, shape):
    """``(x - mean) * inverse_std * weight + bias`` as one ``scale`` and ``shift``
    (`_scale_and_shift`); ``weight`` and ``bias`` (per channel, reshaped to ``shape``) may
    be None."""
    scale = inverse_std if weight is None else binary("mul", inverse_std, _var(weight).reshape(shape))
    shift = binary("mul", mean, scale)
    shift = unary("neg", shift) if bias is None else binary("sub", _var(bias).reshape(shape), shift)
    return scale, shift


def _elementwise_affine(x, weight, bias, shape=None):
    """``x * weight + bias``, either may be None; both reshaped to ``shape`` when given."""
    if weight is not None:
        x = binary("mul", x, _var(weight) if shape is None else _var(weight).reshape(shape))
    if bias is not None:
        x = binary("add", x, _var(bias) if shape is None else _var(bias).reshape(shape))
    return x


def _channel_shape(x):
    return [1, x.shape[1]] + [1] * (x.ndim - 2)


def _update_running_statistics(running_mean, running_var, mean, variance, correction, decay):
    """Move the running statistics (either may be None) towards a batch's ``mean`` and its
    ``variance`` times ``correction`` (N / (N - 1): the unbiased variance) by ``1 - decay``,
    in place and without gradient history, as PyTorch's training step."""
    with no_grad():
        if running_mean is not None:
            update_average(running_mean, mean.reshape(running_mean.shape), decay)
        if running_var is not None:
            update_average(running_var, binary("mul", variance, correction).reshape(running_var.shape), decay)


def _normalized_axes(x, normalized_shape, name):
    """The trailing axes of ``x`` that ``normalized_shape`` (an int or a sequence) names."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) > x.ndim or tuple(x.shape[x.ndim - len(shape):]) != shape:
        raise MetajitShapeError(f"{name}: normalized_shape {shape} is not the trailing dims of input shape "
                                f"{tuple(x.shape)}; pass the sizes of the last dims to normalise over")
    return tuple(range(x.ndim - len(shape), x.ndim))


def _values_per_channel(x, what):
    """How many values of (N, C, ...) ``x`` each channel's batch statistics average (more
    than one, or a `MetajitValueError` as PyTorch raises: one value has no variance)."""
    count = x.numel() // max(x.shape[1], 1)
    if count <= 1:
        raise MetajitValueError(f"{what}: expected more than 1 value per channel when training, got input "
                                f"shape {tuple(x.shape)}; use a larger batch, or evaluation mode (model.eval())")
    return count


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation of (N, C, ...) ``input`` per channel (dim 1), as
    ``torch.nn.functional.batch_norm``: with ``training``, the batch's statistics, and the
    running statistics (if given) updated in place by ``momentum`` (the variance unbiased);
    otherwise the running statistics.

    Example: ``F.batch_norm(x, mean, var, training=True)`` normalises ``x`` and moves
    ``mean`` and ``var`` 10% of the way to its statistics."""
    x = _var(input)
    if x.ndim < 2:
        raise MetajitShapeError(f"batch_norm: expected an (N, C, ...) input, got shape {tuple(x.shape)}")
    shape = _channel_shape(x)
    if training:
        count = _values_per_channel(x, "batch_norm")
        if eps <= 0:
            raise MetajitValueError(f"batch_norm: eps must be positive when training, got {eps}")
        mean, variance, inverse_std = _statistics(x, (0,) + tuple(range(2, x.ndim)), eps)
        _update_running_statistics(running_mean, running_var, mean, variance, count / (count - 1), 1 - momentum)
    else:
        if running_mean is None or running_var is None:
            raise MetajitValueError("batch_norm: training=False normalises with running_mean and running_var; "
                                    "pass both, or training=True for the batch's statistics")
        mean = _var(running_mean).reshape(shape)
        inverse_std = _inverse_std(_var(running_var), eps).reshape(shape)
    return _scale_and_shift(x, *_folded_affine(mean, inverse_std, weight, bias, shape))


def instance_norm(input, running_mean=None, running_var=None, weight=None, bias=None, use_input_stats=True,
                  momentum=0.1, eps=1e-5):
    """Normalisation of each channel of each sample of (N, C, ...) ``input`` over its
    spatial dims, as ``torch.nn.functional.instance_norm``; with ``use_input_stats=False``
    the running statistics instead. Running statistics given with ``use_input_stats`` move
    towards the batch average of the instances' statistics, in place.

    Example: ``F.instance_norm(images)`` gives every (sample, channel) plane mean 0, variance 1."""
    x = _var(input)
    if not use_input_stats:
        return batch_norm(x, running_mean, running_var, weight, bias, False, momentum, eps)
    spatial = math.prod(x.shape[2:])
    if x.ndim < 3 or spatial <= 1:
        raise MetajitValueError(f"instance_norm: expected an (N, C, ...) input with more than 1 spatial element, "
                                f"got shape {tuple(x.shape)}")
    mean, variance, inverse_std = _statistics(x, tuple(range(2, x.ndim)), eps)
    _update_running_statistics(running_mean, running_var, mean.mean(0), variance.mean(0),
                               spatial / (spatial - 1), 1 - momentum)
    return _scale_and_shift(x, *_folded_affine(mean, inverse_std, weight, bias, _channel_shape(x)))


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalisation over the trailing ``normalized_shape`` dims, then ``* weight + bias``
    (each of that shape, optional), as ``torch.nn.functional.layer_norm``.

    Example: ``F.layer_norm(x, x.shape[-1:])`` gives each row mean 0, variance 1."""
    x = _var(input)
    return _elementwise_affine(_normalise(x, _normalized_axes(x, normalized_shape, "layer_norm"), eps), weight, bias)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalisation of (N, C, ...) ``input`` over groups of ``C / num_groups`` channels
    and the spatial dims, then a per-channel ``* weight + bias``, as
    ``torch.nn.functional.group_norm``.

    Example: ``F.group_norm(x, 1)`` normalises each sample over all its values."""
    x = _var(input)
    if x.ndim < 2 or x.shape[1] % num_groups:
        raise MetajitShapeError(f"group_norm: the channels (dim 1) of input shape {tuple(x.shape)} do not split into "
                                f"{num_groups} groups; num_groups must divide them")
    normalised = _normalise(x.reshape(x.shape[0], num_groups, -1), (2,), eps).reshape(x.shape)
    return _elementwise_affine(normalised, weight, bias, _channel_shape(x))


def rms_norm(input, normalized_shape, weight=None, eps=None):
    """``x / sqrt(mean(x**2) + eps) * weight`` over the trailing ``normalized_shape`` dims,
    as ``torch.nn.functional.rms_norm`` (``eps`` None: the dtype's machine epsilon).

    Example: ``F.rms_norm(x, (x.shape[-1],))`` gives each row a root mean square of 1."""
    x = _var(input)
    axes = _normalized_axes(x, normalized_shape, "rms_norm")
    eps = float(dtypes.finfo(x.dtype).eps) if eps is None else eps
    mean_square = binary("mul", x, x).mean(dims=axes, keepdims=True)
    return _elementwise_affine(binary("mul", x, _inverse_std(mean_square, eps)), weight, None)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """``x / (k + alpha * mean(x**2 over a window of size channels))**beta`` of (N, C, ...)
    ``input`` (windows zero-padded at the ends), as ``torch.nn.functional.local_response_norm``
    (AlexNet's normalisation).

    Example: ``F.local_response_norm(features, 5)``."""
    x = _var(input)
    if x.ndim < 3:
        raise MetajitShapeError(f"local_response_norm: expected an (N, C, ...) input of 3 or more dims, "
                                f"got shape {tuple(x.shape)}")
    if x.numel() == 0:
        return x
    channels = x.shape[1]
    padded = pad(binary("mul", x, x), (0, 0) * (x.ndim - 2) + (size // 2, (size - 1) // 2))
    window = padded[:, :channels]
    for offset in range(1, size):
        window = binary("add", window, padded[:, offset:offset + channels])
    divisor = binary("pow", binary("add", binary("mul", window, alpha / size), k), beta)
    return binary("div", x, divisor)


class _NormBase(Module):
    """Per-channel affine parameters and running statistics, as PyTorch's ``_NormBase``."""

    optional_state = ("num_batches_tracked",)  # PyTorch before 0.4.1 did not save it

    def __init__(self, num_features, eps, momentum, affine, track_running_stats):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = creation.ones(num_features) if affine else None
        self.bias = creation.zeros(num_features) if affine else None
        tracked = track_running_stats
        self.register_buffer("running_mean", creation.zeros(num_features) if tracked else None)
        self.register_buffer("running_var", creation.ones(num_features) if tracked else None)
        self.register_buffer("num_batches_tracked", creation.zeros((), dtype="int64") if tracked else None)

    def reset_running_stats(self):
        """Running mean 0, running variance 1, no batches tracked, as at construction."""
        if self.track_running_stats:
            for statistic, value in ((self.running_mean, 0), (self.running_var, 1), (self.num_batches_tracked, 0)):
                statistic.assign(value)

    def reset_parameters(self):
        """`reset_running_stats`, and the affine weight 1 and bias 0, as at construction."""
        self.reset_running_stats()
        _reset_affine(self.weight, self.bias)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


def _reset_affine(weight, bias=None):
    """An affine weight back to ones and its bias to zeros (either may be None)."""
    if weight is not None:
        init.ones_(weight)
    if bias is not None:
        init.zeros_(bias)


class _BatchNorm(_NormBase):
    dims = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, sync=False,
                 is_train=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.sync = sync
        self.training = is_train

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
                count = _values_per_channel(x, type(self).__name__)
                mean, variance, inverse_std = _statistics(x, axes, self.eps)
                correction = count / max(count - 1, 1)
            if self.training and self.track_running_stats:
                _update_running_statistics(self.running_mean, self.running_var, mean, variance, correction,
                                           self._decay(x.dtype))
                with no_grad():
                    self.num_batches_tracked.assign(binary("add", self.num_batches_tracked, 1))
        else:
            scale, shift = self._running_scale_and_shift(shape)
            folded = self._folded_convolution(x, scale, shift)
            return folded if folded is not None else _scale_and_shift(x, scale, shift)
        return _scale_and_shift(x, *_folded_affine(mean, inverse_std, self.weight, self.bias, shape))

    def _decay(self, dtype):
        """How much of the running statistics a training step keeps: ``1 - momentum``, or
        with ``momentum=None`` (PyTorch's cumulative average over every batch seen)
        ``1 - 1 / batches tracked``, this batch included."""
        if self.momentum is not None:
            return 1 - self.momentum
        tracked = cast(binary("add", self.num_batches_tracked, 1), dtype)
        return binary("sub", 1.0, binary("div", 1.0, tracked))

    def _running_scale_and_shift(self, shape):
        """`_folded_affine` of the running statistics, built again only when a parameter or
        statistic was replaced (a graph value never changes, so the same nodes give the same
        scale and shift): an evaluation-mode forward then costs one multiply-add per layer."""
        state = (state_entries(self, "_buffers", ("running_mean", "running_var"))
                 + state_entries(self, "_parameters", ("weight", "bias")))
        nodes = [None if v is None else v._node for v in state]
        settings = (tuple(shape), self.eps, graph.grad_mode())
        cached = self.__dict__.get("_running_folded")
        if cached is None or cached[1] != settings or any(a is not b for a, b in zip(cached[0], nodes)):
            running_mean, running_var, weight, bias = state
            inverse_std = _inverse_std(running_var, self.eps).reshape(shape)
            cached = self.__dict__["_running_folded"] = (nodes, settings, _folded_affine(
                running_mean.reshape(shape), inverse_std, weight, bias, shape))
        return cached[2]


    def _folded_convolution(self, x, scale, shift):
        """Inference (no gradients tracked) on a convolution's pending output: the convolution
        again with this layer folded into its weights and bias, ``conv(x, w * scale) + (b *
        scale + shift)``, as ONNX runtimes fold it (one pass over the activations less). The
        folded weights are computed once and kept while the convolution's parameters and this
        layer's folded statistics are the same nodes; None when ``x`` is something else. A
        device that runs ``conv2d`` but not ``conv2d_bias`` as a library call (cuda) gets the
        folded bias as an addition that fuses with what follows (the activation)."""
        node = library.pending_for_inference(x, ("conv2d", "conv2d_bias"))
        if node is None or scale.dtype != node.dtype or shift.dtype != node.dtype:  # folding would mix dtypes
            return None
        with_bias = library.claimed("conv2d_bias", node.dtype)
        if not with_bias and not (node.attrs[0] == "conv2d" and library.claimed("conv2d", node.dtype)):
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
        if with_bias:
            return library.apply("conv2d_bias", [source, folded_weight, folded_bias], node.attrs[1],
                                 node.shape)
        convolved = library.apply("conv2d", [source, folded_weight], node.attrs[1], node.shape)
        return binary("add", convolved, folded_bias.reshape(1, -1, 1, 1))


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

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """PyTorch's: ``module`` with each batch normalisation layer in it (``module`` itself
        included) replaced by a SyncBatchNorm holding the same parameters, running statistics
        and mode (the same Vars, so an optimiser made before keeps training them); returns the
        converted module. Example: ``model = nn.SyncBatchNorm.convert_sync_batchnorm(model)``."""
        converted = module
        if isinstance(module, _BatchNorm) and not isinstance(module, cls):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                setattr(converted, name, getattr(module, name))
            converted.train(module.training)
        for name, child in module.named_children():
            converted.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return converted


class BatchNorm3d(_BatchNorm):
    """Batch normalisation of (N, C, D, H, W) inputs. Example: ``nn.BatchNorm3d(16)(volumes)``."""

    dims = (5,)


class _InstanceNorm(_NormBase):
    batched_ndim = None

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def execute(self, x):
        if x.ndim not in (self.batched_ndim - 1, self.batched_ndim):
            raise MetajitShapeError(f"{type(self).__name__} expects a {self.batched_ndim - 1}-d (unbatched) or "
                                    f"{self.batched_ndim}-d input, got shape {tuple(x.shape)}")
        unbatched = x.ndim == self.batched_ndim - 1
        channels = x.shape[0 if unbatched else 1]
        if channels != self.num_features and (self.affine or self.track_running_stats):
            raise MetajitShapeError(f"{type(self).__name__}({self.num_features}) got {channels} channels "
                                    f"(input shape {tuple(x.shape)})")
        out = instance_norm(x.unsqueeze(0) if unbatched else x, self.running_mean, self.running_var, self.weight,
                            self.bias, self.training or not self.track_running_stats,
                            0.0 if self.momentum is None else self.momentum, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) or (C, L) inputs (`instance_norm`); by default
    without affine parameters or running statistics, as PyTorch.

    Example: ``nn.InstanceNorm1d(8, affine=True)(x)``."""

    batched_ndim = 3


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) or (C, H, W) inputs (`instance_norm`).

    Example: ``nn.InstanceNorm2d(3, track_running_stats=True)`` normalises with running
    statistics in eval mode."""

    batched_ndim = 4


class InstanceNorm3d(_InstanceNorm):
    """Instance normalisation of (N, C, D, H, W) or (C, D, H, W) inputs (`instance_norm`).

    Example: ``nn.InstanceNorm3d(4)(volumes)``."""

    batched_ndim = 5


class LayerNorm(Module):
    """Normalise over the trailing ``normalized_shape`` dims, with an elementwise affine
    (`layer_norm`). Example: ``nn.LayerNorm(512)(tokens)``."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = creation.ones(shape) if elementwise_affine else None
        self.bias = creation.zeros(shape) if elementwise_affine and bias else None

    def reset_parameters(self):
        """The affine parameters back to their construction values (weight 1, bias 0)."""
        _reset_affine(self.weight, self.bias)

    def execute(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"


class GroupNorm(Module):
    """Normalise over groups of channels (and all spatial dims), then a per-channel affine
    (`group_norm`). Example: ``nn.GroupNorm(4, 32)(features)``."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True):
        super().__init__()
        if num_channels % num_groups:
            raise MetajitShapeError(f"GroupNorm: {num_channels} channels do not split into {num_groups} groups")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = creation.ones(num_channels) if affine else None
        self.bias = creation.zeros(num_channels) if affine else None

    def reset_parameters(self):
        """The affine parameters back to their construction values (weight 1, bias 0)."""
        _reset_affine(self.weight, self.bias)

    def execute(self, x):
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.weight is not None}"


class RMSNorm(Module):
    """Root-mean-square normalisation over the trailing ``normalized_shape`` dims with a
    learned scale (`rms_norm`; ``eps`` None: the dtype's machine epsilon), as PyTorch's.

    Example: ``nn.RMSNorm(4096)(hidden)``."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = creation.ones(shape) if elementwise_affine else None

    def reset_parameters(self):
        """The affine parameters back to their construction values (weight 1, bias 0)."""
        _reset_affine(self.weight)

    def execute(self, x):
        return rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.weight is not None}"


class LocalResponseNorm(Module):
    """Normalisation across neighbouring channels (`local_response_norm`), as PyTorch's.

    Example: ``nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)``."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def execute(self, x):
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
