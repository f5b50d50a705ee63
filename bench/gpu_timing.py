"""Helpers shared by the GPU benchmarks (bench/gpu_chain.py, gpu_profile.py, gpu_vs_torch.py):
whether the cuda device can run here, wall time of queued calls, and device time per kernel
read by CUPTI through torch.profiler, which sees every kernel in the process, metajit's
(driver API, CUDA graphs) as well."""
import time


def cuda_missing(jt, script):
    """None when metajit's cuda device can run here; else prints why ``script`` measures
    nothing and returns that reason."""
    reason = {d.name: d.reason for d in jt.devices()}.get("cuda", "the cuda backend is not installed")
    if reason:
        print(f"{script}: the cuda device is not usable here ({reason}); nothing measured")
    return reason


def strict_float32_frameworks(jt, script):
    """Both frameworks on the GPU in strict float32 (no TF32; cudnn.benchmark on for torch):
    ``(torch, torchvision)``, or None when the cuda device cannot run here (said why)."""
    if cuda_missing(jt, script):
        return None
    import torch
    import torchvision
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    jt.set_device("cuda")
    jt.flags.allow_tf32 = 0
    return torch, torchvision


def pipelined(function, synchronize, repeat):
    """Seconds per call of ``repeat`` calls queued back to back, followed by one wait."""
    synchronize()
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    synchronize()
    return (time.perf_counter() - started) / repeat


def call_and_sync(function, synchronize):
    """Seconds of one call and a wait for the device."""
    synchronize()
    started = time.perf_counter()
    function()
    synchronize()
    return time.perf_counter() - started


def kernel_seconds(torch, function, synchronize, repeat):
    """{kernel or copy name: device seconds per call of ``function``} over ``repeat`` calls,
    from CUPTI; None where the profiler cannot record (the reason is printed)."""
    from torch.profiler import ProfilerActivity, profile
    synchronize()
    try:
        with profile(activities=[ProfilerActivity.CUDA]) as recorded:
            for _ in range(repeat):
                function()
            synchronize()
    except Exception as error:  # no CUPTI here
        print(f"  (no device times: {type(error).__name__}: {error})")
        return None
    times = {}
    for event in recorded.key_averages():
        if str(getattr(event, "device_type", "")).endswith("CUDA"):
            total = getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0)
            times[event.key] = times.get(event.key, 0.0) + total * 1e-6 / repeat
    return times or None
