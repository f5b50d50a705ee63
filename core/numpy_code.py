"""``jt.numpy_code``: an operator computed by a Python function on numpy arrays, as in
Jittor. It is an opaque graph node (`metajit.passes.custom_ops`): its inputs are
computed first and copied to the host, the function fills the outputs in place, and
they move to the current device.

``forward(np, data)`` gets ``data["inputs"]`` (arrays) and ``data["outputs"]`` (arrays
to fill) plus the user's ``data`` entries. ``backward`` is one function per input (None:
no gradient); each fills ``data["outputs"][0]`` with that input's gradient from
``data["dout"]`` (the gradient of output ``data["out_index"]``), ``data["inputs"]`` and
``data["pout"]`` (that output's forward value). Example::

    def forward(np, data):
        a, = data["inputs"]
        np.multiply(a, 2.0, out=data["outputs"][0])

    def backward(np, data):
        np.copyto(data["outputs"][0], data["dout"] * 2.0)

    b = jt.numpy_code(a.shape, a.dtype, [a], forward, [backward])
"""
import numpy as np

from . import plugins
from .errors import MetajitValueError
from .ir import dtypes, graph
from .passes import custom_ops, executor
from .var import Var


def numpy_code(shape, dtype, inputs, forward, backward=(), data=None):
    """Outputs of ``forward`` run on the inputs' values (see the module docstring);
    ``shape``/``dtype`` may be lists for several outputs."""
    several = isinstance(shape, (list, tuple)) and bool(shape) and all(isinstance(s, (list, tuple)) for s in shape)
    shapes = [tuple(int(s) for s in item) for item in shape] if several else [tuple(int(s) for s in shape)]
    dtype_list = list(dtype) if isinstance(dtype, (list, tuple)) else [dtype] * len(shapes)
    if len(dtype_list) != len(shapes):
        raise MetajitValueError(f"jt.numpy_code: {len(shapes)} output shapes but {len(dtype_list)} dtypes given")
    if any(s < 0 for item in shapes for s in item):
        raise MetajitValueError(f"jt.numpy_code: output shapes {shapes} must not be negative")
    input_vars = [item if isinstance(item, Var) else Var(item) for item in inputs]
    specs = [(s, dtypes.as_dtype(d)) for s, d in zip(shapes, dtype_list)]
    runner = NumpyRunner(forward, list(backward or ()), dict(data or {}), specs)
    nodes = custom_ops.opaque_outputs(runner, [v._node for v in input_vars], specs, graph.derived_requires_grad)
    outputs = [Var.from_node(node) for node in nodes]
    return outputs if several else outputs[0]


class NumpyRunner:
    """Runs one ``jt.numpy_code`` call on the host (see `custom_ops`)."""

    def __init__(self, forward, backward, data, output_specs, extra=None):
        self.forward = forward
        self.backward = backward
        self.data = data
        self.output_specs = output_specs  # (shape, dtype) per output
        self.extra = extra or {}  # gradient calls: which inputs are dout and pout, and out_index
        self.structure = (forward, tuple(backward), len(output_specs))

    def run(self, input_nodes, output_nodes):
        """Call ``forward`` on host copies of the inputs; upload the filled outputs."""
        arrays = [executor.to_host(node) for node in input_nodes]
        count = len(input_nodes) - len(self.extra.get("roles", ()))
        outputs = [np.empty(shape, dtype=dtype.numpy) for shape, dtype in self.output_specs]
        data = dict(self.data, inputs=arrays[:count], outputs=outputs)
        for name, position in zip(self.extra.get("roles", ()), range(count, len(arrays))):
            data[name] = arrays[position]
        if "out_index" in self.extra:
            data["out_index"] = self.extra["out_index"]
        self.forward(np, data)
        handle = plugins.current()
        for node, array in zip(output_nodes, outputs):
            if node is not None:
                node.buffer = executor.upload(handle, array)

    def gradients(self, node, k, grad_node):
        """Per input, a numpy operator running its backward function (None without one)."""
        inputs = list(node.inputs)
        grads = []
        for index, source in enumerate(inputs):
            function = self.backward[index] if index < len(self.backward) else None
            if function is None:
                grads.append(None)
                continue
            spec = [(source.shape, source.dtype)]
            runner = NumpyRunner(function, [], self.data, spec, {"roles": ("dout", "pout"), "out_index": k})
            (gradient,) = custom_ops.opaque_outputs(runner, inputs + [grad_node, node], spec, graph.derived_requires_grad)
            grads.append(gradient)
        return grads
