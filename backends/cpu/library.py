"""Library kernels: a fused kernel that is exactly a (batched) matrix product runs as BLAS.

Recognised form (what ``a @ b`` and its gradients fuse into): one ``sum`` store over a
single reduced axis ``k`` whose value is ``mul(load A, load B)``; both loads index their
buffer with plain loop indices (or 0 for size-1 dims); A reads ``k`` and at most one axis
``m`` of its own, B reads ``k`` and ``n``; every other axis either reads is a batch axis
(numpy broadcasts a batch axis one operand lacks). The buffers are viewed without copying, transposed by
strides, so transposed operands reach BLAS as transpose flags. Products run on OpenBLAS
split across the kernels' OpenMP threads (`blas`), or as numpy's matmul when that is missing.
"""
import numpy as np

from metajit import dtypes

from . import blas

BLAS_DTYPES = (dtypes.float32, dtypes.float64)


def buffer_view(buffer, dtype, shape):
    """A numpy view of a `HostBuffer` as ``dtype`` and ``shape``."""
    count = int(np.prod(shape, dtype=np.int64))
    return buffer.array[:count * dtype.itemsize].view(dtype.numpy).reshape(shape)


class MatmulProgram:
    """Runs a recognised kernel as ``numpy.matmul`` on strided views of its buffers."""

    def __init__(self, kernel, slots, selectors, orders, expanders, missing, result_layout):
        self.kernel = kernel
        self.slots = slots                  # (slot of A, slot of B)
        self.selectors = selectors          # per operand: index tuple dropping size-1 dims
        self.orders = orders                # per operand: dim order -> batch.., m, k / batch.., k, n
        self.expanders = expanders          # per operand: inserts size-1 batch dims it lacks
        self.missing = missing              # (m missing, n missing)
        self.result_layout = result_layout  # (result shape without missing dims, output order, output shape)
        self.plan = None                    # a `blas.ProductPlan` once the product ran on BLAS

    def _base(self, inputs, outputs):
        """The start addresses of the A, B and output buffers, by `blas` role."""
        return {"a": inputs[self.slots[0]].address, "b": inputs[self.slots[1]].address, "out": outputs[0].address}

    def native_calls(self, inputs, outputs):
        """This product's BLAS driver calls as native launches (see `blas.ProductPlan`),
        or None before the first run recorded them (or without BLAS)."""
        if self.plan is None or not blas.available():
            return None
        return self.plan.native_calls(self._base(inputs, outputs))

    def __call__(self, inputs, outputs, parameters):
        use_blas = blas.available()
        base = self._base(inputs, outputs)
        if use_blas and self.plan is not None:
            self.plan.run(base)
            return
        kernel = self.kernel
        operands = []
        for slot, selector, order, expander in zip(self.slots, self.selectors, self.orders, self.expanders):
            dtype, shape = kernel.inputs[slot]
            view = buffer_view(inputs[slot], dtype, shape)[selector]
            operands.append(np.transpose(view, order)[expander])
        a, b = operands
        if self.missing[0]:
            a = a[..., None, :]
        if self.missing[1]:
            b = b[..., None]
        squeezed_shape, to_output, output_shape = self.result_layout
        out_dtype, out_shape = kernel.outputs[0]
        out = buffer_view(outputs[0], out_dtype, out_shape)
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        product_shape = batch + (a.shape[-2], b.shape[-1])
        product = None
        if use_blas:
            # BLAS writes through the output's strides, whatever order its axes are laid out in
            product = blas.reshaped_view(out.reshape(output_shape).transpose(np.argsort(to_output)),
                                         product_shape)
        if product is not None:
            self.plan = blas.batched_gemm(a, b, product, base)
        elif to_output == sorted(to_output):  # the output is laid out as the product
            np.matmul(a, b, out=out.reshape(product_shape))
        else:
            result = np.matmul(a, b).reshape(squeezed_shape).transpose(to_output)
            out.reshape(output_shape)[...] = result


def _plain_axes(load, domain):
    """Loop axis read by each dim of ``load`` (None for a size-1 read), or None if not plain."""
    axes = []
    for expr in load.args[1]:
        if expr.op == "loop" and domain[expr.args[0]] != 1:
            axes.append(expr.args[0])
        elif expr.op == "loop" or expr == expr.__class__("const", (0,)):
            axes.append(None)
        else:
            return None
    used = [a for a in axes if a is not None]
    return axes if len(used) == len(set(used)) else None


def recognise_matmul(kernel):
    """A `MatmulProgram` when ``kernel`` is a matrix product (see the module docstring), else None."""
    if len(kernel.stores) != 1 or len(kernel.inputs) not in (1, 2):
        return None
    store, domain = kernel.stores[0], kernel.domain
    value = store.value
    if (store.reduce_op != "sum" or value.op != "mul" or kernel.outputs[0][0] not in BLAS_DTYPES
            or any(operand.op != "load" for operand in value.args)
            or any(dtype != kernel.outputs[0][0] for dtype, _ in kernel.inputs)):
        return None
    reduced = store.reduced_axes(domain, kernel.outputs[0][1])
    loads = value.args
    if reduced is None or len(reduced) != 1 or {load.args[0] for load in loads} != set(range(len(kernel.inputs))):
        return None
    (k,) = reduced
    axes = [_plain_axes(load, domain) for load in loads]
    if None in axes:
        return None
    used = [{a for a in load_axes if a is not None} for load_axes in axes]
    if any(k not in u for u in used):
        return None
    own_a, own_b = sorted(used[0] - used[1]), sorted(used[1] - used[0])
    m_axes, n_axes = own_a[-1:], own_b[-1:]
    batch = sorted((used[0] | used[1]) - {k} - set(m_axes) - set(n_axes))
    if any(domain[x] != 1 for x in range(len(domain)) if x not in used[0] | used[1]):
        return None

    def order(load_axes, wanted):
        present = [a for a in load_axes if a is not None]
        return [present.index(a) for a in wanted if a in present]

    def expander(operand_used, wanted):
        return (Ellipsis,) if all(a in operand_used for a in wanted) else tuple(
            slice(None) if a in operand_used else None for a in wanted)

    slots = (loads[0].args[0], loads[1].args[0])
    selectors = tuple(tuple(slice(None) if a is not None else 0 for a in load_axes) for load_axes in axes)
    wanted = (batch + m_axes + [k], batch + [k] + n_axes)
    orders = (order(axes[0], wanted[0]), order(axes[1], wanted[1]))
    expanders = (expander(used[0], wanted[0]), expander(used[1], wanted[1]))
    result_axes = batch + m_axes + n_axes
    output_axes = [x for x in range(len(domain)) if x != k and domain[x] != 1]
    layout = ([domain[x] for x in result_axes], [result_axes.index(x) for x in output_axes],
              [domain[x] for x in output_axes])
    return MatmulProgram(kernel, slots, selectors, orders, expanders, (not m_axes, not n_axes), layout)
