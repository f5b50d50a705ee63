"""metajit.models against torchvision on the CPU: forward and training-step time ratios
from paired runs in one process, and resnet50's first forward from an empty kernel cache.

    python bench/zoo_vs_torch.py [--models resnet18,mobilenet_v2] [--batches 1,8]
                                 [--train-models resnet18,mobilenet_v2,densenet121]
                                 [--threads N] [--repeat R] [--skip-cold]

Both frameworks get the same weights (torchvision's random initialisation copied into
ours) and the same 224x224 input (299x299 for inception_v3). Times are medians of
``--repeat`` pairs of single runs after warm-up, the side going first alternating; the
ratio is the median of the pairs' ratios metajit / torch eager
(`cpu_vs_torch.alternated_ratio`; issue 17's target: <= 0.8). When onnxruntime is
importable, the model exported through ``torch.onnx`` is timed too, in pairs with metajit
as written (``ort/mj``) and with the model under `metajit.compile` (``jit ms``,
``ort/jit``: both sides replay a captured graph; the goal is >= 1). Training steps are SGD with momentum on cross-entropy (target <= 1.0).
"""
import os

os.environ.setdefault("GOMP_SPINCOUNT", "10000")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import types  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from cpu_vs_torch import alternated_ratio  # noqa: E402

ALL_MODELS = ["alexnet", "vgg11", "vgg16_bn", "resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2",
              "squeezenet1_1", "googlenet", "inception_v3", "mobilenet_v2", "mnasnet1_0",
              "shufflenet_v2_x1_0", "densenet121", "mobilenet_v3_large", "efficientnet_b0", "regnet_y_400mf",
              "convnext_tiny", "vit_b_16"]


def import_torchvision():
    """torchvision on the CPU build of torch (its CUDA-only operator registrations stubbed)."""
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision
    return torchvision


def build_pair(jt, torchvision, name):
    """(ours, theirs) with the same weights, in eval mode."""
    import torch
    torch.manual_seed(0)
    extra = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(torchvision.models, name)(**extra).eval()
    ours = getattr(jt.models, name)(**extra).eval()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def onnx_runner(theirs, example):
    """A function running ``theirs`` exported to ONNX under onnxruntime, or None when
    onnxruntime (or the export) is unavailable."""
    try:
        import onnxruntime
        import torch
    except ImportError:
        return None
    path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # its fused attention op has no ONNX export (ViT)
    try:
        torch.onnx.export(theirs, (example,), path, input_names=["x"], dynamo=False, verbose=False)
    except Exception as error:  # an exporter problem must not stop the bench
        print(f"  (onnx export failed: {type(error).__name__}: {str(error).splitlines()[0]})")
        return None
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = os.cpu_count()
    # idle threads that spin on after a run would slow the metajit run alternated with it
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"x": example.numpy()}
    return lambda: session.run(None, feed)


def forward_rows(jt, torch, torchvision, models, batches, repeat):
    """Print one row per (model, batch): metajit ms, torch ms, ratio, and onnxruntime."""
    rng = np.random.default_rng(0)
    print(f"{'forward':28s} {'batch':>5s} {'metajit ms':>11s} {'torch ms':>10s} {'ratio':>6s} "
          f"{'onnxrt ms':>10s} {'ort/mj':>7s} {'jit ms':>8s} {'ort/jit':>7s}")
    for name in models:
        ours, theirs = build_pair(jt, torchvision, name)
        compiled = jt.compile(ours)
        side = 299 if name == "inception_v3" else 224
        for batch in batches:
            data = rng.standard_normal((batch, 3, side, side)).astype(np.float32)
            x, tx = jt.array(data).sync(), torch.from_numpy(data)

            def run_ours():  # inference without gradients, as torch's side under torch.no_grad()
                with jt.no_grad():
                    ours(x).sync()
                jt.sync_all()

            def run_compiled():
                with jt.no_grad():
                    compiled(x).sync()
            with torch.no_grad():
                ours_time, theirs_time, ratio = alternated_ratio(run_ours, lambda: theirs(tx), repeat)
                onnx = onnx_runner(theirs, tx)
            onnx_text = ""
            if onnx is not None:
                onnx_time, _, onnx_ratio = alternated_ratio(onnx, run_ours, repeat)
                _, compiled_time, compiled_ratio = alternated_ratio(onnx, run_compiled, repeat)
                onnx_text = (f"{onnx_time * 1e3:10.2f} {onnx_ratio:7.2f} {compiled_time * 1e3:8.2f} "
                             f"{compiled_ratio:7.2f}")
            print(f"{name:28s} {batch:5d} {ours_time * 1e3:11.2f} {theirs_time * 1e3:10.2f} "
                  f"{ratio:6.2f} {onnx_text}", flush=True)


def training_rows(jt, torch, torchvision, models, batch, repeat):
    """Print one row per model: SGD-momentum training step time, metajit vs torch."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
    labels = rng.integers(0, 1000, batch)
    print(f"{'training step (SGD momentum)':28s} {'batch':>5s} {'metajit ms':>11s} {'torch ms':>10s} {'ratio':>6s} "
          f"{'mj MiB':>8s} {'torch MiB':>8s} {'peak':>6s} {'growth':>7s}")
    for name in models:
        ours, theirs = build_pair(jt, torchvision, name)
        ours.train(), theirs.train()
        optimizer = jt.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
        torch_optimizer = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)
        x, y = jt.array(images).sync(), jt.array(labels).sync()
        tx, ty = torch.from_numpy(images), torch.from_numpy(labels)

        def step_ours():
            optimizer.step(jt.nn.cross_entropy(ours(x), y))
            jt.sync_all()

        def step_theirs():
            torch_optimizer.zero_grad()
            torch.nn.functional.cross_entropy(theirs(tx), ty).backward()
            torch_optimizer.step()
        try:
            ours_time, theirs_time, ratio = alternated_ratio(step_ours, step_theirs, repeat)
        except Exception as error:  # report a failing model and go on with the others
            print(f"{name:28s} {batch:5d} failed: {type(error).__name__}: {error}", flush=True)
            continue
        threads = jt.flags.num_threads
        (ours_before, ours_peak), (theirs_before, theirs_peak) = (
            training_memory(framework, name, batch, threads) for framework in ("metajit", "torch"))
        ours_growth, theirs_growth = ours_peak - ours_before, theirs_peak - theirs_before
        print(f"{name:28s} {batch:5d} {ours_time * 1e3:11.2f} {theirs_time * 1e3:10.2f} "
              f"{ratio:6.2f} {ours_peak / 1024:8.0f} {theirs_peak / 1024:8.0f} "
              f"{ours_peak / theirs_peak:6.2f} {ours_growth / max(theirs_growth, 1):7.2f}", flush=True)


MEMORY_PROBE = """
import sys, types
import numpy as np
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
import torch, torchvision
import metajit as jt
framework, name, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(int(sys.argv[4])); jt.flags.num_threads = int(sys.argv[4])
rng = np.random.default_rng(0)
images = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
labels = rng.integers(0, 1000, batch)
sys.path.insert(0, sys.argv[5])
from train_memory_vs_torch import _reset_peak, _resident_kib, sgd_step
torch.manual_seed(0)
model = getattr(torchvision.models, name)().train()
if framework == "metajit":
    jt.set_device("cpu")
    ours = getattr(jt.models, name)().train()
    ours.load_state_dict(model.state_dict())
    model = ours  # the torchvision copy is freed: each process holds one model
import ctypes, gc
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)  # glibc keeps freed heap pages (the copy's) until trimmed
step = sgd_step(framework, model, images, labels)
before = _resident_kib("VmRSS")
_reset_peak()
for _ in range(3):
    step()
print(before, _resident_kib("VmHWM"))
"""


def training_memory(framework, name, batch, threads):
    """``(resident KiB before the first step, peak resident KiB)`` of three training steps of
    ``name`` under ``framework`` ("metajit" or "torch"), each in a fresh process."""
    result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, framework, name, str(batch), str(threads),
                             os.path.dirname(os.path.abspath(__file__))],
                            capture_output=True, text=True, check=True)
    before, peak = result.stdout.split()[-2:]
    return int(before), int(peak)


COLD_PROBE = """
import time, numpy as np
import metajit as jt
jt.set_device("cpu")
model = jt.models.resnet50().eval()
x = jt.array(np.zeros((1, 3, 224, 224), np.float32)).sync()
start = time.perf_counter()
model(x).sync()
print(time.perf_counter() - start)
"""


def cold_first_forward():
    """Seconds of resnet50's first forward (batch 1) in a new process with an empty
    METAJIT_CACHE_DIR (every kernel compiled)."""
    with tempfile.TemporaryDirectory() as cache:
        result = subprocess.run([sys.executable, "-c", COLD_PROBE], capture_output=True, text=True, check=True,
                                env={**os.environ, "METAJIT_CACHE_DIR": cache})
    return float(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(ALL_MODELS))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--train-models", default="resnet18,mobilenet_v2,densenet121")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--skip-cold", action="store_true", help="skip the empty-cache resnet50 forward")
    arguments = parser.parse_args()
    import torch
    import metajit as jt
    torchvision = import_torchvision()
    jt.set_device("cpu")
    torch.set_num_threads(arguments.threads)
    jt.flags.num_threads = arguments.threads
    print(f"threads={arguments.threads}  torch {torch.__version__}  torchvision {torchvision.__version__}  "
          f"(medians of {arguments.repeat} alternated pairs; ratio = metajit / torch, lower is better)")
    models = [m for m in arguments.models.split(",") if m]
    if models:
        forward_rows(jt, torch, torchvision, models, [int(b) for b in arguments.batches.split(",")],
                     arguments.repeat)
    train_models = [m for m in arguments.train_models.split(",") if m]
    if train_models:
        training_rows(jt, torch, torchvision, train_models, arguments.train_batch, arguments.repeat)
    if not arguments.skip_cold:
        print(f"resnet50 first forward, empty kernel cache: {cold_first_forward():.2f} s")


if __name__ == "__main__":
    main()
