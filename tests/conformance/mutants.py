"""Mutant backends: the reference backend with one planted bug each, for testing the suite."""
import types
from unittest import mock

import numpy as np

from metajit.ir import indexexpr, kernel as K
from metajit.backends import reference
from metajit.backends.reference import interpreter
from metajit.hookspec import hookimpl
from metajit.plugins import BackendDescription


def _rewrite(expr, function):
    """Apply ``function`` to every node of a value tree, children first."""
    if expr.op in ("load", "const", "param", "index"):
        return function(expr)
    return function(K.ValueExpr(expr.op, tuple(_rewrite(a, function) for a in expr.args), expr.dtype))


def _map_stores(kernel, change):
    return K.Kernel(kernel.domain, kernel.inputs, kernel.outputs,
                    [change(kernel, store) for store in kernel.stores], kernel.parameters)


def broadcast_stride_bug(kernel, store):
    """Loads that broadcast (skip a loop axis) read one element too far along each axis."""
    def shift(expr):
        if expr.op != "load":
            return expr
        used = set().union(*(indexexpr.loop_axes(e) for e in expr.args[1])) if expr.args[1] else set()
        if used >= set(range(len(kernel.domain))):
            return expr
        return K.load(expr.args[0], [e + 1 if e.op == "loop" else e for e in expr.args[1]], expr.dtype)
    return K.Store(store.slot, store.index, _rewrite(store.value, shift), store.reduce_op, store.condition)


def off_by_one_reduction(kernel, store):
    """Plain reductions skip the last element of the last reduced axis."""
    axes = store.reduced_axes(kernel.domain, kernel.outputs[store.slot][1]) if store.reduce_op else None
    if not axes:
        return store
    last = axes[-1]
    condition = indexexpr.binary("and", store.condition,
                                 indexexpr.binary("lt", indexexpr.loop(last), kernel.domain[last] - 1))
    return K.Store(store.slot, store.index, store.value, store.reduce_op, condition)


def negated_scatter(kernel, store):
    """Scatter-adds (what gradients of gathers use) subtract instead."""
    plain = store.reduced_axes(kernel.domain, kernel.outputs[store.slot][1])
    if store.reduce_op != "sum" or plain is not None:
        return store
    return K.Store(store.slot, store.index, K.apply("neg", [store.value], store.value.dtype),
                   store.reduce_op, store.condition)


def make_mutant(name, kernel_change=None, binary_overrides=None, drop_last_byte=False):
    """A backend plugin object: the reference backend with one planted bug."""
    namespace = {attribute: getattr(reference, attribute) for attribute in dir(reference)
                 if attribute.startswith("metajit_backend_")}

    @hookimpl
    def metajit_backend_describe():
        return BackendDescription(name=name, device_kind="cpu", summary=f"mutant: {name}")

    @hookimpl
    def metajit_backend_launch(program, inputs, outputs, parameters):
        kernel = _map_stores(program, kernel_change) if kernel_change else program
        with mock.patch.dict(interpreter.BINARY, binary_overrides or {}):
            interpreter.run_kernel(kernel, inputs, outputs, parameters)

    @hookimpl
    def metajit_backend_copy_to_host(buffer, array):
        count = max(array.nbytes - 1, 0) if drop_last_byte else array.nbytes
        array.reshape(-1).view(np.uint8)[:count] = buffer[:count]

    namespace.update(metajit_backend_describe=metajit_backend_describe,
                     metajit_backend_launch=metajit_backend_launch,
                     metajit_backend_copy_to_host=metajit_backend_copy_to_host)
    return types.SimpleNamespace(**namespace)


MUTANTS = {
    "broadcast_stride": (dict(kernel_change=broadcast_stride_bug), "elementwise.add[float32],index.broadcast_to[int32]"),
    "off_by_one_reduction": (dict(kernel_change=off_by_one_reduction), "reduce.sum[float32],reduce.max[int64]"),
    "wrong_gradient_sign": (dict(kernel_change=negated_scatter), "grad.gather,grad.reindex"),
    "copy_drops_last_byte": (dict(drop_last_byte=True), "memory."),
    "nan_ignored_by_maximum": (dict(binary_overrides={"maximum": np.fmax, "minimum": np.fmin}),
                               "elementwise.maximum,elementwise.minimum"),
}
