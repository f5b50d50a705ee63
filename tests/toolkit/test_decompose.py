"""``native_ops`` is honoured: a backend declaring only some element-wise ops gets kernels
rewritten into them (its renderer refuses the others, so nothing slips through), and the
rewritten ops pass the conformance properties of the ops themselves (reference: numpy
semantics via the reference backend, at edge values)."""
import types

import numpy as np
import pytest

import metajit as jt
from metajit.ir import opset
from metajit.conformance import runner
from metajit.hookspec import hookimpl
from metajit.plugins import BackendDescription
from metajit.toolkit.decompose import RULES

from metajit.sdk.templates import serial_backend as minimal_backend

DECOMPOSED = tuple(sorted(RULES))


class NoDecomposedOps(minimal_backend.SerialRenderer):
    """A dialect that cannot spell any op core knows how to decompose."""

    NAME = "restricted"
    UNSUPPORTED_OPS = frozenset(DECOMPOSED)


def restricted_plugin(native_ops):
    hooks = {name: getattr(minimal_backend, name) for name in dir(minimal_backend)
             if name.startswith("metajit_backend_")}

    @hookimpl
    def metajit_backend_describe():
        return BackendDescription(name="restricted", device_kind="accelerator", native_ops=native_ops)

    @hookimpl
    def metajit_backend_codegen(kernels):
        return minimal_backend.render(kernels, NoDecomposedOps)

    hooks.update(metajit_backend_describe=metajit_backend_describe,
                 metajit_backend_codegen=metajit_backend_codegen)
    return types.SimpleNamespace(**hooks)


@pytest.fixture
def restricted():
    native = tuple(op for op in opset.ELEMENTWISE if op not in RULES)
    jt.plugins.register_backend(restricted_plugin(native), "restricted")
    previous = jt.get_device()
    jt.set_device("restricted")
    yield
    jt.set_device(previous)
    jt.plugins.unregister_backend("restricted")


def test_decomposed_ops_pass_their_conformance_properties(restricted):
    patterns = ",".join(f"elementwise.{op}[*" for op in DECOMPOSED)
    results, _ = runner.run("restricted", "standard", 8, 20261202, patterns, [], None)
    ran = {r.name.split("[")[0].split(".")[1] for r in results}
    assert {"maximum", "minimum", "sigmoid", "ne", "logical_xor", "abs", "ceil", "sub"} <= ran
    failed = [f"{r.name}: {r.message}\n{r.snippet}" for r in results if r.status == "failed"]
    assert not failed, "\n\n".join(failed)


def test_signed_zero_nan_and_wraparound_survive_decomposition(restricted):
    x = np.array([-0.0, 0.0, np.nan, -np.inf, 3.5, -2.5], np.float32)
    y = np.array([0.0, -0.0, 1.0, np.nan, np.inf, -2.5], np.float32)
    a, b = jt.array(x), jt.array(y)
    np.testing.assert_array_equal(jt.maximum(a, b).numpy(), np.maximum(x, y))
    np.testing.assert_array_equal(jt.minimum(a, b).numpy(), np.minimum(x, y))
    np.testing.assert_array_equal((a != b).numpy(), x != y)
    np.testing.assert_array_equal(a.ceil().numpy(), np.ceil(x))
    n = np.array([0, 1, 200, 255], np.uint8)
    np.testing.assert_array_equal((jt.array(n) - jt.array(n[::-1])).numpy(), n - n[::-1])
    np.testing.assert_array_equal((-jt.array(n)).numpy(), (-n.astype(np.int64)).astype(np.uint8))


def test_an_op_without_a_route_to_native_ops_names_it(restricted):
    jt.plugins.unregister_backend("restricted")
    native = tuple(op for op in opset.ELEMENTWISE if op not in RULES and op != "erf")
    jt.plugins.register_backend(restricted_plugin(native), "restricted")
    jt.set_device("restricted")
    with pytest.raises(jt.MetajitCodegenError, match="'erf'.*native_ops"):
        jt.array([0.5, 1.0]).erf().numpy()
