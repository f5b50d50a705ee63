"""jt.code's CUDA sources: split, rendered, NVRTC-compiled and host-compiled on any
machine; run on a GPU when one is present (bench/gpu_check.sh runs these there)."""

import numpy as np
import pytest

import metajit as jt
from metajit.backends.cuda import code_op, nvrtc
from metajit.toolkit.inline_source import CodeCall, caller_source

pytestmark = pytest.mark.skipif(nvrtc.missing_nvrtc_reason() is not None,
                                reason=str(nvrtc.missing_nvrtc_reason()))
ARCHITECTURE = "sm_90"  # the H200 of bench/gpu_check.sh; any architecture NVRTC knows compiles here

MULTIPLY = """
    __global__ static void kernel1(@ARGS_DEF) {
        @PRECALC
        int i = threadIdx.x + blockIdx.x * blockDim.x;
        int stride = blockDim.x * gridDim.x;
        for (; i<in0_shape0; i+=stride)
            @out(i) = @in0(i)*@in1(i);
    }
    kernel1<<<(in0_shape0-1)/1024+1, 1024>>>(@ARGS);
"""
ROWS = """
    __device__ float twice(float v) { return 2 * v; }
    __global__ static void rows(float shift, @ARGS_DEF) {
        @PRECALC
        for (int i=blockIdx.x; i<in0_shape0; i+=gridDim.x)
        for (int j=threadIdx.x; j<in0_shape1; j+=blockDim.x)
            @out(i,j) = twice(@in0(i,j)) + shift;
    }
    float shift = data["scale"];
    for (int repeat = 0; repeat < 2; repeat++)
        rows<<<32, dim3(32, 1), 0>>>(shift, in0_p, in0_shape0, in0_shape1, out0_p, out0_shape0, out0_shape1, 0);
"""


def cuda_call(source, inputs, outputs, data_names=(), header=""):
    return CodeCall((("cuda", caller_source(header, "cuda_header"), caller_source(source, "cuda_src")),),
                    inputs, outputs, data_names=data_names)


def test_split_keeps_lines_and_sends_definitions_to_the_device():
    text = "__device__ int f() { return 1; }\n__constant__ float c[2];\nint n = 3;\n__global__ void k() {\n}\nk<<<1,1>>>();"
    device, host = code_op.split_device_code(text)
    assert device.count("\n") == host.count("\n") == text.count("\n")
    assert "__device__ int f()" in device and "__constant__ float c[2];" in device and "__global__ void k()" in device
    assert "int n = 3;" in host and "__" not in host


def test_jittor_example_renders_and_compiles_for_the_gpu():
    call = cuda_call(MULTIPLY, (("float32", 1), ("float32", 1)), (("float32", 1),))
    device, kernels, host = code_op.render(call)
    assert [name for name, _ in kernels] == ["kernel1"]
    assert "kernel1<<<" not in host and "mj_launch_kernel1(mj_dim3((in0_shape0-1)/1024+1), mj_dim3(1024), 0, nullptr" in host
    compiled = code_op.compile_code(call, ARCHITECTURE)
    assert compiled.image[:4] == b"\x7fELF" and compiled.lowered_names[0].startswith("_Z")


def test_two_dims_device_helpers_data_and_launch_options_compile():
    call = cuda_call(ROWS, (("float32", 2),), (("float32", 2),), data_names=("scale",))
    compiled = code_op.compile_code(call, ARCHITECTURE)
    assert len(compiled.lowered_names) == 1


def test_device_errors_name_the_users_line():
    call = cuda_call("""
    __global__ void broken(@ARGS_DEF) {
        @out(0) = undefined_in_kernel;
    }
    broken<<<1, 1>>>(@ARGS);
    """, (("float32", 1),), (("float32", 1),))
    with pytest.raises(jt.MetajitCompileError) as raised:
        code_op.compile_code(call, ARCHITECTURE)
    line = next(k for k, text in enumerate(open(__file__), 1) if "@out(0) = undefined_in_kernel;" in text)
    message = str(raised.value)
    assert f"test_code_op.py({line}): error" in message and "NVRTC" in message
    assert "| @out(0) = undefined_in_kernel;" in message


def test_host_errors_name_the_users_line():
    call = cuda_call(MULTIPLY + "\n    undefined_host_function();\n", (("float32", 1), ("float32", 1)), (("float32", 1),))
    with pytest.raises(jt.MetajitCompileError, match="undefined_host_function"):
        code_op.compile_code(call, ARCHITECTURE)


def test_launching_an_unknown_kernel_is_a_clear_error():
    call = cuda_call("missing<<<1, 1>>>(@ARGS);", (("float32", 1),), (("float32", 1),))
    with pytest.raises(jt.MetajitValueError, match="launches missing, which is not a __global__ function"):
        code_op.compile_code(call, ARCHITECTURE)


def _gpu_reason():
    try:
        from cuda.bindings import driver
        (result,) = driver.cuInit(0)
        if result != driver.CUresult.CUDA_SUCCESS:
            return f"no CUDA driver ({result.name})"
        result, count = driver.cuDeviceGetCount()
        return None if result == driver.CUresult.CUDA_SUCCESS and count > 0 else "no CUDA device"
    except Exception as error:
        return f"no CUDA driver ({type(error).__name__})"


class _DeviceArray:
    """A device copy of a numpy array, with the ``address`` jt.code programs take."""

    def __init__(self, array):
        from cuda.bindings import driver
        self.array = np.ascontiguousarray(array)
        result, self.pointer = driver.cuMemAlloc(max(self.array.nbytes, 1))
        assert result == driver.CUresult.CUDA_SUCCESS
        self.address = int(self.pointer)
        driver.cuMemcpyHtoD(self.pointer, self.array.ctypes.data, self.array.nbytes)

    def numpy(self):
        from cuda.bindings import driver
        driver.cuCtxSynchronize()
        out = np.empty_like(self.array)
        driver.cuMemcpyDtoH(out.ctypes.data, self.pointer, out.nbytes)
        return out


@pytest.mark.skipif(_gpu_reason() is not None, reason=f"needs an NVIDIA GPU: {_gpu_reason()}")
def test_runs_on_the_gpu():
    from cuda.bindings import driver
    result, device = driver.cuDeviceGet(0)
    result, major = driver.cuDeviceGetAttribute(driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device)
    result, minor = driver.cuDeviceGetAttribute(driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device)
    result, context = driver.cuDevicePrimaryCtxRetain(device)
    driver.cuCtxSetCurrent(context)
    architecture = f"sm_{major}{minor}"
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(5000).astype(np.float32), rng.standard_normal(5000).astype(np.float32)
    call = cuda_call(MULTIPLY, (("float32", 1), ("float32", 1)), (("float32", 1),))
    program = code_op.CudaCodeProgram(code_op.compile_code(call, architecture))
    inputs, output = [_DeviceArray(a), _DeviceArray(b)], _DeviceArray(np.zeros(5000, np.float32))
    assert program.run(inputs, [(5000,), (5000,)], [output], [(5000,)], []) == [(5000,)]
    np.testing.assert_allclose(output.numpy(), a * b, rtol=1e-6)
    x = rng.standard_normal((40, 70)).astype(np.float32)
    call = cuda_call(ROWS, (("float32", 2),), (("float32", 2),), data_names=("scale",))
    program = code_op.CudaCodeProgram(code_op.compile_code(call, architecture))
    source, target = _DeviceArray(x), _DeviceArray(np.zeros_like(x))
    program.run([source], [x.shape], [target], [x.shape], [0.5])
    np.testing.assert_allclose(target.numpy(), 2 * x + 0.5, rtol=1e-6)
