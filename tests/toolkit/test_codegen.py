"""The C-style codegen base: every element-wise op through every installed renderer,
unknown ops refused at render time, one prelude for host C++, CUDA and a BANG-style dialect."""
import os
import shutil
import subprocess

import pytest

import metajit as jt
import metajit.backends.cpu  # noqa: F401  (registers the cpu renderer subclass)
from metajit.ir import dtypes, indexexpr, kernel as K, opset
from metajit.toolkit import codegen, host_compiler

from metajit.backends.cuda import nvrtc, renderer as cuda_renderer
from metajit.backends.template_accel import renderer as accel_renderer, toolchain as accel_toolchain

from metajit.sdk.templates import serial_backend as minimal_backend  # registers the serial renderer subclass


def installed_renderers():
    """Every complete renderer (dialects that refuse ops on purpose are tested on their own)."""
    found, stack = [], [codegen.CStyleRenderer]
    while stack:
        for subclass in stack.pop().__subclasses__():
            if not subclass.UNSUPPORTED_OPS:
                found.append(subclass)
            stack.append(subclass)
    return found


def operand_dtype(op):
    if op in ("left_shift", "right_shift"):
        return dtypes.int32
    if op in ("bitwise_not", "bitwise_and", "bitwise_or", "bitwise_xor", "logical_not",
              "logical_and", "logical_or", "logical_xor"):
        return dtypes.bool_ if op.startswith("logical") else dtypes.int16
    return dtypes.float32


def one_op_kernel(op, dtype=None):
    """A kernel storing ``op`` applied to loads of its inputs over a (4, 3) domain."""
    dtype = dtype or operand_dtype(op)
    index = (indexexpr.loop(0), indexexpr.loop(1))
    if op == "select":
        operands = [K.load(0, index, dtypes.bool_), K.load(1, index, dtype), K.load(2, index, dtype)]
        inputs = [(dtypes.bool_, (4, 3)), (dtype, (4, 3)), (dtype, (4, 3))]
        result = dtype
    else:
        arity = 1 if op in opset.UNARY else 2
        operands = [K.load(slot, index, dtype) for slot in range(arity)]
        inputs = [(dtype, (4, 3))] * arity
        result = dtypes.int64 if op == "cast" else opset.result_dtype(op, [dtype] * arity)
    value = K.apply(op, operands, result)
    return K.Kernel((4, 3), inputs, [(result, (4, 3))], [K.Store(0, index, value)])


@pytest.mark.parametrize("renderer", installed_renderers(), ids=lambda r: r.NAME)
def test_every_elementwise_op_renders_and_compiles(renderer, tmp_path):
    assert set(opset.ELEMENTWISE) <= renderer.supported_ops()
    sources = [codegen.render_kernel(renderer, one_op_kernel(op), f"kernel_{op}") for op in opset.ELEMENTWISE]
    sources += [codegen.render_kernel(renderer, one_op_kernel(op, dtypes.float16), f"half_{op}")
                for op in opset.FLOAT_UNARY + ("add", "floor_div", "mod", "pow", "maximum", "cast")]
    if issubclass(renderer, cuda_renderer.CudaRenderer):  # CUDA: through NVRTC, as the backend compiles
        if nvrtc.missing_nvrtc_reason():
            pytest.skip(nvrtc.missing_nvrtc_reason())
        text = codegen.prelude() + cuda_renderer.helpers() + "\n".join(sources)
        image, _ = nvrtc.NvrtcCompiler().compile_uncached(text, "sm_90", nvrtc.DEFAULT_OPTIONS + ("-w",))
        assert image[:4] == b"\x7fELF"
        return
    unit = tmp_path / "unit.cpp"
    flags = ("-std=c++17", "-O0", "-fopenmp", "-fPIC", "-shared")
    text = codegen.prelude() + "\n" + "\n".join(sources)
    if issubclass(renderer, accel_renderer.AccelRenderer):  # BANG-style: through its emulating toolchain
        flags = accel_toolchain.flags(renderer.NRAM_CAPACITY)
        text = accel_toolchain.emulated_source(codegen.prelude() + accel_renderer.KERNEL_HELPERS + "\n".join(sources))
    unit.write_text(text)
    toolchain = host_compiler.HostToolchain(flags)
    assert toolchain.build_shared_library(str(unit), str(tmp_path / "unit.so")) is None


@pytest.mark.parametrize("renderer", installed_renderers(), ids=lambda r: r.NAME)
def test_an_op_without_a_spelling_fails_at_render_time(renderer, monkeypatch):
    monkeypatch.setattr(opset, "ELEMENTWISE", opset.ELEMENTWISE + ("fancy_op",))
    monkeypatch.setattr(opset, "UNARY", opset.UNARY + ("fancy_op",))
    index = (indexexpr.loop(0),)
    kernel = K.Kernel((5,), [(dtypes.float32, (5,))], [(dtypes.float32, (5,))],
                      [K.Store(0, index, K.apply("fancy_op", [K.load(0, index, dtypes.float32)],
                                                 dtypes.float32))])
    with pytest.raises(jt.MetajitCodegenError, match=f"{renderer.NAME} renderer cannot generate.*fancy_op"):
        codegen.render_kernel(renderer, kernel, "k")


def test_a_dialect_can_refuse_ops_it_lacks():
    class NoTrigonometry(minimal_backend.SerialRenderer):
        NAME = "no-trig"
        UNSUPPORTED_OPS = frozenset({"sin", "cos"})
    assert "sin" not in NoTrigonometry.supported_ops()
    codegen.render_kernel(NoTrigonometry, one_op_kernel("exp"), "k")
    with pytest.raises(jt.MetajitCodegenError, match="no-trig renderer cannot generate.*sin"):
        codegen.render_kernel(NoTrigonometry, one_op_kernel("sin"), "k")


def test_literals_and_parameters_are_typed():
    renderer = minimal_backend.SerialRenderer(one_op_kernel("add"))
    assert renderer.literal(float("nan"), dtypes.float32) == "((float)MJ_NAN)"
    assert renderer.literal(float("-inf"), dtypes.float64) == "((double)(-MJ_INF))"
    assert renderer.literal(-3, dtypes.int8) == "((mj_i8)-3LL)"
    assert renderer.literal(1, dtypes.bool_) == "true"
    assert renderer.parameter_read(2, dtypes.float16) == "(mj_f16)((const double*)parameters)[2]"


PRELUDE_USE = """
#include "{prelude}"
{qualifier} void use(const float* a, float* out, const mj_f16* h, mj_f16* h_out, const int* n, int* n_out, int i) {{
  out[i] = mj_maximum(mj_exp(a[i]), mj_ffloordiv(a[i], 3.0f)) + mj_fmod(a[i], 2.0f) + mj_sigmoid(a[i])
         + mj_pow(a[i], a[i]) + mj_round(a[i]) + mj_erf(a[i]) + (float)MJ_NAN + (float)mj_fmod((double)a[i], 2.0);
  h_out[i] = mj_maximum(mj_tanh(h[i]), mj_fmod(h[i], h[i]));
  n_out[i] = mj_idiv<int>(n[i], 3) + mj_imod<int>(n[i], -3) + mj_pow(n[i], n[i]) + (int)mj_clamp(i, 0, 3);
}}
"""


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed (checks the prelude as CUDA code)")
def test_prelude_compiles_as_cuda_device_code(tmp_path):
    source = tmp_path / "use.cu"
    source.write_text(PRELUDE_USE.format(prelude=codegen._PRELUDE_PATH, qualifier='extern "C" __global__'))
    result = subprocess.run(["nvcc", "-c", "-arch=sm_80", str(source), "-o", str(tmp_path / "use.o")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_prelude_compiles_in_the_bang_style_dialect(tmp_path):
    # no BANG compiler here: its qualifiers and half type are emulated as g++ does for template_accel
    source = tmp_path / "use.cpp"
    source.write_text("#define __mlu_func__\n#define __mlu_entry__\ntypedef _Float16 half;\n"
                      + PRELUDE_USE.format(prelude=codegen._PRELUDE_PATH, qualifier="__mlu_entry__"))
    command = host_compiler.compiler_command() + ["-std=c++17", "-D__BANG__", "-c", str(source),
                                                  "-o", str(tmp_path / "use.o")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.path.exists(tmp_path / "use.o")
