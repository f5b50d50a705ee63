"""jt.code: inline C++ operators, checked against numpy (and finite differences for grads)."""
import numpy as np
import pytest

import metajit as jt
from metajit.backends.cpu import code_op as cpu_code_op
from metajit.examples.knn_code import knn
from tests.threads import run_in_threads

def test_knn_matches_numpy_brute_force(rng):
    points = rng.standard_normal((200, 3)).astype(np.float32)
    found = knn(jt.array(points), 10).numpy()
    distances = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    expected = np.argsort(distances, axis=1, kind="stable")[:, :10]
    chosen = np.take_along_axis(distances, found, axis=1)
    np.testing.assert_allclose(chosen, np.take_along_axis(distances, expected, axis=1), rtol=1e-5)
    assert (found[:, 0] == np.arange(200)).all()
    with pytest.raises(jt.MetajitValueError, match="k=300 is more than the 200 points"):
        knn(jt.array(points), 300)


def test_element_access_shapes_strides_types_and_pointers(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    y = rng.integers(-5, 5, (4,)).astype(np.int64)
    out = jt.code((3, 4), "float64", [jt.array(x), jt.array(y)], cpu_src="""
        static_assert(sizeof(in0_type) == 4 && sizeof(in1_type) == 8 && sizeof(out_type) == 8, "types");
        if (in0->num != 12 || in0->shape[1] != 4 || in0_stride0 != 4 || in0_stride1 != 1) throw std::runtime_error("meta");
        for (int i = 0; i < in0_shape0; i++)
            for (int j = 0; j < in0_shape1; j++)
                @out(i, j) = @in0(i, j) * @in1(j) + in0_p[i * in0_stride0 + j];  // @in0(i, j) in a comment
        const char* text = "@not_a_macro(";
        (void)text;
    """).numpy()
    np.testing.assert_allclose(out, x.astype(np.float64) * y + x, rtol=1e-6)


def test_inputs_are_computed_first_and_outputs_feed_fused_kernels(rng):
    x = rng.standard_normal(16).astype(np.float32)
    lazy = jt.array(x) * 2 + 1
    doubled = jt.code(lazy.shape, lazy.dtype, [lazy], cpu_src="for (int i=0;i<in0_shape0;i++) @out(i) = @in0(i) * 2;")
    np.testing.assert_allclose((jt.exp(doubled) - 3).numpy(), np.exp((x * 2 + 1) * 2) - 3, rtol=1e-5)


def test_several_outputs():
    a = jt.array([3, 2, 1, 7])
    low, high = jt.code([(1,), (1,)], [a.dtype, a.dtype], [a], cpu_src="""
        @alias(a, in0)
        @alias(b, out0)
        @alias(c, out1)
        @b(0) = @c(0) = @a(0);
        for (int i=0; i<a_shape0; i++) {
            @b(0) = std::min(@b(0), @a(i));
            @c(0) = std::max(@c(0), @a(i));
        }
    """)
    assert high.item() == 7 and low.item() == 1


def test_varying_output_shapes():
    a = jt.array([5, -4, 3, -2, 1])
    b, c = jt.code([(-5,), (-5,)], [a.dtype, a.dtype], [a], cpu_src="""
        @alias(a, in0)
        @alias(b, out0)
        @alias(c, out1)
        int num_b=0, num_c=0;
        for (int i=0; i<a_shape0; i++) {
            if (@a(i)>0) @b(num_b++) = @a(i);
            else @c(num_c++) = @a(i);
        }
        b->set_shape({num_b});
        c->set_shape({num_c});
    """)
    assert b.shape == (3,) and c.shape == (2,)
    np.testing.assert_array_equal(b.numpy(), [5, 3, 1])
    np.testing.assert_array_equal((c * 10).numpy(), [-40, -20])


def test_set_shape_beyond_the_maximum_is_a_clear_error():
    a = jt.array([1.0, 2.0])
    with pytest.raises(jt.MetajitValueError, match="exceed"):
        jt.code((-2,), a.dtype, [a], cpu_src="out0->set_shape({3});")


def test_data_values_change_without_recompiling(monkeypatch):
    compiles = []
    original = cpu_code_op.compile_code
    monkeypatch.setattr(cpu_code_op, "compile_code", lambda call: compiles.append(call) or original(call))
    x = np.arange(6, dtype=np.float32)
    source = "for (int i=0;i<in0_shape0;i++) @out(i) = @in0(i) * data[\"scale\"] + data[\"shift\"];"
    for scale, shift in ((2, 1), (-3.5, 0.25), (10, -1)):
        out = jt.code(x.shape, "float32", [jt.array(x)], cpu_src=source, data={"scale": scale, "shift": shift})
        np.testing.assert_allclose(out.numpy(), x * scale + shift)
    assert len(compiles) <= 1  # the first call may find the operator in this process already
    longer = jt.code((9,), "float32", [jt.array(np.ones(9, np.float32))], cpu_src=source,
                     data={"scale": 1, "shift": 1})
    np.testing.assert_allclose(longer.numpy(), np.full(9, 2.0))
    assert len(compiles) <= 1  # a new shape is a run-time argument too


def test_one_call_site_with_different_sources_dtypes_and_ranks():
    results = []
    for factor, dtype, shape in ((2, "float32", (3,)), (3, "float64", (3,)), (4, "float32", (1, 3))):
        x = jt.array(np.arange(3, dtype=dtype).reshape(shape))
        results.append(jt.code(x.shape, x.dtype, [x], cpu_src=f"for (int i = 0; i < in0->num; i++) "
                                                              f"out0_p[i] = in0_p[i] * {factor};").numpy())
    for result, factor in zip(results, (2, 3, 4)):
        np.testing.assert_array_equal(result.reshape(-1), np.arange(3) * factor)
    assert [r.dtype for r in results] == [np.float32, np.float64, np.float32] and results[2].shape == (1, 3)


def test_missing_data_key_is_a_clear_error():
    with pytest.raises(jt.MetajitValueError, match="data has no key 'k'"):
        jt.code((1,), "float32", [jt.array([1.0])], cpu_src='@out(0) = data["k"];', data={"j": 1}).sync()


def test_compile_options_defines_and_include_paths(tmp_path):
    (tmp_path / "my_scale.h").write_text("inline float my_scale(float v) { return v * MY_FACTOR; }\n")
    x = jt.array([1.0, 2.0])
    out = jt.code(x.shape, x.dtype, [x], cpu_header='#include "my_scale.h"',
                  cpu_src="for (int i=0;i<in0_shape0;i++) @out(i) = my_scale(@in0(i)) + HAHAHA;",
                  compile_options=["-DMY_FACTOR=3", f"-I{tmp_path}", "-DHAHAHA=0.5"])
    np.testing.assert_allclose(out.numpy(), [3.5, 6.5])
    jittor_style = jt.code(x.shape, x.dtype, [x], cpu_src="for (int i=0;i<in0_shape0;i++) @out(i) = HAHAHA;")
    jittor_style.compile_options = {"FLAGS: -DHAHAHA=233 ": 1}
    assert jittor_style.compile_options == {"FLAGS: -DHAHAHA=233": 1}
    np.testing.assert_allclose(jittor_style.numpy(), [233, 233])


def test_outputs_given_as_vars_are_updated():
    a = jt.array([1.0, 2.0, 3.0])
    target = jt.zeros(3)
    (result,) = jt.code([a], [target], cpu_src="for (int i=0;i<in0_shape0;i++) @out0(i) = @in0(i) + 1;")
    assert result is target
    np.testing.assert_allclose(target.numpy(), [2, 3, 4])


def finite_difference(function, x, eps=1e-3):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += eps
        minus[index] -= eps
        grad[index] = (function(plus) - function(minus)) / (2 * eps)
    return grad


CUBE_SOURCE = "for (int i=0;i<in0_shape0;i++) @out(i) = @in0(i) * @in0(i) * @in0(i) * data[\"c\"];"
CUBE_GRAD = "for (int i=0;i<in0_shape0;i++) @out(i) = @dout(i) * 3 * @pout(i) / @in0(i);"


def cube(x):
    return jt.code(x.shape, x.dtype, [x], cpu_src=CUBE_SOURCE, cpu_grad_src=[CUBE_GRAD], data={"c": 0.5})


def test_gradient_sources_against_finite_differences(rng):
    x = rng.uniform(0.5, 1.5, 7)
    weights = rng.standard_normal(7)

    def loss(value):
        return (cube(jt.array(value)) * jt.array(weights)).sum()
    variable = jt.array(x)
    (grad,) = jt.grad(loss(variable), [variable])
    expected = finite_difference(lambda v: loss(v).item(), x)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-5)


def test_gradient_sources_of_two_inputs_and_two_outputs(rng):
    a, b = rng.standard_normal(5), rng.standard_normal(5)
    grad_a = """for (int i=0;i<in0_shape0;i++) @out(i) = @dout(i) * (@pout1(i) == @pout(i) ? 1.0 : @in1(i));"""
    grad_b = """for (int i=0;i<in0_shape0;i++) @out(i) = @dout(i) * (@pout1(i) == @pout(i) ? 1.0 : @in0(i));"""

    def forward(x, y):
        return jt.code([x.shape, x.shape], [x.dtype, x.dtype], [x, y], cpu_src="""
            for (int i=0;i<in0_shape0;i++) { @out0(i) = @in0(i) * @in1(i); @out1(i) = @in0(i) + @in1(i); }
        """, cpu_grad_src=[grad_a, grad_b])

    va, vb = jt.array(a), jt.array(b)
    product, total = forward(va, vb)
    ga, gb = jt.grad((product * 3 + total * total).sum(), [va, vb])
    np.testing.assert_allclose(ga.numpy(), 3 * b + 2 * (a + b), rtol=1e-6)
    np.testing.assert_allclose(gb.numpy(), 3 * a + 2 * (a + b), rtol=1e-6)


def test_training_through_a_code_op_with_optim_step(rng):
    target = rng.uniform(0.5, 1.5, 4)
    weight = jt.array(np.ones(4))
    optimizer = jt.optim.SGD([weight], lr=0.05)
    for _ in range(60):
        optimizer.step(((cube(weight) - jt.array(target)) ** 2).sum())
    np.testing.assert_allclose(0.5 * weight.numpy() ** 3, target, rtol=1e-3)


def test_compile_errors_name_the_users_line():
    x = jt.array([1.0])
    with pytest.raises(jt.MetajitCompileError) as raised:
        jt.code(x.shape, x.dtype, [x], cpu_src="""
            float fine = 1;
            @out(0) = not_declared_anywhere(fine);
        """).sync()
    message = str(raised.value)
    line = next(k for k, text in enumerate(open(__file__), 1) if "@out(0) = not_declared_anywhere(fine);" in text)
    assert f"test_code_op.py:{line}:" in message
    assert "not_declared_anywhere" in message and "| @out(0) = not_declared_anywhere(fine);" in message
    assert "mj_code_var" not in message  # no generated wrapper in the message


def test_wrong_index_count_names_the_line():
    x = jt.array([[1.0]])
    with pytest.raises(jt.MetajitValueError, match=r"@in0\(i\) gives 1 indices but in0 has 2 dims"):
        jt.code((1,), x.dtype, [x], cpu_src="int i = 0;\n@out(0) = @in0(i);").sync()


def test_a_device_without_a_source_for_it_lists_the_sources_given():
    if jt.get_device() == "cuda":
        pytest.skip("cuda_src is this device's own source (this host code would write device memory)")
    x = jt.array([1.0])
    with pytest.raises(jt.MetajitDeviceError, match="needs cpu_src.*but this operator has only cuda_src"):
        jt.code(x.shape, x.dtype, [x], cuda_src="@out(0) = 1;").sync()


def test_independent_graphs_in_threads():
    def work(index):
        x = np.full(8, float(index), np.float32)
        out = jt.code(x.shape, "float32", [jt.array(x)],
                      cpu_src="for (int i=0;i<in0_shape0;i++) @out(i) = @in0(i) + data[\"k\"];", data={"k": index})
        return (out * 1).numpy()
    for index, value in enumerate(run_in_threads(work, 4)):
        np.testing.assert_allclose(value, np.full(8, 2.0 * index))
