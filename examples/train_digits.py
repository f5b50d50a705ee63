"""The README's main demo: a small convnet learns scikit-learn's 8x8 handwritten digits.

Jittor-style model (``execute``), dataset (``set_attrs``) and ``optimizer.step(loss)``;
the data ships inside scikit-learn, so nothing is downloaded.

Run: ``python -m metajit.examples.train_digits [--epochs N]``; data parallel on N processes,
unchanged: ``mpirun -np N python -m metajit.examples.train_digits`` (each rank takes its share
of every batch, BatchNorm statistics cover the whole batch, rank 0 prints).
"""
import argparse
import sys
import time

import numpy as np

import metajit as jt
from metajit import nn


class DigitsNet(nn.Module):
    """conv-bn-relu x2, max-pool, two fully connected layers."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm(32), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
                                        nn.Dropout(0.2), nn.Linear(64, 10))

    def execute(self, x):
        return self.classifier(self.features(x))


class Digits(jt.dataset.Dataset):
    """The 1,797 8x8 digit images of scikit-learn, scaled to [0, 1], split 80/20 by a fixed seed."""

    def __init__(self, train, **attributes):
        super().__init__(**attributes)
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            sys.exit("this demo needs scikit-learn: pip install 'metajit[demo]'")
        data = load_digits()
        order = np.random.default_rng(0).permutation(len(data.target))
        cut = int(0.8 * len(order))
        chosen = order[:cut] if train else order[cut:]
        self.images = (data.images[chosen] / 16.0).astype(np.float32)[:, None]
        self.labels = data.target[chosen].astype(np.int32)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


def progress(done, total, width=30):
    """A one-line text progress bar."""
    filled = int(width * done / total)
    return "[" + "#" * filled + "." * (width - filled) + f"] {done}/{total}"


def evaluate(model, data):
    """Accuracy of ``model`` on ``data`` (under MPI each rank scores its share; the counts are summed)."""
    model.eval()
    correct = seen = 0
    with jt.no_grad():
        for images, labels in data:
            predicted, _ = model(images).argmax(1)
            correct += int((predicted == labels).sum().item())
            seen += len(labels)
    model.train()
    counts = jt.array(np.array([correct, seen], dtype=np.float64)).mpi_all_reduce("add").numpy()
    return counts[0] / counts[1]


def main(epochs=8, batch_size=32, learning_rate=3e-3, seed=0):
    """Train, printing per-epoch loss and accuracy; returns the final test accuracy."""
    return train(epochs, batch_size, learning_rate, seed)[1]


def train(epochs=8, batch_size=32, learning_rate=3e-3, seed=0):
    """`main`'s training; returns ``(model, final test accuracy)``. Only rank 0 prints."""
    jt.seed(seed)
    train = Digits(train=True).set_attrs(batch_size=batch_size, shuffle=True, seed=seed)
    test = Digits(train=False).set_attrs(batch_size=256)
    model = DigitsNet()
    optimizer = jt.optim.Adam(model.parameters(), lr=learning_rate)
    scheduler = jt.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    criterion = nn.CrossEntropyLoss()
    started = time.perf_counter()
    accuracy = 0.0
    interactive = sys.stdout.isatty() and jt.rank == 0
    for epoch in range(1, epochs + 1):
        total_loss, batches = 0.0, train.batch_len()
        for step, (images, labels) in enumerate(train, 1):
            loss = criterion(model(images), labels)
            optimizer.step(loss)
            total_loss += loss.item()
            if interactive:
                print(f"\repoch {epoch}/{epochs} {progress(step, batches)}", end="", flush=True)
        scheduler.step()
        accuracy = evaluate(model, test)
        mean_loss = jt.array(total_loss / batches).mpi_all_reduce("mean").item()
        if jt.rank == 0:
            print(f"\repoch {epoch}/{epochs} {progress(batches, batches)} loss {mean_loss:.4f} "
                  f"test accuracy {accuracy:.2%} ({time.perf_counter() - started:.1f}s)")
    if jt.rank == 0:
        processes = f" x {jt.world_size} processes" if jt.in_mpi else ""
        print(f"device {jt.get_device()}{processes}: final test accuracy {accuracy:.2%} in "
              f"{time.perf_counter() - started:.1f}s")
    return model, accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    main(parser.parse_args().epochs)
