"""Opaque nodes run wave by wave: the values a wave computes that later work reads are
computed once, and a runner with ``start``/``finish`` starts while the wave's later
kernels are still to be launched. Values against numpy."""
import numpy as np

import metajit as jt
from metajit.ir import graph
from metajit.passes import custom_ops, executor

from .test_executor import logged_launches


def test_values_a_wave_computes_for_later_work_are_computed_once(rng):
    a = rng.standard_normal((16, 8)).astype(np.float32)
    total = jt.array(a).sum(0)  # a reduction read by the opaque call's input and after it

    def copy(np, data):
        np.copyto(data["outputs"][0], data["inputs"][0])
    doubled = jt.numpy_code(total.shape, total.dtype, [total * 2], copy)
    with jt.debug.record_kernels() as launched:
        result = (total + doubled).numpy()
    np.testing.assert_allclose(result, 3 * a.sum(0), rtol=1e-5)
    reductions = [k for k in launched if "reduce" in str(k.kernel) or "sum" in str(k.kernel)]
    assert len(reductions) == 1, [str(k.kernel).splitlines()[0] for k in launched]


class DoublingRunner:
    """A background-style runner: ``start`` reads its input when produced, ``finish`` sets
    the output (twice the input)."""

    replayable = False
    structure = ("doubling",)

    def __init__(self, events, name):
        self.events, self.name = events, name

    def start(self, input_nodes):
        self.events.append(("start", self.name))
        return executor.to_host(input_nodes[0]) * 2

    def finish(self, started, output_nodes):
        self.events.append(("finish", self.name))
        for node in output_nodes:
            node.buffer = executor.upload(jt.plugins.current(), started)

    def gradients(self, node, k, grad_node):
        return [None]


def doubled(x, events, name):
    (node,) = custom_ops.opaque_outputs(DoublingRunner(events, name), [x._node], [(x.shape, x.dtype)],
                                        graph.derived_requires_grad)
    return jt.Var.from_node(node)


def test_a_runner_starts_as_soon_as_its_input_is_produced_while_later_kernels_wait(monkeypatch, rng):
    a = rng.standard_normal((8, 8)).astype(np.float32)
    x = jt.array(a)
    late_input = ((x.sum(1).reshape(-1, 1) * x).sum(0).reshape(-1, 1) * x).sum(1)  # needs more kernels
    early_input = x.sum(0)
    events = logged_launches(monkeypatch)
    late, early = doubled(late_input, events, "late"), doubled(early_input, events, "early")
    result = (late + early).numpy()
    starts = [events.index(("start", "early")), events.index(("start", "late"))]
    assert starts[0] < starts[1]  # the input needing fewer kernels is computed and started first
    assert any(e[0] == "launch" for e in events[starts[0]:starts[1]])  # kernels launched after the start
    assert starts[1] < events.index(("finish", "early"))
    s = a.sum(1)[:, None]
    t = (s * a).sum(0)[:, None]
    np.testing.assert_allclose(result, 2 * (t * a).sum(1) + 2 * a.sum(0), rtol=1e-5)
