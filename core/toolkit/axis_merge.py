"""Merging adjacent loop axes that every buffer walks as one row-major run.

An element-wise kernel over a contiguous NCHW map of 7x7 pixels loops ``for h < 7: for
w < 7``: its SIMD loop runs 7 iterations, mostly the scalar remainder. When every load
and store reads the two axes at adjacent full-size dims (``x[n, c, h, w]``) or not at all
(a per-channel scale ``s[n, c, 0, 0]``), the pair is one loop of 49 over buffers viewed
with those dims merged: the same addresses in the same order. Example::

    kernel = merge_contiguous_axes(kernel)   # domain (1, 1152, 7, 7) -> (1, 56448, 1, 1)

The merged kernel keeps its number of axes (a merged-away axis has size 1) and describes
the same buffers, so a renderer can use it in place of the original.
"""
from metajit.ir import indexexpr
from metajit.toolkit import analysis


def merge_contiguous_axes(kernel):
    """``kernel`` with every pair of adjacent loop axes that all its accesses walk as one
    row-major run merged into the outer axis (innermost pairs first, repeatedly); the
    kernel itself when nothing merges. Reductions, scatters and gathers (data-dependent
    indices) are left as they are."""
    if any(store.reduce_op is not None for store in kernel.stores) or any(
            analysis.has_extra(expr) for expr in analysis.index_expressions(kernel)):
        return kernel
    while True:
        loops = [axis for axis, size in enumerate(kernel.domain) if size != 1]
        for outer, inner in reversed(list(zip(loops, loops[1:]))):
            merged = _merge_pair(kernel, outer, inner)
            if merged is not None:
                kernel = merged
                break
        else:
            return kernel


_BLOCKED = object()  # an access that uses the pair other than as adjacent full dims


def _run_position(index, shape, domain, outer, inner):
    """The dim ``p`` at which ``index`` reads ``outer`` then ``inner`` as full adjacent dims
    (``index[p:p + 2] == (i_outer, i_inner)``), None when it reads neither, else `_BLOCKED`."""
    pair = {outer, inner}
    touching = [p for p, expr in enumerate(index) if indexexpr.loop_axes(expr) & pair]
    if not touching:
        return None
    p = touching[0]
    if (touching == [p, p + 1] and index[p] == indexexpr.loop(outer) and index[p + 1] == indexexpr.loop(inner)
            and shape[p] == domain[outer] and shape[p + 1] == domain[inner]):
        return p
    return _BLOCKED


def _merge_pair(kernel, outer, inner):
    """``kernel`` with loop ``inner`` folded into loop ``outer``, or None when some access
    or index expression does not allow it."""
    pair = {outer, inner}
    nodes = analysis.value_nodes(kernel)
    if any(indexexpr.loop_axes(store.condition) & pair for store in kernel.stores) or any(
            indexexpr.loop_axes(expr) & pair for expr in analysis.index_values(kernel, nodes)):
        return None
    accesses = [("in", *node.args) for node in nodes if node.op == "load"]
    accesses += [("out", store.slot, store.index) for store in kernel.stores]
    positions = {}
    for kind, slot, index in accesses:
        shape = (kernel.inputs if kind == "in" else kernel.outputs)[slot][1]
        position = _run_position(index, shape, kernel.domain, outer, inner)
        if position is _BLOCKED or positions.setdefault((kind, slot), position) != position:
            return None
    domain = list(kernel.domain)
    domain[outer], domain[inner] = domain[outer] * domain[inner], 1
    buffers = {"in": list(kernel.inputs), "out": list(kernel.outputs)}
    for (kind, slot), p in positions.items():
        if p is not None:
            dtype, shape = buffers[kind][slot]
            shape = tuple(shape)
            buffers[kind][slot] = (dtype, shape[:p] + (shape[p] * shape[p + 1], 1) + shape[p + 2:])

    def access_index(kind, slot, index):
        p = positions[(kind, slot)]
        if p is None:
            return index
        return index[:p] + (indexexpr.loop(outer), indexexpr.loop(inner)) + index[p + 2:]  # inner: size 1

    return analysis.rewrite_kernel(kernel, tuple(domain), access_index, lambda expr: expr,
                                   buffers["in"], buffers["out"])
