"""NCCL through ctypes: numbers against NVIDIA's own ``nccl.h`` (compiled with g++),
the wheel's library and its entry points, clear errors, which backends provide
collectives; on a GPU, a one-rank communicator's collectives against numpy."""
import os
import shutil
import subprocess

import numpy as np
import pytest

import metajit as jt
from metajit.backends.cuda import nccl, nvidia_libraries, runtime

NCCL_MISSING = nvidia_libraries.missing_reason("nccl")
GPU_MISSING = runtime.missing_device_reason()
HEADER_NAMES = {"ncclInt8": nccl.DATA_TYPES["int8"], "ncclUint8": nccl.DATA_TYPES["uint8"],
                "ncclInt32": nccl.DATA_TYPES["int32"], "ncclInt64": nccl.DATA_TYPES["int64"],
                "ncclFloat16": nccl.DATA_TYPES["float16"], "ncclFloat32": nccl.DATA_TYPES["float32"],
                "ncclFloat64": nccl.DATA_TYPES["float64"], "ncclSum": nccl.REDUCTION_OPS["add"],
                "ncclMax": nccl.REDUCTION_OPS["max"], "ncclMin": nccl.REDUCTION_OPS["min"],
                "ncclInvalidUsage": nccl.INVALID_USAGE, "sizeof(ncclUniqueId)": nccl.UNIQUE_ID_BYTES}


def _header_directory():
    """The ``include`` directory beside the loaded ``libnccl.so.2`` (the wheel's layout), or None."""
    if NCCL_MISSING:
        return None
    directory = os.path.join(os.path.dirname(os.path.dirname(nvidia_libraries.load("nccl")._name)), "include")
    return directory if os.path.exists(os.path.join(directory, "nccl.h")) else None


def _header_values(tmp_path, names):
    """The values of ``names`` (plus ``NCCL_VERSION_CODE``) as ``nccl.h`` defines them: a
    program printing them, built with g++ against the header (the CUDA runtime's two
    handle types it declares with stand in for the toolkit's headers)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "cuda_runtime.h").write_text("typedef struct CUstream_st* cudaStream_t;\n"
                                          "typedef struct CUevent_st* cudaEvent_t;\n")
    for name in ("cuda_fp16.h", "cuda_bf16.h", "cuda_fp8.h"):
        (stubs / name).write_text("")
    names = list(names) + ["NCCL_VERSION_CODE"]
    source = tmp_path / "values.cpp"
    source.write_text("#include <cstdio>\n#include <nccl.h>\nint main() {\n" + "".join(
        f'  std::printf("%lld\\n", (long long)({name}));\n' for name in names) + "}\n")
    subprocess.run(["g++", "-w", str(source), "-o", str(tmp_path / "values"), f"-I{_header_directory()}",
                    f"-I{stubs}"], check=True, capture_output=True, text=True)
    printed = subprocess.run([str(tmp_path / "values")], check=True, capture_output=True, text=True).stdout.split()
    return dict(zip(names, map(int, printed)))


@pytest.mark.skipif(shutil.which("g++") is None or _header_directory() is None,
                    reason="needs g++ and the nvidia-nccl wheel (pip install 'metajit[cuda]')")
def test_dtype_and_op_numbers_match_the_header_and_the_library_is_its_version(tmp_path):
    values = _header_values(tmp_path, HEADER_NAMES)
    assert {name: values[name] for name in HEADER_NAMES} == HEADER_NAMES
    assert nccl.Nccl(nvidia_libraries.load("nccl")).version() == values["NCCL_VERSION_CODE"]


@pytest.mark.skipif(bool(NCCL_MISSING), reason=f"{NCCL_MISSING}")
def test_the_wheel_library_resolves_and_makes_unique_ids_without_a_gpu():
    library = nccl.Nccl(nvidia_libraries.load("nccl"))
    assert library.version() >= 21800  # 2.18
    first, second = library.unique_id(), library.unique_id()
    assert len(first) == nccl.UNIQUE_ID_BYTES and first != second


@pytest.mark.skipif(bool(NCCL_MISSING), reason=f"{NCCL_MISSING}")
def test_a_failed_call_names_nccls_reason():
    library = nccl.Nccl(nvidia_libraries.load("nccl"))
    with pytest.raises(jt.MetajitDeviceError, match="NCCL ncclAllReduce failed: invalid argument"):
        library.check(4, "ncclAllReduce")
    with pytest.raises(jt.MetajitDeviceError, match="every rank needs its own GPU: set METAJIT_CUDA_DEVICE"):
        library.check(nccl.INVALID_USAGE, "ncclCommInitRank(rank 1 of 2)")


def test_a_missing_library_is_a_device_error_naming_the_wheel(monkeypatch):
    monkeypatch.setenv("METAJIT_NCCL_LIBRARY", "/nonexistent/libnccl.so.2")
    nvidia_libraries._loaded.cache_clear()
    broadcasts = []
    try:
        with pytest.raises(jt.MetajitDeviceError, match=r"nccl library is not available.*metajit\[cuda\].*nvidia-nccl"):
            nccl.communicator(0, 2, broadcasts.append)
    finally:
        nvidia_libraries._loaded.cache_clear()
    assert broadcasts == []  # every rank fails on its own before any exchange


def test_dtypes_and_ops_nccl_lacks_are_clear_errors():
    for dtype in ("bool", "int16"):
        with pytest.raises(jt.MetajitDtypeError, match=f"NCCL cannot reduce {dtype} values: cast them"):
            nccl.data_type(dtype)
    with pytest.raises(jt.MetajitValueError, match="NCCL reduction op must be one of"):
        nccl.reduction_op("mean")
    assert nccl.data_type(jt.float32) == nccl.DATA_TYPES["float32"]


def test_only_the_cuda_backend_brings_a_collective_library():
    caller = jt.plugins.registry().manager.hook.metajit_backend_collectives
    assert {implementation.plugin_name for implementation in caller.get_hookimpls()} == {"cuda"}


@pytest.mark.skipif(bool(GPU_MISSING or NCCL_MISSING), reason=f"needs a GPU and NCCL: {GPU_MISSING or NCCL_MISSING}")
@pytest.mark.parametrize("dtype", ["float32", "float16", "int32", "int64", "uint8"])
def test_a_one_rank_communicator_runs_every_collective_on_the_gpu(dtype):
    device = runtime.device()
    library = nccl.Nccl(nvidia_libraries.load("nccl"))
    values = (np.arange(1000) % 97).astype(dtype)
    communicator = nccl.Communicator(library, 0, 1, library.unique_id(), int(device.stream))
    source = device.allocate(values.nbytes)
    device.copy_from_host(source, values)
    for run in (lambda d: communicator.all_reduce(source, d, values.size, dtype, "add"),
                lambda d: communicator.all_reduce(source, d, values.size, dtype, "max"),
                lambda d: communicator.all_reduce(source, d, values.size, dtype, "min"),
                lambda d: communicator.reduce(source, d, values.size, dtype, 0),
                lambda d: communicator.broadcast(source, d, values.size, dtype, 0)):
        destination = device.allocate(values.nbytes)
        run(destination)
        result = np.empty_like(values)
        device.copy_to_host(destination, result)  # waits for the stream
        np.testing.assert_array_equal(result, values)  # one rank: every collective is the identity
