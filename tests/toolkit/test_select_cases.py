"""The decision tree that lets a renderer test a concat's selects once per inner run."""
from metajit.ir import dtypes, indexexpr
from metajit.ir.kernel import Store, apply, constant, index_value, load, parameter
from metajit.toolkit.select_cases import Branch, Case, split_by_invariant_selects

F32 = dtypes.float32
LOOPS = (indexexpr.loop(0), indexexpr.loop(1))


def outer_below(slot):
    """``i0 < p<slot>``: a condition the same for a whole run of the inner loop (i1)."""
    return apply("lt", [index_value(indexexpr.loop(0), dtypes.int32), parameter(slot, dtypes.int32)], dtypes.bool_)


def joined(count):
    """A select tree choosing between ``count`` inputs by the outer index, scaled by 2."""
    value = load(count - 1, LOOPS, F32)
    for slot in reversed(range(count - 1)):
        value = apply("select", [outer_below(slot), load(slot, LOOPS, F32), value], F32)
    return Store(0, LOOPS, apply("mul", [value, constant(2.0, F32)], F32))


def cases(tree):
    return [tree] if isinstance(tree, Case) else cases(tree.if_true) + cases(tree.if_false)


def test_each_case_reads_one_input_and_keeps_the_rest_of_the_value():
    tree = split_by_invariant_selects([joined(4)], inner_axis=1)
    assert isinstance(tree, Branch) and tree.condition == outer_below(0)
    leaves = cases(tree)
    assert [leaf.stores[0].value for leaf in leaves] == [
        apply("mul", [load(slot, LOOPS, F32), constant(2.0, F32)], F32) for slot in range(4)]


def test_conditions_on_the_inner_index_or_a_constant_side_are_not_split():
    inner = apply("lt", [index_value(indexexpr.loop(1), dtypes.int32), parameter(0, dtypes.int32)], dtypes.bool_)
    varying = Store(0, LOOPS, apply("select", [inner, load(0, LOOPS, F32), load(1, LOOPS, F32)], F32))
    assert split_by_invariant_selects([varying], inner_axis=1) is None
    guard = Store(0, LOOPS, apply("select", [outer_below(0), load(0, LOOPS, F32), constant(0.0, F32)], F32))
    assert split_by_invariant_selects([guard], inner_axis=1) is None


def test_too_many_cases_leave_the_kernel_as_it_is():
    assert len(cases(split_by_invariant_selects([joined(8)], inner_axis=1, max_cases=8))) == 8
    assert split_by_invariant_selects([joined(9)], inner_axis=1, max_cases=8) is None
