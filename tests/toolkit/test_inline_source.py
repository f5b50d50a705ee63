"""The jt.code macro language: expansion, aliases, kept line numbers, located sources."""
import pytest

from metajit.errors import MetajitValueError
from metajit.toolkit.inline_source import CodeCall, MacroExpander, UserSource, caller_source, render_host_entry


def make_call(inputs=(("float32", 2),), outputs=(("float32", 1),), aliases=()):
    return CodeCall((("cpu", UserSource(""), UserSource("")),), inputs, outputs, aliases)


def expand(text, **kwargs):
    return MacroExpander(make_call(**kwargs)).expand(UserSource(text))


def test_element_access_uses_strides_and_nests():
    assert expand("@out(@in0(i, j))") == "out0_p[(in0_p[(i)*in0_stride0+(j)*in0_stride1])*out0_stride0]"


def test_zero_dim_access():
    assert expand("@in0()", inputs=(("float32", 0),)) == "in0_p[0]"


def test_aliases_rename_every_derived_name_and_hold_in_later_texts():
    expander = MacroExpander(make_call())
    assert expander.expand(UserSource("@alias(points, in0)")) == ""
    body = expander.expand(UserSource("points_shape1 + points_stride0; points_type* p = points_p; @points(1, 2); points->num"))
    assert body == "in0_shape1 + in0_stride0; in0_type* p = in0_p; in0_p[(1)*in0_stride0+(2)*in0_stride1]; in0->num"
    assert expand("out_shape0 + @out(3)") == "out0_shape0 + out0_p[(3)*out0_stride0]"


def test_comments_and_strings_are_left_alone():
    text = '// @in0(1)\n/* @bogus */ const char* s = "@out(";'
    assert expand(text) == text


def test_expansion_keeps_line_count():
    text = "x = @in0(1,\n  2);\n@alias(a,\n in0)\ny = 1;"
    assert expand(text).count("\n") == text.count("\n")


def test_mistakes_name_the_line():
    with pytest.raises(MetajitValueError, match=r"@in0\(1\) gives 1 indices but in0 has 2 dims \(<jt.code>, line 2\)"):
        expand("int a;\n@in0(1)")
    with pytest.raises(MetajitValueError, match="unknown macro @in7"):
        expand("@in7(1)")
    with pytest.raises(MetajitValueError, match="in3 is not an input or output"):
        expand("@alias(x, in3)")


def test_gradient_aliases_apply_before_the_header():
    call = make_call(inputs=(("float32", 1), ("float32", 1)), aliases=(("dout", "in1"),))
    assert MacroExpander(call).expand(UserSource("@dout(0)")) == "in1_p[(0)*in1_stride0]"


def test_args_macros_cover_every_variable():
    expander = MacroExpander(make_call())
    assert expander.expand(UserSource("@ARGS_DEF")) == (
        "in0_type* __restrict__ in0_p, index_t in0_shape0, index_t in0_shape1, "
        "out0_type* __restrict__ out0_p, index_t out0_shape0, int mj_unused")
    assert expander.expand(UserSource("@ARGS")) == "in0_p, in0_shape0, in0_shape1, out0_p, out0_shape0, 0"
    assert "const index_t in0_stride0 = in0_stride1*in0_shape1;" in expander.expand(UserSource("@PRECALC"))


def test_sources_are_located_in_the_calling_file():
    text = """
        int located_here = 1;
    """
    source = caller_source(text, "cpu_src")
    assert source.origin == __file__
    assert open(__file__).read().split("\n")[source.first_line] == "        int located_here = 1;"
    built = caller_source("int " + "built = 1;", "cpu_src")
    assert built.origin == "<cpu_src>" and built.site.startswith(__file__ + ":")


def test_entry_maps_the_body_to_its_file_line():
    body = UserSource("@out(0) = 1;", "model.py", 40)
    call = CodeCall((("cpu", UserSource(""), body),), (), (("float32", 1),))
    text = render_host_entry(call, "cpu", "entry")
    assert '#line 40 "model.py"\nout0_p[(0)*out0_stride0] = 1;' in text
    assert 'extern "C" int entry(' in text
