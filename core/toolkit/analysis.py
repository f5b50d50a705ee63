"""Kernel analysis every scheduler needs: what kind of loop nest a `Kernel` is, how each
load walks memory, what a tile of the loop domain reads, whether 32-bit index arithmetic
is safe, and scatters that are really reductions.

Example (a GPU scheduler choosing its launch shape)::

    shape = classify(kernel)
    if shape.kind == "reduction":
        rows, row_length = shape.kept_size, shape.reduced_size
    for access in load_accesses(kernel):
        if access.contiguous_axis == len(kernel.domain) - 1:
            ...                                  # vectorised loads along the innermost axis
    index_type = "int" if fits_int32(kernel) else "long long"
"""
import dataclasses
import math

from metajit.ir import indexexpr
from metajit.ir import kernel as K
from metajit.toolkit.codegen import is_plain_store
from metajit.toolkit.gemm import gemm_layout

INT32_MAX = 2 ** 31 - 1


@dataclasses.dataclass(frozen=True)
class KernelShape:
    """The class of a kernel's loop nest.

    ``kind``: ``"elementwise"`` (every store writes each loop position once),
    ``"reduction"`` (a store folds ``reduced_axes`` into an output indexed by the
    ``kept_axes``) or ``"scatter"`` (a store accumulates at computed positions: atomics
    or a serial loop). ``reduce_op`` is the reduction's op (None for element-wise).
    """

    kind: str
    reduce_op: object
    kept_axes: tuple
    reduced_axes: tuple
    kept_size: int
    reduced_size: int


def classify(kernel):
    """The `KernelShape` of ``kernel`` (a scatter store wins over a reduction over an
    element-wise one, since it decides the schedule)."""
    domain = kernel.domain
    shape = KernelShape("elementwise", None, tuple(range(len(domain))), (), math.prod(domain), 1)
    for store in kernel.stores:
        if store.reduce_op is None:
            continue
        reduced = store.reduced_axes(domain, kernel.outputs[store.slot][1])
        if reduced is None:
            return KernelShape("scatter", store.reduce_op, (), tuple(range(len(domain))), 1, math.prod(domain))
        kept = tuple(a for a in range(len(domain)) if a not in reduced)
        shape = KernelShape("reduction", store.reduce_op, kept, tuple(reduced),
                            math.prod(domain[a] for a in kept), math.prod(domain[a] for a in reduced))
    return shape


@dataclasses.dataclass(frozen=True)
class LoadAccess:
    """How one load walks its buffer over the loop domain.

    ``strides``: elements the offset moves per step of each loop axis, when the offset is
    affine in the loop indices (else None); ``offset``: its constant part.
    ``contiguous_axis``: the innermost loop axis (of size > 1) read with stride 1, if any.
    ``broadcast_axes``: loop axes of size > 1 the load does not depend on (a value reused
    across them). ``data_dependent``: an index comes from another buffer (a gather).
    ``in_bounds``: every coordinate is provably inside the buffer (else renderers clamp).
    """

    slot: int
    index: tuple
    strides: tuple
    offset: int
    contiguous_axis: int
    broadcast_axes: tuple
    data_dependent: bool
    in_bounds: bool


def value_nodes(kernel):
    """The distinct nodes of ``kernel``'s value trees, in first-seen order (each shared
    node once, so a deep DAG costs its size, not its paths)."""
    found, seen = [], set()
    stack = [store.value for store in reversed(kernel.stores)]
    while stack:
        expr = stack.pop()
        if expr in seen:
            continue
        seen.add(expr)
        found.append(expr)
        if expr.op not in ("load", "const", "param", "index"):
            stack.extend(reversed(expr.args))
    return found


def loads(kernel):
    """The distinct ``load`` nodes of ``kernel``'s value trees, in first-seen order."""
    return [expr for expr in value_nodes(kernel) if expr.op == "load"]


def has_extra(expr):
    """Whether the IndexExpr ``expr`` reads an extra input (a data-dependent index)."""
    return expr.op == "extra" or any(isinstance(a, indexexpr.IndexExpr) and has_extra(a) for a in expr.args)


def row_major_strides(shape):
    """Element strides of a dense row-major buffer of ``shape``."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def load_access(kernel, load):
    """The `LoadAccess` of the ``load`` node (from `loads`) in ``kernel``."""
    slot, index = load.args
    shape = kernel.inputs[slot][1]
    domain = kernel.domain
    data_dependent = any(has_extra(e) for e in index)
    strides, offset = [0] * len(domain), 0
    for expr, stride in zip(index, row_major_strides(shape)):
        form = None if data_dependent else indexexpr.linear_form(expr)
        if form is None:
            strides, offset = None, None
            break
        coefficients, constant = form
        offset += constant * stride
        for axis, coefficient in coefficients.items():
            strides[axis] += coefficient * stride
    read = set().union(*(indexexpr.loop_axes(e) for e in index)) if index else set()
    active = [a for a, size in enumerate(domain) if size > 1]
    contiguous = None
    if strides is not None:
        contiguous = next((a for a in reversed(active) if strides[a] != 0), None)
        if contiguous is not None and strides[contiguous] != 1:
            contiguous = None
    in_bounds = all(0 <= low and high < size for (low, high), size
                    in zip((indexexpr.bounds(e, domain) for e in index), shape))
    return LoadAccess(slot, tuple(index), None if strides is None else tuple(strides), offset, contiguous,
                      tuple(a for a in active if a not in read), data_dependent, in_bounds)


def load_accesses(kernel):
    """`load_access` of every distinct load of ``kernel``."""
    return [load_access(kernel, load) for load in loads(kernel)]


def index_bounds(expr, tile):
    """Inclusive ``(low, high)`` of the IndexExpr ``expr`` over a tile of the loop domain:
    ``tile[k]`` is the half-open ``(start, stop)`` range of loop axis ``k``."""
    return indexexpr.bounds(expr, [(start, max(stop - 1, start)) for start, stop in tile])


def footprint(kernel, load, tile):
    """Per dim of the ``load``'s buffer, the inclusive ``(low, high)`` coordinates a tile
    reads, clipped to the buffer (what a DMA into a scratchpad must bring in). A
    data-dependent coordinate spans its whole dim."""
    slot, index = load.args
    shape = kernel.inputs[slot][1]
    result = []
    for expr, size in zip(index, shape):
        low, high = index_bounds(expr, tile)
        result.append((max(0, int(low)) if math.isfinite(low) else 0,
                       min(size - 1, int(high)) if math.isfinite(high) else size - 1))
    return tuple(result)


def _subexpressions(expr):
    yield expr
    for arg in expr.args:
        if isinstance(arg, indexexpr.IndexExpr):
            yield from _subexpressions(arg)


def index_values(kernel, nodes=None):
    """The IndexExprs of ``kernel``'s ``index`` value nodes (a mask computed from the loop
    position); ``nodes``: its `value_nodes`, when the caller has them."""
    return [expr.args[0] for expr in nodes or value_nodes(kernel) if expr.op == "index"]


def index_expressions(kernel):
    """Every IndexExpr of ``kernel``: load and store indices, store conditions, index values."""
    nodes = value_nodes(kernel)
    for expr in nodes:
        if expr.op == "load":
            yield from expr.args[1]
    for store in kernel.stores:
        yield from store.index
        yield store.condition
    yield from index_values(kernel, nodes)


def fits_int32(kernel):
    """Whether every loop index, buffer offset and intermediate index value of ``kernel``
    fits in a signed 32-bit integer (so a GPU may index with ``int``). Data-dependent
    indices count as unbounded, except where they are clamped into a buffer."""
    sizes = [math.prod(kernel.domain)] + [math.prod(shape) for _, shape in kernel.inputs + kernel.outputs]
    if max(sizes) > INT32_MAX:
        return False
    for expr in index_expressions(kernel):
        for part in _subexpressions(expr):
            if part.op == "extra":
                continue
            low, high = indexexpr.bounds(part, kernel.domain)
            if low < -INT32_MAX - 1 or high > INT32_MAX:
                return False
    return True


def affine_form(expr):
    """``({axis: coefficient}, constant)`` when ``expr`` is affine in the loop indices
    (products distributed: ``(i0*2 + i1)*4`` is ``{0: 8, 1: 4}``), else None."""
    op = expr.op
    if op == "const":
        return {}, expr.args[0]
    if op == "loop":
        return {expr.args[0]: 1}, 0
    if op in ("add", "sub"):
        left, right = affine_form(expr.args[0]), affine_form(expr.args[1])
        if left is None or right is None:
            return None
        sign = 1 if op == "add" else -1
        coefficients = dict(left[0])
        for axis, coefficient in right[0].items():
            coefficients[axis] = coefficients.get(axis, 0) + sign * coefficient
        return {a: c for a, c in coefficients.items() if c}, left[1] + sign * right[1]
    if op == "mul":
        left, right = affine_form(expr.args[0]), affine_form(expr.args[1])
        if left is None or right is None or (left[0] and right[0]):
            return None
        (coefficients, constant), scale = (left, right[1]) if not right[0] else (right, left[1])
        return {a: c * scale for a, c in coefficients.items() if c * scale}, constant * scale
    return None


def _canonical(expr):
    """``expr`` with every affine subexpression rewritten as ``c + a*i_a + ...``, the form
    `metajit.ir.indexexpr.simplify` folds divisions in."""
    form = affine_form(expr)
    if form is not None:
        result = indexexpr.const(form[1])
        for axis, coefficient in sorted(form[0].items()):
            result = result + indexexpr.loop(axis) * coefficient
        return result
    if expr.op == "extra":
        return indexexpr.extra(expr.args[0], [_canonical(a) for a in expr.args[1:]])
    if expr.op == "not":
        return indexexpr.logical_not(_canonical(expr.args[0]))
    return indexexpr.binary(expr.op, _canonical(expr.args[0]), _canonical(expr.args[1]))


def rewrite_kernel(kernel, domain, access_index, index, inputs=None, outputs=None):
    """``kernel`` over ``domain`` with every load's and store's index tuple replaced by
    ``access_index(kind, slot, index_tuple)`` (``kind`` "in" or "out") and every other index
    expression (conditions, index values) by ``index(expr)``; ``inputs``/``outputs`` replace
    the buffer types and shapes when given."""
    memo = {}

    def value(expr):
        if expr in memo:
            return memo[expr]
        if expr.op == "load":
            result = K.load(expr.args[0], access_index("in", *expr.args), expr.dtype)
        elif expr.op == "index":
            result = K.index_value(index(expr.args[0]), expr.dtype)
        elif expr.op in ("const", "param"):
            result = expr
        else:
            result = K.apply(expr.op, [value(a) for a in expr.args], expr.dtype)
        memo[expr] = result
        return result

    stores = [K.Store(s.slot, access_index("out", s.slot, s.index), value(s.value), s.reduce_op,
                      index(s.condition)) for s in kernel.stores]
    return K.Kernel(domain, kernel.inputs if inputs is None else inputs,
                    kernel.outputs if outputs is None else outputs, stores, kernel.parameters)


def _split_axis(kernel, axis, factor):
    """``kernel`` with loop ``axis`` split into ``(axis, axis + 1)`` of sizes
    ``(domain[axis] // factor, factor)``, every expression rewritten and simplified."""
    domain = kernel.domain[:axis] + (kernel.domain[axis] // factor, factor) + kernel.domain[axis + 1:]
    loops = [indexexpr.loop(a if a < axis else a + 1) for a in range(len(kernel.domain))]
    loops[axis] = indexexpr.loop(axis) * factor + indexexpr.loop(axis + 1)

    def index(expr):
        return indexexpr.simplify(_canonical(indexexpr.substitute(expr, loops)), domain)

    return rewrite_kernel(kernel, domain, lambda kind, slot, exprs: [index(e) for e in exprs], index)


def _floor_divided_axis(kernel):
    """A ``(loop axis, factor)`` such that a scatter store index floor-divides (or takes
    the remainder of) an affine expression in which that axis moves by ``1/factor`` of the
    divisor (``i // 2``, ``(i * 4) // 8``), and ``factor`` divides the axis's size; or None."""
    for store in kernel.stores:
        if store.reduce_op is None:
            continue
        for expr in store.index:
            for part in _subexpressions(expr):
                if part.op not in ("floordiv", "mod") or not part.args[1].is_const:
                    continue
                form = affine_form(part.args[0])
                divisor = part.args[1].args[0]
                if form is None or divisor <= 1:
                    continue
                for axis, coefficient in sorted(form[0].items()):
                    factor = divisor // math.gcd(coefficient, divisor)
                    size = kernel.domain[axis]
                    if 1 < factor < size and size % factor == 0:
                        return axis, factor
    return None


def as_reduction(kernel):
    """``kernel`` rewritten so that a scatter through floor divisions of the loop indices
    (nearest-upsampling and average-pooling gradients: ``out[i // 2] += x[i]``) becomes a
    plain reduction, by splitting each divided axis into quotient and remainder axes; None
    when the kernel is not such a scatter. GPUs and accelerators then reduce instead of
    using atomics."""
    if classify(kernel).kind != "scatter":
        return None
    current = kernel
    for _ in range(2 * len(kernel.domain)):
        split = _floor_divided_axis(current)
        if split is None:
            break
        current = _split_axis(current, *split)
        if classify(current).kind == "reduction":
            return current
    return None


@dataclasses.dataclass(frozen=True)
class MatmulAttrs:
    """The ``attrs`` of a ``matmul`` `metajit.ir.kernel.LibraryCall`: a batched product
    ``C[b..., m, n] = sum_k A[b..., m, k] * B[b..., k, n]`` read and written in place.

    ``a_slot``/``b_slot`` are the call's input slots of A and B (equal for ``x @ x``);
    ``batch`` the batch sizes; ``a_strides`` (batch..., m, k), ``b_strides`` (batch..., k, n)
    and ``c_strides`` (batch..., m, n) are element strides into the dense buffers; a
    stride of 0 on a batch dim broadcasts the operand, and ``m``/``n`` of 1 with stride 0
    stand for a vector operand. Transposed operands are just other strides (a BLAS
    backend turns a unit stride into a transpose flag and a leading dimension).
    """

    a_slot: int
    b_slot: int
    batch: tuple
    m: int
    n: int
    k: int
    a_strides: tuple
    b_strides: tuple
    c_strides: tuple


def _plain_axes(load, domain):
    """The loop axis each dim of ``load`` reads (None for a size-1 read), or None when a
    dim is not a plain loop index."""
    axes = []
    for expr in load.args[1]:
        if expr.op == "loop" and domain[expr.args[0]] != 1:
            axes.append(expr.args[0])
        elif expr.op == "loop" or expr == indexexpr.const(0):
            axes.append(None)
        else:
            return None
    used = [a for a in axes if a is not None]
    return axes if len(used) == len(set(used)) else None


def _axis_strides(axes, shape):
    """Element stride per loop axis of a buffer whose dims read ``axes``."""
    return {axis: stride for axis, stride in zip(axes, row_major_strides(shape)) if axis is not None}


def matmul_attrs(kernel):
    """`MatmulAttrs` when ``kernel`` is exactly a (batched, broadcast, transposed) matrix
    product — one ``sum`` over a single loop axis ``k`` of ``mul(load A, load B)`` with
    plain loop indices, what ``a @ b`` and its gradients fuse into — else None."""
    if len(kernel.stores) != 1 or len(kernel.inputs) not in (1, 2):
        return None
    store, domain = kernel.stores[0], kernel.domain
    out_dtype, out_shape = kernel.outputs[0]
    value = store.value
    if (store.reduce_op != "sum" or value.op != "mul" or any(operand.op != "load" for operand in value.args)
            or any(dtype != out_dtype for dtype, _ in kernel.inputs)):
        return None
    reduced = store.reduced_axes(domain, out_shape)
    loads = value.args
    if reduced is None or len(reduced) != 1 or {load.args[0] for load in loads} != set(range(len(kernel.inputs))):
        return None
    (k,) = reduced
    axes = [_plain_axes(load, domain) for load in loads]
    if None in axes or domain[k] == 1:
        return None
    used = [{a for a in load_axes if a is not None} for load_axes in axes]
    if any(k not in u for u in used):
        return None
    m_axes, n_axes = sorted(used[0] - used[1])[-1:], sorted(used[1] - used[0])[-1:]
    batch = sorted((used[0] | used[1]) - {k} - set(m_axes) - set(n_axes))
    if any(domain[x] != 1 for x in range(len(domain)) if x not in used[0] | used[1]):
        return None
    a, b = (_axis_strides(load_axes, kernel.inputs[load.args[0]][1]) for load_axes, load in zip(axes, loads))
    c = _axis_strides([e.args[0] if e.op == "loop" else None for e in store.index], out_shape)
    m, n = (m_axes[0] if m_axes else None), (n_axes[0] if n_axes else None)
    return MatmulAttrs(
        loads[0].args[0], loads[1].args[0], tuple(domain[x] for x in batch),
        domain[m] if m is not None else 1, domain[n] if n is not None else 1, domain[k],
        tuple(a.get(x, 0) for x in batch) + (a.get(m, 0), a[k]),
        tuple(b.get(x, 0) for x in batch) + (b[k], b.get(n, 0)),
        tuple(c.get(x, 0) for x in batch) + (c.get(m, 0), c.get(n, 0)))


def as_matmul_call(kernel):
    """``kernel`` as a ``matmul`` `metajit.ir.kernel.LibraryCall` (see `matmul_attrs`), or None;
    also None when no BLAS reads the operands in place (`metajit.toolkit.gemm.gemm_layout`):
    the product then stays a fused kernel on every device."""
    attrs = matmul_attrs(kernel)
    if attrs is None or gemm_layout(attrs) is None:
        return None
    return K.LibraryCall("matmul", attrs, kernel.inputs, kernel.outputs)


def reads_in_place(kernel, slot):
    """Whether ``kernel`` is element-wise and reads input ``slot`` only at the position it
    writes (same shape, plain loop indices), computing every value before writing: an
    output may then share that input's buffer (an in-place update)."""
    if not isinstance(kernel, K.Kernel) or kernel.inputs[slot][1] != kernel.domain:
        return False
    if not all(is_plain_store(store, kernel.domain) for store in kernel.stores):
        return False
    plain = kernel.stores[0].index
    return all(load.args[1] == plain for load in loads(kernel) if load.args[0] == slot)
