"""What the converter maps PyTorch names to.

`pjmap` is Jittor's conversion table, in Jittor's format: an entry names the PyTorch
argument list, the metajit module, function and argument list, and ``links`` (renamed
arguments), ``extras`` (added arguments, as source text) and ``delete`` (dropped
arguments). A key is a bare name (``"Conv2d"``: any ``torch.*`` name ending so) or a
full one (``"torch.tensor"``, preferred). Entries with a ``"prefix"`` under ``"pytorch"``
are tensor functions: ``args_prefix`` is the argument list of the function form (called
on a module in ``prefix``, e.g. ``torch.flatten(x, 1)``), ``args`` the method form
(``x.flatten(1)``); a metajit ``"receiver"`` names the argument the method's receiver
becomes when metajit spells the method as a function (``x.zero_()`` ->
``init.zeros_(x)``).

A name the table does not list keeps its own name in the metajit module that `MODULES`
gives for its PyTorch module (``torch.nn.Linear`` -> ``nn.Linear``), when metajit has it.
"""
pjmap = {}


def pjmap_append(pytorch_func_name, pytorch_args, jittor_func_module, jittor_func_name, jittor_args,
                 extras=None, links=None, delete=None):
    """Add (or replace) a conversion table entry, as Jittor's ``pjmap_append``.

    ``pytorch_args`` and ``jittor_args`` are parameter lists; ``links`` maps PyTorch argument
    names to metajit ones, ``extras`` adds metajit arguments (values as source text),
    ``delete`` lists PyTorch arguments to drop. Example::

        pjmap_append("AvgPool2d", "kernel_size, stride=None, padding=0, ceil_mode=False",
                     "nn", "Pool", "kernel_size, stride=None, padding=0, ceil_mode=False, op='maximum'",
                     extras={"op": "'mean'"})
    """
    pjmap[pytorch_func_name] = {
        "pytorch": {"args": pytorch_args},
        "jittor": {"module": jittor_func_module, "name": jittor_func_name, "args": jittor_args},
        "links": dict(links or {}), "extras": dict(extras or {}), "delete": list(delete or []),
    }


def _tensor_entry(name, torch_prefixes, function_args, method_args, jittor_module, jittor_name,
                  jittor_function_args, jittor_method_args, receiver=None, links=None):
    pjmap[name] = {
        "pytorch": {"prefix": list(torch_prefixes), "args_prefix": function_args, "args": method_args},
        "jittor": {"prefix": jittor_module, "module": jittor_module, "name": jittor_name,
                   "args_prefix": jittor_function_args, "args": jittor_method_args, "receiver": receiver},
        "links": dict(links or {}), "extras": {}, "delete": [],
    }


_POOL = ("kernel_size, stride=None, padding=0, dilation=None, return_indices=None, ceil_mode=False, "
         "count_include_pad=True, op='maximum'")
pjmap_append("Conv2d", "in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, "
             "bias=True, padding_mode='zeros', device=None, dtype=None", "nn", "Conv",
             "in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True")
pjmap_append("MaxPool2d", "kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False",
             "nn", "Pool", _POOL, extras={"op": "'maximum'"})
pjmap_append("AvgPool2d", "kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, "
             "divisor_override=None", "nn", "Pool", _POOL, extras={"op": "'mean'"})
for _name in ("ReLU", "ReLU6"):
    pjmap_append(_name, "inplace=False", "nn", _name, "", delete=["inplace"])
pjmap_append("LeakyReLU", "negative_slope=0.01, inplace=False", "nn", "LeakyReLU", "negative_slope=0.01",
             delete=["inplace"])
pjmap_append("Dropout", "p=0.5, inplace=False", "nn", "Dropout", "p=0.5", delete=["inplace"])
for _name in ("relu", "relu6"):
    pjmap_append(_name, "input, inplace=False", "nn", _name, "x", links={"input": "x"}, delete=["inplace"])
pjmap_append("leaky_relu", "input, negative_slope=0.01, inplace=False", "nn", "leaky_relu",
             "x, negative_slope=0.01", links={"input": "x"}, delete=["inplace"])
pjmap_append("dropout", "input, p=0.5, training=True, inplace=False", "nn", "dropout", "x, p=0.5, training=True",
             links={"input": "x"}, delete=["inplace"])
pjmap_append("cat", "tensors, dim=0, *, out=None", "jt", "concat", "values, dim=0", links={"tensors": "values"})
pjmap_append("torch.tensor", "data, *, dtype=None, device=None, requires_grad=False, pin_memory=False",
             "jt", "array", "data, dtype=None", delete=["device"])
pjmap_append("from_numpy", "ndarray", "jt", "array", "data", links={"ndarray": "data"})
pjmap_append("torch.load", "f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None",
             "jt", "load", "path, weights_only=True", links={"f": "path"}, delete=["map_location"])

_tensor_entry("flatten", ["torch"], "input, start_dim=0, end_dim=-1", "start_dim=0, end_dim=-1",
              "jt", "flatten", "x, start_dim=0, end_dim=-1", "start_dim=0, end_dim=-1", links={"input": "x"})
_tensor_entry("view", [], "", "*shape", "", "view", "", "*shape")
_tensor_entry("permute", ["torch"], "input, dims", "*dims", "jt", "permute", "x, *dims", "*dims",
              links={"input": "x"})
_tensor_entry("zero_", [], "", "", "init", "zeros_", "", "var", receiver="var")
_tensor_entry("fill_", [], "", "value", "init", "constant_", "", "var, value", receiver="var")
_tensor_entry("normal_", [], "", "mean=0.0, std=1.0, *, generator=None", "init", "normal_", "",
              "var, mean=0.0, std=1.0", receiver="var")
_tensor_entry("uniform_", [], "", "a=0.0, b=1.0, *, generator=None", "init", "uniform_", "",
              "var, a=0.0, b=1.0", receiver="var")
_tensor_entry("copy_", [], "", "src, non_blocking=False", "", "assign", "", "value", links={"src": "value"})

# PyTorch module -> where metajit keeps the same names (the first that has the name)
MODULES = {
    "torch": ("jt",),
    "torch.nn": ("nn",),
    "torch.nn.functional": ("nn", "nn.functional"),
    "torch.nn.init": ("init",),
    "torch.nn.utils": ("nn.utils",),
    "torch.optim": ("jt.optim",),
    "torch.optim.lr_scheduler": ("jt.lr_scheduler",),
    "torch.utils.data": ("jt.dataset",),
    "torch.utils.data.distributed": ("jt.dataset",),
    "torch.distributed": ("jt.distributed",),
    "torch.nn.parallel": ("nn.parallel",),
    "torch.linalg": ("jt.linalg",),
    "torchvision.models": ("jt.models",),
    "torchvision.ops": ("jt.models.ops",),
    "torchvision.ops.misc": ("jt.models.ops",),
    "torchvision.ops.stochastic_depth": ("jt.models.ops",),
}

# names spelled differently in metajit, wherever they appear
RENAMES = {"torch.Tensor": "jt.Var"}

# calls replaced by a value, and calls that are the identity in eager code
CALL_RESULTS = {"torch.jit.is_scripting": "False", "torch.jit.is_tracing": "False",
                "torch.cuda.is_available": "jt.has_cuda"}
FIRST_ARGUMENT = {"torch.jit.script", "torch.jit.unused", "torch.jit.ignore", "torch.jit.export", "torch.compile",
                  "torch.device"}
DROPPED_DECORATORS = {"torch.jit.unused", "torch.jit.ignore", "torch.jit.export", "torch.jit.script"}
STUB_DECORATORS = {"torch.jit._overload_method", "torch.jit._overload"}  # type stubs: the def is removed
CHECKPOINT = "torch.utils.checkpoint.checkpoint"  # recomputation only saves memory: call the function
CHECKPOINT_OPTIONS = {"use_reentrant", "preserve_rng_state", "context_fn", "determinism_check", "debug"}
ANNOTATE = "torch.jit.annotate"  # annotate(type, value) is value
DROPPED_STATEMENTS = {"torchvision.utils._log_api_usage_once"}  # usage logging
_PRESET = "torchvision's preprocessing presets are not converted: compose jt.transform's Resize, CenterCrop, " \
          "ToTensor and ImageNormalize instead"
# why some names have no counterpart (others: "metajit has no ...")
REASONS = {"torchvision.transforms._presets.ImageClassification": _PRESET,
           "torchvision.transforms._presets.InterpolationMode": _PRESET}
# torch.nn.Module's loading and moving internals: metajit's Module never calls an override
MODULE_INTERNALS = ("_load_from_state_dict", "_save_to_state_dict", "_apply", "_register_load_state_dict_pre_hook",
                    "_register_state_dict_hook")

# method spellings: x.size(d) -> x.shape[d], x.dim() -> x.ndim; no-ops on metajit Vars
SHAPE_METHODS = {"size": "shape", "dim": "ndim"}
REMOVED_METHODS = {"contiguous", "cuda", "cpu"}
IN_PLACE_ARITHMETIC = {"add_": "Add", "sub_": "Sub", "mul_": "Mult", "div_": "Div"}
# metajit's (and Jittor's) argmax/argmin return (indices, values) and max/min over a dim only
# the values: torch's argmax keeps the indices, torch's max(x, dim) the pair (values, indices)
INDEX_FIRST = {"argmax", "argmin"}
VALUE_AND_INDEX = {"max": "argmax", "min": "argmin"}

# PyTorch tensor methods often found in model code; those metajit's Var lacks are marked
# where called (the receiver's type is only known when the code runs)
TENSOR_METHODS = (
    "add_", "sub_", "mul_", "div_", "pow_", "exp_", "log_", "sqrt_", "abs_", "neg_", "relu_", "sigmoid_", "tanh_",
    "addcmul_", "addcdiv_", "lerp_", "addmm_", "index_add_", "index_copy_", "index_fill_", "masked_scatter_",
    "put_", "resize_", "squeeze_", "unsqueeze_", "transpose_", "t_", "new_zeros", "new_ones", "new_full",
    "new_empty", "new_tensor", "type_as", "narrow", "unfold", "as_strided", "repeat_interleave", "register_hook",
    "retain_grad", "pin_memory", "share_memory_", "storage", "data_ptr", "element_size", "is_contiguous",
    "stride", "storage_offset", "bernoulli_", "exponential_", "random_", "clamp_min", "clamp_max", "unbind",
    "view_as", "reshape_as", "split_with_sizes", "masked_scatter", "index_put_", "scatter_reduce",
)
