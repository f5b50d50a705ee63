"""metajit's cuda device against torch eager (and torch.compile) on the same GPU: forward
FPS of torchvision's backbones, MLP and ResNet-18 training steps; ratios printed from
runs alternating between the frameworks in one process (issue 13).

    python bench/gpu_vs_torch.py [--models resnet18,resnet50,...] [--batches 1,16,64]
                                 [--runs 100] [--compile resnet18] [--skip-train]

The ``jit`` columns time ``jt.compile(model)``, which replays the captured launches without
building or planning the graph (the counterpart of torch.compile's "reduce-overhead"
mode, which the ``compile`` columns time). Both frameworks run strict float32 (no TF32; ``torch.backends.cudnn.benchmark`` on for
torch) on the same weights (torchvision's random initialisation copied into metajit's)
and inputs; outputs are compared first (relative error < 1e-3). Timing follows the seed
tutorial: warm up, synchronise, run ``--runs`` forwards, synchronise, take the mean; the
two frameworks alternate over three rounds and the median round is kept. Targets:
forward FPS >= 1.2x torch eager at batch 1 and >= 1.0x at batch 64; MLP step <= 0.5x and
ResNet-18 step <= 1.0x torch eager's time; within 1.25x of torch.compile
("reduce-overhead") where it compiles in under a minute, with a first call under a tenth
of its compile time.
"""
import argparse
import statistics
import time
import warnings

import numpy as np

from gpu_timing import pipelined, strict_float32_frameworks

MODELS = ["resnet18", "resnet50", "vgg16", "alexnet", "mobilenet_v2", "squeezenet1_1"]
ROUNDS = 3


def paired(ours, theirs, runs, sync_ours, sync_theirs, warmup=10):
    """Median over `ROUNDS` alternating rounds of each side's mean seconds per call."""
    for _ in range(warmup):
        ours()
        theirs()
    times = ([], [])
    for _ in range(ROUNDS):
        times[0].append(pipelined(ours, sync_ours, runs))
        times[1].append(pipelined(theirs, sync_theirs, runs))
    return statistics.median(times[0]), statistics.median(times[1])


def relative_error(ours, theirs):
    """max |a - b| / max |b|."""
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-30))


def model_pair(jt, torch, torchvision, name):
    """torchvision's ``name`` on the GPU in eval mode, and metajit's with the same weights."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = getattr(torchvision.models, name)().cuda().eval()
    ours = getattr(jt.models, name)().eval()
    ours.load_state_dict({k: v.detach().cpu().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def forward_rows(jt, torch, torchvision, models, batches, runs, compiled_models):
    """One row per (model, batch): FPS of each, ratio, relative error; FPS of ``jt.compile``
    (replays the captured launches: no graph building) and its ratio to torch eager; the
    CUDA graphs recorded / replayed while eager ran; torch.compile's."""
    from metajit.backends import cuda
    replay = cuda.graph_replay()
    print(f"{'forward':16s} {'batch':>5s} {'metajit fps':>12s} {'torch fps':>10s} {'ratio':>6s} {'rel err':>8s} "
          f"{'jit fps':>9s} {'jit/torch':>9s} {'graphs':>9s} {'compile fps':>12s} {'jit/compile':>11s}")
    sync_ours, sync_theirs = (lambda: jt.sync_all(True)), torch.cuda.synchronize
    for name in models:
        ours, theirs = model_pair(jt, torch, torchvision, name)
        replayed = jt.compile(ours)
        for batch in batches:
            data = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224)).astype(np.float32)
            x_ours, x_theirs = jt.array(data).sync(), torch.from_numpy(data).cuda()
            with jt.no_grad(), torch.no_grad():
                error = relative_error(ours(x_ours).numpy(), theirs(x_theirs).cpu().numpy())

                def run_ours():
                    ours(x_ours).sync()

                def run_theirs():
                    theirs(x_theirs)
                before = (replay.recorded, replay.replayed)
                ours_s, theirs_s = paired(run_ours, run_theirs, runs, sync_ours, sync_theirs)
                # CUDA graphs recorded / replayed while eager ran (a steady loop replays each call)
                graphs = f"{replay.recorded - before[0]}/{replay.replayed - before[1]}"
                jit_s, _ = paired(lambda: replayed(x_ours), run_theirs, runs, sync_ours, sync_theirs)
                jit_error = relative_error(replayed(x_ours).numpy(), ours(x_ours).numpy())  # a replay vs eager
                compile_column = ""
                if name in compiled_models:
                    compile_column = compiled_row(torch, theirs, x_theirs, runs, jit_s, batch)
            assert jit_error < 1e-6, f"jt.compile's replay of {name} differs from its capture ({jit_error:.1e})"
            print(f"{name:16s} {batch:5d} {batch / ours_s:12.1f} {batch / theirs_s:10.1f} "
                  f"{theirs_s / ours_s:6.2f} {error:8.1e} {batch / jit_s:9.1f} {theirs_s / jit_s:9.2f} "
                  f"{graphs:>9s} {compile_column}", flush=True)


def compiled_row(torch, model, example, runs, ours_s, batch):
    """torch.compile(mode="reduce-overhead")'s FPS and its time over ``ours_s`` (our
    jt.compile's), with its compile time."""
    start = time.perf_counter()
    try:
        compiled = torch.compile(model, mode="reduce-overhead")
        compiled(example)
        compiled(example)
    except Exception as error:  # a compiler problem must not stop the bench
        return f"(torch.compile failed: {type(error).__name__})"
    compile_s = time.perf_counter() - start
    if compile_s > 60:
        return f"(compile took {compile_s:.0f} s)"
    seconds = pipelined(lambda: compiled(example), torch.cuda.synchronize, runs)
    return f"{batch / seconds:12.1f} {seconds / ours_s:11.2f}  (compiled in {compile_s:.1f} s)"


def training_rows(jt, torch, torchvision, runs):
    """MLP (batch 64) and ResNet-18 (batch 16) SGD-momentum steps: ms each and the ratio."""
    print(f"{'training step':24s} {'metajit ms':>11s} {'torch ms':>9s} {'ratio':>6s} {'target':>7s}")
    for label, kind, target in TRAINING_CASES:
        step_ours, step_theirs = training_pair(jt, torch, torchvision, kind)
        ours_s, theirs_s = paired(step_ours, step_theirs, max(runs // 4, 10), lambda: jt.sync_all(True),
                                  torch.cuda.synchronize)
        print(f"{label:24s} {ours_s * 1e3:11.3f} {theirs_s * 1e3:9.3f} {ours_s / theirs_s:6.2f} {target:7.2f}",
              flush=True)


TRAINING_CASES = [("mlp 784-1024-1024-10 b64", "mlp", 0.5), ("resnet18 b16", "resnet18", 1.0)]


def training_pair(jt, torch, torchvision, kind):
    """One SGD-momentum step of each framework on the same model, weights and batch:
    ``kind`` "mlp" (784-1024-1024-10, batch 64) or "resnet18" (batch 16)."""
    rng = np.random.default_rng(0)
    shape, classes = ((64, 784), 10) if kind == "mlp" else ((16, 3, 224, 224), 1000)
    torch.manual_seed(0)
    if kind == "mlp":
        theirs = torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 1024),
                                     torch.nn.ReLU(), torch.nn.Linear(1024, 10)).cuda()
        ours = jt.nn.Sequential(jt.nn.Linear(784, 1024), jt.nn.ReLU(), jt.nn.Linear(1024, 1024), jt.nn.ReLU(),
                                jt.nn.Linear(1024, 10))
    else:
        theirs = torchvision.models.resnet18().cuda()
        ours = jt.models.resnet18()
    ours.load_state_dict({k: v.detach().cpu().numpy() for k, v in theirs.state_dict().items()})
    data = rng.standard_normal(shape).astype(np.float32)
    labels = rng.integers(0, classes, shape[0])
    x_ours, y_ours = jt.array(data).sync(), jt.array(labels).sync()
    x_theirs, y_theirs = torch.from_numpy(data).cuda(), torch.from_numpy(labels).cuda()
    optimizer = jt.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    torch_optimizer = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)

    def step_ours():
        loss = jt.nn.cross_entropy_loss(ours(x_ours), y_ours)
        optimizer.step(loss)
        loss.sync()

    def step_theirs():
        torch_optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(theirs(x_theirs), y_theirs).backward()
        torch_optimizer.step()
    return step_ours, step_theirs


def main():
    """Parse the options, set both frameworks up on the GPU, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batches", default="1,16,64")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--compile", default="resnet18", help="models also timed under torch.compile ('' for none)")
    parser.add_argument("--skip-train", action="store_true")
    arguments = parser.parse_args()
    import metajit as jt
    frameworks = strict_float32_frameworks(jt, "gpu_vs_torch")
    if frameworks is None:
        return
    torch, torchvision = frameworks
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, strict float32; "
          f"{jt.devices()[[d.name for d in jt.devices()].index('cuda')].description.summary}")
    forward_rows(jt, torch, torchvision, [m for m in arguments.models.split(",") if m],
                 [int(b) for b in arguments.batches.split(",")], arguments.runs,
                 set(m for m in arguments.compile.split(",") if m))
    if not arguments.skip_train:
        training_rows(jt, torch, torchvision, arguments.runs)
    from metajit.backends import cuda
    replay = cuda.graph_replay()
    print(f"CUDA graphs in all: {replay.recorded} recorded, {replay.replayed} replays")


if __name__ == "__main__":
    main()
