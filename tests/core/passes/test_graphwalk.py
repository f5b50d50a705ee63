"""Graph walks: the C accelerator and the Python versions give identical orders and keys."""
import numpy as np
import pytest

import metajit as jt
from metajit.ir import graph
from metajit.passes import graphwalk
from tests.core.passes.test_backward_cache import _random_program, random_program_loss

needs_native = pytest.mark.skipif(graphwalk.native is None, reason="the C extension is not built")


def _walks(targets, root):
    order = graphwalk.realised_order(targets)
    gradient_order = graphwalk.gradient_order(root)
    stopped = graphwalk.gradient_order(root, frozenset({id(gradient_order[len(gradient_order) // 2])}))
    return (order, gradient_order, stopped, graphwalk.plan_entries(order, targets),
            graphwalk.gradient_entries(gradient_order, targets + [root]))


@needs_native
@pytest.mark.parametrize("seed", range(8))
def test_native_and_python_walks_agree_on_random_programs(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    a, b = jt.array(rng.standard_normal((3, 4))), jt.array(rng.standard_normal((3, 4)))
    a.sync()  # one realised leaf, one host leaf
    program = _random_program(rng)
    middle = eval(_random_program(rng, depth=2), {"jt": jt}, {"a": a, "b": b}).sync()  # realised inner node
    out = eval(program, {"jt": jt}, {"a": middle, "b": b}) * 2.0
    targets, root = [out._node, (out + 1.0)._node], out.sum()._node
    native = _walks(targets, root)
    monkeypatch.setattr(graphwalk, "native", None)
    python = _walks(targets, root)
    for got, want in zip(native[:3], python[:3]):
        assert [id(n) for n in got] == [id(n) for n in want]
    assert native[3:] == python[3:]


@needs_native
def test_native_walks_reject_foreign_objects_with_python_errors():
    node = (jt.array(np.ones(3)) * 2.0)._node
    with pytest.raises(AttributeError):
        graphwalk.native.topological_order([42], 0, None)
    with pytest.raises(ValueError, match="not in the order"):
        graphwalk.native.plan_structure([node.inputs[0]], [node])
    with pytest.raises(ValueError, match="after its consumer"):
        graphwalk.native.plan_structure([node], [node])
    with pytest.raises(TypeError):
        graphwalk.native.topological_order([node], 1, [1, 2])


@pytest.mark.parametrize("pure_python", [False, True])
def test_deep_chains_walk_without_recursion(pure_python, monkeypatch):
    if pure_python:
        monkeypatch.setattr(graphwalk, "native", None)
    x = jt.array(np.zeros(2, np.float32))
    for _ in range(20000):
        x = x + 1.0
    order = graphwalk.realised_order([x._node])
    assert len(order) == 60001 and order[-1] is x._node  # each step: constant, broadcast, add
    entries, targets = graphwalk.plan_entries(order, [x._node])
    assert targets == (60000,) and entries[-1][0] == "add"
    np.testing.assert_array_equal(x.numpy(), [20000.0, 20000.0])


def test_nodes_with_unset_slots_are_read_through_getattr():
    bare = object.__new__(graph.Node)
    with pytest.raises(AttributeError):
        graphwalk.realised_order([bare])


@needs_native
@pytest.mark.parametrize("seed", range(4))
def test_native_template_instantiation_builds_the_python_nodes(seed, monkeypatch):
    from metajit.passes import backward_cache
    rng = np.random.default_rng(seed)
    program = _random_program(rng)

    def replayed():
        a, b, loss = random_program_loss(program, rng)
        order = graphwalk.gradient_order(loss._node)
        key = backward_cache.structure_key(order, [a._node, b._node], loss._node)
        template = backward_cache.lookup(key)
        return order, template, loss

    backward_cache.clear()
    a, b, loss = random_program_loss(program, rng)
    jt.grad(loss, [a, b])  # records the template
    order, template, loss = replayed()
    assert backward_cache.is_replayable(template)
    native = backward_cache.instantiate(template, order, loss._node)
    monkeypatch.setattr(graphwalk, "native", None)
    python = backward_cache.instantiate(template, order, loss._node)

    def fields(node, seen):
        if node is None or id(node) in seen:
            return None
        seen.add(id(node))
        return (node.op, node.attrs, node.shape, node.dtype, node.requires_grad, node.grad_boundary,
                node.buffer, node.host_data, tuple(i if i in order else fields(i, seen) for i in node.inputs))
    assert [fields(n, set()) for n in native] == [fields(n, set()) for n in python]


@needs_native
def test_native_instantiation_rejects_bad_templates():
    with pytest.raises(IndexError):
        graphwalk.native.instantiate((("add", (0, 5), (), (), "float32", False, False),), [object()])
    with pytest.raises(TypeError):
        graphwalk.native.instantiate((("add",),), [])


@pytest.fixture(params=["native", "python"])
def walks(request, monkeypatch):
    """Each test using it runs on the C walks and on the Python ones."""
    if request.param == "native" and graphwalk.native is None:
        pytest.skip("the C extension is not built")
    if request.param == "python":
        monkeypatch.setattr(graphwalk, "native", None)
    return request.param


def test_positions_of_finds_a_few_nodes_in_an_order(walks):
    x = jt.array(np.ones(3, np.float32))
    y = (x * 2.0).exp()
    outside = x + 1.0
    order = graphwalk.realised_order([y._node])
    asked = [y._node, outside._node, x._node, y._node]
    expected = [order.index(y._node), -1, order.index(x._node), order.index(y._node)]
    assert graphwalk.positions_of(order, asked) == expected
    assert graphwalk.positions_of(order, []) == []


def test_plan_keys_match_exactly_when_the_structure_does(walks):
    """Equal keys for the same ops, shapes, dtypes, attrs and wiring whatever the constants'
    values; different keys when attrs (the summed axis), a shape or the inputs' placement differ."""

    def key(build, data=np.ones((2, 3), np.float32), realised=True):
        x = jt.array(data)
        if realised:
            x.sync()
        target = build(x)._node
        return graphwalk.plan_key(graphwalk.realised_order([target]), [target], ("extra",))

    base = key(lambda x: (x * 2.0).sum(0))
    assert base == key(lambda x: (x * 5.0).sum(0)) and hash(base) == hash(key(lambda x: (x * 5.0).sum(0)))
    assert base != key(lambda x: (x * 2.0).sum(1))
    assert base != key(lambda x: (x * 2.0).sum(0), np.ones((3, 3), np.float32))
    assert base != key(lambda x: (x * 2.0).sum(0), realised=False)
    assert base != key(lambda x: (2.0 * x.exp()).sum(0))
    assert key(lambda x: x[:, 1:] + x[:, :2]) != key(lambda x: x[:, :2] + x[:, 1:])


def test_held_results_are_the_live_vars_computed_from_a_stored_op(walks):
    x = jt.array(np.ones((3, 3), np.float32))
    above = x * 2.0                        # held, but computed from no stored op
    total = above.sum()                    # a stored op, held
    shifted = (total + 1.0).exp()          # held, computed from it
    dropped = shifted * 3.0                # its Var dies below
    dropped_node = dropped._node
    reassigned = shifted + 2.0             # its Var then holds another node
    reassigned_node = reassigned._node
    reassigned.assign(np.zeros((), np.float32))
    out = dropped_node                     # the target
    del dropped
    order = graphwalk.realised_order([out, reassigned_node])
    stored = ("library", "reduce", "reindex_reduce")
    assert graphwalk.held_results(order, [out], stored) == [total._node, shifted._node]
    assert graphwalk.held_results(order, [out, shifted._node], stored) == [total._node]
    bare = object.__new__(graph.Node)  # a node made without __init__: its holder unset
    bare.op, bare.inputs, bare.buffer = "add", (total._node,), None
    assert graphwalk.held_results(order + [bare], [out], stored) == [total._node, shifted._node]
    assert above is not None and reassigned is not None
