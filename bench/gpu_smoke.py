"""A first look at the cuda device on a GPU machine: each check runs on its own, compares the
cuda device with numpy (or torch on the CPU, or the cpu device) and prints OK or the error,
so one run shows every independent failure. Part of bench/gpu_check.sh.

    python bench/gpu_smoke.py [device]      (default cuda)
"""
import sys
import time
import traceback

import numpy as np

import metajit as jt

CHECKS = []


def check(function):
    """Register ``function`` as a check."""
    CHECKS.append(function)
    return function


def close(ours, expected, rtol=1e-5, atol=1e-6):
    """Assert ``ours`` equals ``expected`` within the tolerances (compared in float64)."""
    np.testing.assert_allclose(np.asarray(ours, np.float64), np.asarray(expected, np.float64), rtol=rtol, atol=atol)


RNG = np.random.default_rng(0)
DEVICE = sys.argv[1] if len(sys.argv) > 1 else "cuda"  # another device checks this script itself


@check
def round_trip():
    for dtype in ("float32", "float16", "float64", "int8", "int32", "int64", "bool", "uint8"):
        data = (RNG.standard_normal((3, 5)) * 10).astype(dtype)
        np.testing.assert_array_equal(jt.array(data).numpy(), data)


@check
def elementwise_chain():
    a, b, c = (RNG.standard_normal(100_003).astype(np.float32) for _ in range(3))
    close(((jt.array(a) * jt.array(b) + jt.array(c)).relu() * 0.5).numpy(), np.maximum(a * b + c, 0) * 0.5)
    close(jt.array(a).exp().log1p().tanh().numpy(), np.tanh(np.log1p(np.exp(a))), rtol=1e-5)
    close(jt.array(a).sigmoid().numpy(), 1 / (1 + np.exp(-a.astype(np.float64))), rtol=1e-5)


@check
def integer_semantics():
    a = np.array([7, -7, 7, -7, 2**31 - 1], np.int32)
    b = np.array([2, 2, -2, -2, 1], np.int32)
    np.testing.assert_array_equal((jt.array(a) // jt.array(b)).numpy(), a // b)
    np.testing.assert_array_equal((jt.array(a) % jt.array(b)).numpy(), a % b)
    np.testing.assert_array_equal((jt.array(a) + jt.array(b)).numpy(), (a.astype(np.int64) + b).astype(np.int32))


@check
def float16():
    data = RNG.standard_normal(1000).astype(np.float16)
    ours = (jt.array(data) * np.float16(1.1) + np.float16(0.3)).exp().numpy()
    np.testing.assert_array_equal(ours, np.exp(data * np.float16(1.1) + np.float16(0.3)))


@check
def reductions():
    for shape, axis in (((4, 300), 1), ((300, 5), 1), ((3, 70000), 1), ((6, 7, 40), (0, 2)), ((200,), 0),
                        ((1 << 22,), 0), ((1000, 37), 0)):
        data = RNG.uniform(0.5, 1.5, shape).astype(np.float32)
        close(jt.array(data).sum(axis).numpy(), data.astype(np.float64).sum(axis), rtol=1e-4)
        close(jt.array(data).max(axis).numpy(), data.max(axis))
        close(jt.array(data).min(axis).numpy(), data.min(axis))
    data = RNG.standard_normal((50, 70)).astype(np.float32)
    data[3, 5] = np.nan
    close(jt.array(data).max(1).numpy(), data.max(1))
    np.testing.assert_array_equal(jt.argmax(jt.array(data[4:]), 1)[0].numpy(), data[4:].argmax(1))
    close(jt.array(data[4:]).mean(0).numpy(), data[4:].mean(0))


@check
def scatters():
    index = RNG.integers(0, 5, 600)
    for dtype in ("float32", "float16", "int64", "int8"):
        values = RNG.integers(0, 3, 600).astype(dtype)
        for op, combine, start in (("add", np.add, 0), ("maximum", np.maximum, -1000), ("minimum", np.minimum, 1000),
                                   ("multiply", np.multiply, 1)):
            ours = jt.array(values).reindex_reduce(op, (5,), ["@e0(i0)"], extras=[jt.array(index)]).numpy()
            wide = np.float64 if dtype.startswith("float") else np.int64  # integers wrap, as in numpy
            expected = np.full(5, start, wide)
            combine.at(expected, index, values.astype(wide))
            expected = expected.astype(dtype)
            if op in ("maximum", "minimum"):
                present = np.isin(np.arange(5), index)
                ours, expected = ours[present], expected[present]
            close(ours, expected, rtol=1e-3)


@check
def matmul_cublas():
    for a_shape, b_shape in (((512, 256), (256, 128)), ((4, 5, 7), (4, 7, 3)), ((7, 3), (2, 4, 3, 6)), ((6,), (6, 4))):
        a, b = RNG.standard_normal(a_shape).astype(np.float32), RNG.standard_normal(b_shape).astype(np.float32)
        close(jt.matmul(jt.array(a), jt.array(b)).numpy(), np.matmul(a.astype(np.float64), b), rtol=1e-4, atol=1e-4)


@check
def convolution_cudnn_and_gradients():
    import torch
    x = RNG.standard_normal((2, 6, 11, 13)).astype(np.float32)
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    jx, jw, jb = jt.array(x), jt.array(w), jt.array(b)
    out = jt.nn.conv2d(jx, jw, jb, stride=2, padding=1, dilation=1, groups=2)
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    expected = torch.nn.functional.conv2d(tx, tw, tb, stride=2, padding=1, groups=2)
    close(out.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-4)
    grads = jt.grad((out * out).sum(), [jx, jw, jb])
    (expected * expected).sum().backward()
    for ours, theirs in zip(grads, (tx, tw, tb)):
        close(ours.numpy(), theirs.grad.numpy(), rtol=1e-3, atol=1e-3)


@check
def training_matches_cpu():
    x = RNG.standard_normal((16, 8)).astype(np.float32)
    y = RNG.integers(0, 3, 16)
    results = []
    for name in (DEVICE, "cpu"):
        jt.set_device(name)
        jt.set_seed(0)
        model = jt.nn.Sequential(jt.nn.Conv2d(1, 4, 3, padding=1), jt.nn.BatchNorm2d(4), jt.nn.ReLU(), jt.nn.Flatten(),
                                 jt.nn.Linear(32, 3))
        optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            optimizer.step(jt.nn.cross_entropy_loss(model(jt.array(x.reshape(16, 1, 2, 4))), jt.array(y)))
        results.append(np.concatenate([p.numpy().ravel() for p in model.parameters()]))
    jt.set_device(DEVICE)
    close(results[0], results[1], rtol=1e-4, atol=1e-5)


@check
def vars_move_between_devices():
    jt.set_device("cpu")
    on_cpu = jt.array(np.arange(10, dtype=np.float32)) * 2
    on_cpu.sync()
    jt.set_device(DEVICE)
    close((on_cpu + 1).numpy(), np.arange(10) * 2 + 1)


@check
def repeated_inference_replays():
    from metajit.backends import cuda
    model = jt.nn.Sequential(jt.nn.Linear(32, 64), jt.nn.ReLU(), jt.nn.Linear(64, 10))
    model.eval()
    x = jt.array(RNG.standard_normal((4, 32)).astype(np.float32))
    first = model(x).numpy()
    for _ in range(4):
        close(model(x).numpy(), first)
    if DEVICE == "cuda":
        replay = cuda.graph_replay()
        print(f"    graphs recorded {replay.recorded}, replayed {replay.replayed}")


@check
def code_operator():
    a = jt.array(RNG.standard_normal(1000).astype(np.float32))
    out = jt.code(a.shape, a.dtype, [a], cuda_src="""
        __global__ static void kernel1(@ARGS_DEF) {
            @PRECALC
            for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < in0_shape0; i += blockDim.x * gridDim.x)
                @out(i) = @in0(i) * 2;
        }
        kernel1<<<4, 256>>>(@ARGS);""")
    close(out.numpy(), a.numpy() * 2)


@check
def memory_information():
    jt.display_memory_info()
    print("   ", {k: v for k, v in jt.memory_info().items() if not isinstance(v, (list, dict))})


def main():
    """Run every check on the device and exit non-zero if any failed."""
    print("devices:", [str(d) for d in jt.devices()])
    reason = {d.name: d.reason for d in jt.devices()}.get(DEVICE, "not installed")
    if reason:
        print(f"gpu_smoke: device {DEVICE!r} cannot run here ({reason}); nothing checked")
        sys.exit(2)
    jt.set_device(DEVICE)
    if DEVICE == "cuda":
        from metajit.backends.cuda import runtime
        device = runtime.device()
        print("GPU", device.architecture, device.multiprocessors, "SMs")
    failed = 0
    for function in CHECKS:
        started = time.perf_counter()
        try:
            jt.set_device(DEVICE)
            function()
            print(f"OK   {function.__name__} ({time.perf_counter() - started:.1f} s)")
        except Exception:
            failed += 1
            print(f"FAIL {function.__name__}")
            print("    " + traceback.format_exc()[-2500:].replace("\n", "\n    "))
    print(f"{len(CHECKS) - failed}/{len(CHECKS)} checks passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
