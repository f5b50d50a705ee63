"""The CUDA renderer, per kernel class: launch plans, and every source compiles with NVRTC
(on any machine; bench/gpu_check.sh runs them on a GPU)."""
import numpy as np
import pytest

import metajit as jt
from metajit.backends import cuda
from metajit.backends.cuda import compiler, nvrtc, renderer
from metajit.conformance import runner

pytestmark = pytest.mark.skipif(nvrtc.missing_nvrtc_reason() is not None, reason=str(nvrtc.missing_nvrtc_reason()))


def kernels_of(function):
    """The kernels ``function`` launches on the reference device."""
    previous = jt.get_device()
    jt.set_device("reference")
    try:
        with jt.debug.record_kernels() as launched:
            function()
    finally:
        jt.set_device(previous)
    return [entry.kernel for entry in launched if entry.kernel is not None]


def compile_all(kernels):
    kernel_compiler = compiler.KernelCompiler("sm_90")
    sources = cuda.render_sources(kernels, kernel_compiler)
    images = kernel_compiler.images_of([(s.entry_name[len(cuda.SYMBOL_PREFIX):], s.text) for s in sources])
    assert all(image[:4] == b"\x7fELF" for image in images)
    return sources


def plan_of(kernel):
    return renderer.render(kernel, "k")[1]


def test_elementwise_is_one_grid_stride_entry(rng):
    (kernel,) = kernels_of(lambda: (jt.array(rng.random((4, 300), dtype=np.float32)) * 2 + 1).relu().sync())
    (launch,) = plan_of(kernel)
    assert launch.work == 1200 and launch.blocks is None
    compile_all([kernel])


@pytest.mark.parametrize("shape, axis, kind", [((4, 300), 1, "block per row"), ((300, 4), 1, "thread per row"),
                                                ((2, 100000), 1, "split")])
def test_reduction_schedules(rng, shape, axis, kind):
    (kernel,) = kernels_of(lambda: jt.array(rng.random(shape, dtype=np.float32)).sum(axis).sync())
    plan = plan_of(kernel)
    text = renderer.render(kernel, "k")[0]
    if kind == "block per row":
        assert len(plan) == 1 and plan[0].blocks == shape[0] and "__shfl_down_sync" in text
    elif kind == "thread per row":
        assert len(plan) == 1 and plan[0].blocks is None and "__shfl_down_sync" not in text
    else:  # identity fill, then chunks of every row combined atomically
        assert len(plan) == 2 and plan[1].blocks == shape[0] * -(-shape[1] // renderer.SPLIT_CHUNK)
        assert "mj_atomic_combine<mj_op_sum>" in text
    assert "double acc" in text  # float32 sums accumulate in double
    compile_all([kernel])


def test_scatters_fill_then_combine_atomically_for_every_dtype_and_op():
    def scatters():
        index = jt.array(np.array([0, 2, 2, 1]))
        for dtype in ("float32", "float16", "int8", "int64", "float64"):
            values = jt.array(np.array([1, 2, 3, 4])).cast(dtype)
            for op in ("add", "multiply", "maximum", "minimum"):
                values.reindex_reduce(op, (5,), ["@e0(i0)"], extras=[index]).sync()
    kernels = [k for k in kernels_of(scatters) if len(plan_of(k)) == 2]
    assert len(kernels) >= 10
    for kernel in kernels:
        assert "mj_atomic_combine<" in renderer.render(kernel, "k")[0]
    compile_all(kernels)


def test_float16_rounds_every_operation_to_half():
    (kernel,) = kernels_of(lambda: (jt.array(np.array([1.0, 2.0], np.float16)) * 3 + 1).sync())
    text = renderer.render(kernel, "k")[0]
    assert "((float)(mj_f16)(" in text
    compile_all([kernel])


def test_every_conformance_smoke_kernel_renders_and_compiles():
    previous = jt.get_device()
    try:
        with jt.debug.record_kernels() as launched:
            runner.run("reference", "smoke", None, 20261202, None, [], None)
    finally:
        jt.set_device(previous)
    kernels = list({entry.kernel: None for entry in launched if entry.kernel is not None})
    assert len(kernels) > 80
    assert len(compile_all(kernels)) == len(kernels)


def test_the_device_is_listed_with_the_reason_it_cannot_run():
    (info,) = [d for d in jt.devices() if d.name == "cuda"]
    if not info.available:
        assert info.reason
        with pytest.raises(jt.MetajitDeviceError, match="cuda"):
            jt.set_device("cuda")
