"""The model zoo's oracle is torchvision 0.28 on the CPU build of torch. Its compiled
operators need a CUDA build, but the model definitions do not: an empty
``torchvision._meta_registrations`` lets it import. Models run on the cpu backend only
(the reference interpreter would take minutes per model)."""
import sys
import types

import numpy as np
import pytest

import metajit as jt
from tests.conftest import backend_only

device = backend_only("cpu")


def import_torchvision():
    """torchvision with its CUDA-only operator registrations stubbed out (skips the test
    when torch or torchvision is not installed)."""
    pytest.importorskip("torch")
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    return pytest.importorskip("torchvision")


@pytest.fixture(scope="session")
def torchvision():
    """The oracle's model definitions."""
    return import_torchvision()


def relative_error(ours, theirs):
    """max |ours - theirs| / max |theirs| (a single number for a whole output)."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    return float(np.abs(np.asarray(ours) - theirs).max() / max(np.abs(theirs).max(), 1e-12))


def build_pair(torchvision, name, **kwargs):
    """(ours, theirs): torchvision's ``name`` with a fixed torch seed and ours with its
    state dict loaded strictly."""
    import torch
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(**kwargs)
    ours = getattr(jt.models, name)(**kwargs)
    result = ours.load_state_dict(theirs.state_dict())
    assert result == ([], []), result
    return ours, theirs


@pytest.fixture
def no_weights_dirs(monkeypatch, tmp_path):
    """No METAJIT_WEIGHTS_DIR and an empty torch home, whatever this machine has cached."""
    monkeypatch.delenv("METAJIT_WEIGHTS_DIR", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path


@pytest.fixture(scope="module")
def resnet18_checkpoint(torchvision, tmp_path_factory):
    """(torchvision resnet18 in eval mode, path of its state dict saved as torchvision names it)."""
    import torch
    torch.manual_seed(0)
    theirs = torchvision.models.resnet18().eval()
    path = tmp_path_factory.mktemp("weights") / "resnet18-f37072fd.pth"
    torch.save(theirs.state_dict(), path)
    return theirs, path


def assert_same_outputs(ours, theirs, side=32):
    """``ours`` (switched to eval mode) gives ``theirs``'s output on one random image."""
    import torch
    data = np.random.default_rng(0).standard_normal((1, 3, side, side)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(data))
    error = relative_error(ours.eval()(jt.array(data)).numpy(), expected)
    assert error < 1e-4, f"relative error {error:.3g}"
