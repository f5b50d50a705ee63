"""metajit.nn against torch.nn on the CPU, same threads, same process.

    python bench/nn_vs_torch.py [--threads N] [--repeat R]

Workloads (issue 5): a small convnet forward and training step (batch 32, 3x32x32) and a
ResNet-18 forward (batch 8, 3x224x224). Both frameworks get identical weights.
"""
import os

os.environ.setdefault("GOMP_SPINCOUNT", "10000")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

from cpu_vs_torch import paired_medians, setup  # noqa: E402


def small_convnet(nn):
    """conv-bn-relu-pool x2, then two linear layers (CIFAR-sized input)."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10))


def resnet18(nn):
    """ResNet-18 (basic blocks [2, 2, 2, 2]) built from either framework's ``nn``."""
    class Block(nn.Module):
        def __init__(self, inputs, outputs, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(outputs)
            self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(outputs)
            self.relu = nn.ReLU()
            self.shortcut = (nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False),
                                           nn.BatchNorm2d(outputs))
                             if stride != 1 or inputs != outputs else nn.Identity())

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + self.shortcut(x))

    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    channels = 64
    for outputs, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(channels, outputs, stride), Block(outputs, outputs, 1)]
        channels = outputs
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers)


def build_pair(jt, torch, make):
    theirs = make(torch.nn).eval()
    ours = make(jt.nn).eval()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def main():
    arguments, jt, torch = setup(__doc__.splitlines()[0], 7)
    rng = np.random.default_rng(0)
    rows = []

    ours, theirs = build_pair(jt, torch, small_convnet)
    images = rng.standard_normal((32, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, 32)
    x, tx = jt.array(images).sync(), torch.from_numpy(images)
    with torch.no_grad():
        rows.append(("small convnet forward, batch 32", lambda: ours(x).sync(), lambda: theirs(tx), 1.0))
    ours.train(), theirs.train()
    optimizer = jt.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    torch_optimizer = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)
    y, ty = jt.array(labels), torch.from_numpy(labels)

    def step_ours():
        optimizer.step(jt.nn.cross_entropy(ours(x), y))

    def step_theirs():
        torch_optimizer.zero_grad()
        torch.nn.functional.cross_entropy(theirs(tx), ty).backward()
        torch_optimizer.step()

    rows.append(("small convnet train step, batch 32", step_ours, step_theirs, 1.0))
    big_ours, big_theirs = build_pair(jt, torch, resnet18)
    big = rng.standard_normal((8, 3, 224, 224)).astype(np.float32)
    bx, tbx = jt.array(big).sync(), torch.from_numpy(big)
    rows.append(("resnet18 forward, batch 8, 224x224", lambda: big_ours(bx).sync(),
                 lambda: big_theirs(tbx), 1.2))

    print(f"threads={arguments.threads}  torch {torch.__version__}  (median of {arguments.repeat})")
    print(f"{'workload':40s} {'metajit ms':>11s} {'torch ms':>10s} {'ratio':>7s} {'target':>7s}")
    for name, ours_run, theirs_run, target in rows:
        with torch.no_grad() if "forward" in name else torch.enable_grad():
            ours_time, theirs_time = paired_medians(ours_run, theirs_run, arguments.repeat)
        ratio = ours_time / theirs_time
        print(f"{name:40s} {ours_time * 1e3:11.2f} {theirs_time * 1e3:10.2f} {ratio:7.2f} "
              f"{'<=' + str(target):>7s} {'ok' if ratio <= target else 'MISS'}")


if __name__ == "__main__":
    main()
