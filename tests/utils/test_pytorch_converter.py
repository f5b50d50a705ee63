"""metajit.utils.pytorch_converter against PyTorch: Jittor's conversions and table format,
the report of what cannot be converted, the command line, and converted code run against
the original on torch with copied weights (seed models, a training loop, and torchvision
0.28's own model files read from the installed package)."""
import copy
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import metajit as jt
from metajit.utils.pytorch_converter import convert, convert_file, convert_with_report, pjmap, pjmap_append
from metajit.utils.pytorch_converter.__main__ import main
from tests.models.conftest import import_torchvision, relative_error

THRESHOLD = 1e-3


def load_converted(code, directory, name="converted"):
    """The converted ``code`` imported as a module from a file (tracebacks show its lines)."""
    path = directory / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def body(code):
    """The converted code after the imports and shims."""
    return code.rsplit("\n\n\n", 1)[-1].strip()


def outputs_match(ours, theirs, data):
    """Relative error of metajit model ``ours`` against torch model ``theirs`` on ``data``."""
    torch = pytest.importorskip("torch")
    with torch.no_grad():
        expected = theirs(torch.from_numpy(data))
    return relative_error(ours(jt.array(data)).numpy(), expected)


@pytest.fixture
def restore_table():
    saved = copy.deepcopy(pjmap)
    yield
    pjmap.clear()
    pjmap.update(saved)


# -- Jittor's conversions and table ---------------------------------------------------

JITTOR_EXAMPLE = """
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 3)
        self.pool = nn.MaxPool2d(3, stride=2)
        self.average = nn.AvgPool2d(2)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(1200, 100)

    def forward(self, x):
        x = self.relu(self.pool(self.conv1(x)))
        x = x.view(x.size(0), -1)
        x = torch.flatten(x, 1)
        return self.fc(x)
"""


def test_jittor_conversions_of_bare_model_code():
    code = convert(JITTOR_EXAMPLE)
    assert code.startswith("import metajit as jt\nfrom metajit import nn\n")
    for line in ["super().__init__()", "self.conv1 = nn.Conv(1, 10, 3)", "self.pool = nn.Pool(3, stride=2, op='maximum')",
                 "self.average = nn.Pool(2, op='mean')", "self.relu = nn.ReLU()", "def execute(self, x):",
                 "x = x.view((x.shape[0], -1))", "x = jt.flatten(x, start_dim=1)"]:
        assert line in code


def test_jittor_spelling_runs_where_jittor_is_metajit(tmp_path, monkeypatch):
    code = convert(JITTOR_EXAMPLE.replace("1200", "10"), spelling="jittor")
    assert code.startswith("import jittor as jt\nfrom jittor import nn\n")
    monkeypatch.setitem(sys.modules, "jittor", jt)
    model = load_converted(code, tmp_path).Model()
    assert model(jt.zeros((2, 1, 5, 5))).shape == (2, 100)
    with pytest.raises(jt.MetajitValueError, match="spelling"):
        convert("x = 1", spelling="tensorflow")


def test_pjmap_append_as_in_jittor(restore_table):
    pjmap_append(pytorch_func_name="AvgPool2d", pytorch_args="kernel_size, stride=None, padding=0",
                 jittor_func_module="nn", jittor_func_name="Pool",
                 jittor_args="kernel_size, stride=None, padding=0, op='maximum'", extras={"op": "'mean'"})
    pjmap_append("Softmax", "dim=None", "nn", "Softmax", "dim=None, log=False", extras={"log": "False"},
                 links={}, delete=[])
    pjmap_append("torch.clamp", "input, min=None, max=None", "jt", "clamp", "x, min_v=None, max_v=None",
                 links={"input": "x", "min": "min_v", "max": "max_v"})
    code = body(convert("import torch\nfrom torch import nn\n"
                        "a = nn.AvgPool2d(3, 1, 1)\nb = nn.Softmax(dim=1)\nc = torch.clamp(x, max=6, min=0)\n"))
    assert code == ("a = nn.Pool(3, stride=1, padding=1, op='mean')\nb = nn.Softmax(dim=1, log=False)\n"
                    "c = jt.clamp(x, min_v=0, max_v=6)")


def test_arguments_are_matched_by_the_table_signatures():
    conversion = convert_with_report(
        "import torch.nn as nn\n"
        "a = nn.Conv2d(3, 8, kernel_size=3, stride=2, bias=False, padding_mode='zeros')\n"
        "b = nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)\n"
        "c = nn.ReLU(True)\n"
        "d = nn.Conv2d(3, 8, 3, padding_mode='reflect')\n"
        "e = nn.Conv2d(3, 8, bias=False, **options)\n"
        "f = nn.ReLU(**options)\n")
    lines = body(conversion.code).splitlines()
    assert lines[:3] == ["a = nn.Conv(3, 8, 3, stride=2, bias=False)",
                         "b = nn.Pool(3, stride=2, padding=1, ceil_mode=True, op='maximum')", "c = nn.ReLU()"]
    assert lines[4] == "e = nn.Conv(3, 8, bias=False, **options)"
    assert [(u.line, u.construct) for u in conversion.unconverted] == [
        (5, "nn.Conv2d(3, 8, 3, padding_mode='reflect')"), (7, "nn.ReLU(**options)")]
    assert "'padding_mode' has no metajit counterpart" in conversion.unconverted[0].reason


def test_every_table_entry_names_a_metajit_function_taking_its_arguments():
    import inspect
    from metajit.utils.pytorch_converter.arguments import parse_signature
    from metajit.utils.pytorch_converter.transformer import metajit_object
    for key, entry in pjmap.items():
        jittor = entry["jittor"]
        if entry["pytorch"].get("prefix") is not None and not jittor["module"]:
            target = getattr(jt.Var, jittor["name"])
        else:
            target = metajit_object(f"{jittor['prefix' if 'prefix' in jittor else 'module']}.{jittor['name']}")
        parameters = inspect.signature(target).parameters
        takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
        for form in ("args", "args_prefix"):
            if form in jittor:
                names = parse_signature(jittor[form]).names
                assert takes_any or set(names) <= set(parameters) | {"self"}, (key, form, names)


# -- PyTorch idioms ---------------------------------------------------------------------

def test_tensor_methods_and_in_place_updates():
    code = body(convert(
        "import torch\nimport torch.nn as nn\n"
        "n, c = x.size(0), x.size()\n"
        "d = x.dim()\n"
        "y = x.permute(0, 2, 3, 1).contiguous().cuda()\n"
        "z = x.to(device).to(torch.float16)\n"
        "x.add_(y)\n"
        "x.mul_(2)\n"
        "m.weight.data.normal_(0, 0.01)\n"
        "m.bias.data.zero_()\n"
        "m.weight.data.fill_(1)\n"
        "m.weight.data.copy_(w)\n"
        "m.weight.data.add_(1)\n"
        "a = out.data.cpu().numpy()\n"
        "model.cuda()\n"
        "_, predicted = torch.max(out, 1)\n"
        "index = out.argmax(dim=1)\n"))
    assert code.splitlines() == [
        "n, c = (x.shape[0], x.shape)", "d = x.ndim", "y = x.permute((0, 2, 3, 1))", "z = x.cast(jt.float16)",
        "x += y", "x *= 2", "init.normal_(m.weight, mean=0, std=0.01)", "init.zeros_(m.bias)",
        "init.constant_(m.weight, 1)", "m.weight.assign(w)", "m.weight.assign(m.weight + 1)", "a = out.numpy()",
        "_, predicted = jt.argmax(out, 1)[::-1]", "index = out.argmax(dim=1)[0]"]


def test_torchscript_idioms_and_checkpointing_become_eager_code():
    code = body(convert(
        "import torch\nimport torch.utils.checkpoint as cp\nfrom torch import Tensor\nfrom typing import List\n"
        "class Block(torch.nn.Module):\n"
        "    @torch.jit._overload_method\n"
        "    def forward(self, x: List[Tensor]) -> Tensor:\n"
        "        pass\n"
        "    @torch.jit.unused\n"
        "    def forward(self, x: Tensor) -> Tensor:\n"
        "        if torch.jit.is_scripting():\n"
        "            return torch.jit.annotate(Tensor, x)\n"
        "        return cp.checkpoint(self.f, x, use_reentrant=False)\n"))
    assert code.splitlines() == [
        "from typing import List", "", "class Block(nn.Module):", "", "    def execute(self, x: jt.Var) -> jt.Var:",
        "        if False:", "            return x", "        return self.f(x)"]


# -- what cannot be converted ----------------------------------------------------------

UNCONVERTIBLE = """import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.FractionalMaxPool2d(2)

    def forward(self, x: torch.jit.Final[int]):
        return x.as_strided((2,), (1,))


def traced(model, x):
    torch.backends.cudnn.benchmark = True
    return torch.jit.trace(model, x)
"""


def test_unconvertible_constructs_are_reported_and_raise_where_reached(tmp_path):
    conversion = convert_with_report(UNCONVERTIBLE)
    assert [(u.line, u.construct) for u in conversion.unconverted] == [
        (8, "nn.FractionalMaxPool2d(2)"), (11, "x.as_strided((2,), (1,))"), (15, "torch.backends.cudnn.benchmark = True"),
        (16, "torch.jit.trace(model, x)")]
    assert conversion.unconverted[0].reason == "metajit has no nn.FractionalMaxPool2d"
    assert conversion.code.startswith("# Not converted from PyTorch")
    assert "#   line 8: nn.FractionalMaxPool2d(2): metajit has no nn.FractionalMaxPool2d" in conversion.code
    assert "self.act = _unconverted('nn.FractionalMaxPool2d(2)', 'metajit has no nn.FractionalMaxPool2d')(2)" in conversion.code
    assert "def execute(self, x):" in conversion.code  # the annotation without a counterpart is dropped
    module = load_converted(conversion.code, tmp_path)
    with pytest.raises(NotImplementedError, match=r"nn.FractionalMaxPool2d\(2\) was not converted from PyTorch"):
        module.Net()
    with pytest.raises(NotImplementedError, match="Var has no as_strided"):
        module.Net.execute(None, jt.zeros((1, 3)))
    assert module._unconverted_method([1, 2], "index", "why")(2) == 1  # other receivers keep their method
    stand_in = module._unconverted("torchvision.ops.Thing", "why")
    with pytest.raises(NotImplementedError, match="torchvision.ops.Thing.attribute was not converted"):
        stand_in.attribute()
    with pytest.raises(NotImplementedError):
        isinstance(1, stand_in)


def test_a_syntax_error_names_the_line():
    with pytest.raises(jt.MetajitValueError, match="model.py:2: cannot parse"):
        convert_with_report("x = 1\ndef (:\n", filename="model.py")


def test_command_line(tmp_path, capsys):
    source = tmp_path / "model.py"
    source.write_text(UNCONVERTIBLE)
    target = tmp_path / "model_mj.py"
    assert main([str(source), "-o", str(target)]) == 0
    assert target.read_text() == convert(UNCONVERTIBLE)
    assert f"{source}:8: not converted: nn.FractionalMaxPool2d(2): metajit has no nn.FractionalMaxPool2d" in capsys.readouterr().err
    assert main([str(source), "--jittor", "--strict"]) == 1
    assert capsys.readouterr().out.startswith("# Not converted")
    finished = subprocess.run([sys.executable, "-m", "metajit.utils.pytorch_converter", str(source), "-o",
                               str(target)], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0 and "model.py:16: not converted: torch.jit.trace" in finished.stderr


# -- converted code against PyTorch ----------------------------------------------------

SMALL_MODEL = """
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.pool = nn.MaxPool2d(2, 2)
        self.average = nn.AvgPool2d(kernel_size=2)
        self.dropout = nn.Dropout(p=0.25, inplace=True)
        self.fc1 = nn.Linear(16 * 3 * 3, 32)
        self.fc2 = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x)), inplace=True))
        x = self.average(F.relu(self.conv2(x)))
        x = x.view(x.size(0), -1)
        x = self.dropout(F.relu(self.fc1(x)))
        return self.fc2(x)
"""

# torchvision 0.2's AlexNet, the example of Jittor's converter documentation
ALEXNET = """
import torch.nn as nn
import torch.utils.model_zoo as model_zoo

model_urls = {'alexnet': 'https://download.pytorch.org/models/alexnet-owt-4df8aa71.pth'}


class AlexNet(nn.Module):

    def __init__(self, num_classes=1000):
        super(AlexNet, self).__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x):
        x = self.features(x)
        x = self.avgpool(x)
        x = x.view(x.size(0), 256 * 6 * 6)
        x = self.classifier(x)
        return x


def alexnet(pretrained=False, **kwargs):
    model = AlexNet(**kwargs)
    if pretrained:
        model.load_state_dict(model_zoo.load_url(model_urls['alexnet']))
    return model
"""


def torch_namespace(code):
    """The names ``code`` defines when run with PyTorch (the oracle)."""
    namespace = {}
    exec(compile(code, "<pytorch>", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("code,build,side", [(SMALL_MODEL, "Net", 16), (ALEXNET, "alexnet", 64)],
                         ids=["conv-linear", "alexnet"])
def test_seed_models_match_pytorch_with_copied_weights(tmp_path, code, build, side):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch_namespace(code)[build]().eval()
    conversion = convert_with_report(code)
    ours = getattr(load_converted(conversion.code, tmp_path), build)().eval()
    assert ours.load_state_dict(theirs.state_dict()) == ([], [])
    data = np.random.default_rng(0).standard_normal((2, 3, side, side)).astype(np.float32)
    assert outputs_match(ours, theirs, data) < THRESHOLD
    expected = [] if build == "Net" else [(49, "model_zoo.load_url(model_urls['alexnet'])")]
    assert [(u.line, u.construct) for u in conversion.unconverted] == expected


TRAINING = """
import torch
import torch.nn as nn
import torch.optim as optim


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.layers(x)


def train(model, inputs, targets, steps):
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    losses = []
    model.train()
    for _ in range(steps):
        x, y = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        _, predicted = torch.max(model(inputs), 1)
        accuracy = (predicted == targets).float().mean().item()
    return losses, accuracy
"""


def test_training_loop_runs_as_in_pytorch(tmp_path):
    torch = pytest.importorskip("torch")
    conversion = convert_with_report(TRAINING)
    assert conversion.unconverted == []
    for line in ("optimizer.zero_grad()", "loss.backward()", "optimizer.step()", "with jt.no_grad():",
                 "optimizer = jt.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)"):
        assert line in conversion.code
    rng = np.random.default_rng(0)
    inputs, targets = rng.standard_normal((32, 4)).astype(np.float32), rng.integers(0, 3, 32)
    torch.manual_seed(0)
    reference = torch_namespace(TRAINING)
    theirs = reference["Classifier"]()
    module = load_converted(conversion.code, tmp_path)
    ours = module.Classifier()
    ours.load_state_dict(theirs.state_dict())
    expected = reference["train"](theirs, torch.from_numpy(inputs), torch.from_numpy(targets), 5)
    losses, accuracy = module.train(ours, jt.array(inputs), jt.array(targets.astype(np.int32)), 5)
    np.testing.assert_allclose(losses, expected[0], rtol=1e-4)
    assert accuracy == pytest.approx(expected[1])


# -- torchvision's model files ---------------------------------------------------------

def torchvision_source(name):
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        pytest.skip("torchvision is not installed")
    return os.path.join(spec.submodule_search_locations[0], "models", f"{name}.py")


_CONVERTED = {}


def converted_torchvision(name, directory):
    """(module, report) for torchvision's ``models/<name>.py``, converted once per session."""
    if name not in _CONVERTED:
        conversion = convert_file(torchvision_source(name))
        _CONVERTED[name] = load_converted(conversion.code, directory, f"{name}_mj"), conversion.unconverted
    return _CONVERTED[name]


PRESET = "ImageClassification"
# file, model function, input side, arguments, constructs reported
TORCHVISION_MODELS = [
    ("alexnet", "alexnet", 64, {}, {PRESET}),
    ("resnet", "resnet18", 32, {}, {PRESET}), ("squeezenet", "squeezenet1_1", 64, {}, {PRESET}),
    ("mobilenetv2", "mobilenet_v2", 32, {"width_mult": 0.5}, {PRESET}), ("densenet", "densenet121", 32, {}, {PRESET}),
    ("googlenet", "googlenet", 64, {"init_weights": False, "transform_input": True}, {PRESET}),
    ("inception", "inception_v3", 80, {"init_weights": False}, {PRESET}),
    ("mnasnet", "mnasnet0_5", 32, {}, {PRESET, "def _load_from_state_dict"}),
    ("shufflenetv2", "shufflenet_v2_x0_5", 32, {}, {PRESET}),
    ("mobilenetv3", "mobilenet_v3_small", 32, {}, {PRESET}),
]
SLOW_TORCHVISION_MODELS = [
    ("resnet", "resnext50_32x4d", 32, {}, {PRESET}), ("vgg", "vgg11", 32, {}, {PRESET}),
    ("vgg", "vgg11_bn", 32, {}, {PRESET}),
    ("squeezenet", "squeezenet1_0", 64, {}, {PRESET}), ("mobilenetv2", "mobilenet_v2", 32, {}, {PRESET}),
    ("densenet", "densenet121", 32, {"memory_efficient": True}, {PRESET}),
]


def check_torchvision_file(tmp_path_factory, name, function, side, arguments, reported):
    torch = pytest.importorskip("torch")
    from tests.models.test_zoo_parity import randomise_batchnorm
    torchvision = import_torchvision()
    module, unconverted = converted_torchvision(name, tmp_path_factory.mktemp(name))
    assert {u.construct for u in unconverted} == reported
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, function)(**arguments).eval()
    randomise_batchnorm(theirs)
    ours = getattr(module, function)(**arguments).eval()
    assert ours.load_state_dict(theirs.state_dict()) == ([], [])
    data = np.random.default_rng(0).standard_normal((2, 3, side, side)).astype(np.float32)
    error = outputs_match(ours, theirs, data)
    assert error < THRESHOLD, f"{function}: relative error {error:.3g}"


def _ids(models):
    return [f"{function}{''.join(f'-{k}={v}' for k, v in arguments.items())}"
            for _, function, _, arguments, _ in models]


@pytest.mark.parametrize("name,function,side,arguments,reported", TORCHVISION_MODELS, ids=_ids(TORCHVISION_MODELS))
def test_torchvision_model_files_convert_load_and_match(tmp_path_factory, name, function, side, arguments, reported):
    check_torchvision_file(tmp_path_factory, name, function, side, arguments, reported)


@pytest.mark.slow
@pytest.mark.parametrize("name,function,side,arguments,reported", SLOW_TORCHVISION_MODELS,
                         ids=_ids(SLOW_TORCHVISION_MODELS))
def test_more_torchvision_model_files(tmp_path_factory, name, function, side, arguments, reported):
    check_torchvision_file(tmp_path_factory, name, function, side, arguments, reported)


def test_torchvision_weights_load_from_local_files_only(tmp_path_factory, tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    torchvision = import_torchvision()
    module, _ = converted_torchvision("resnet", tmp_path_factory.mktemp("resnet"))
    monkeypatch.setenv("METAJIT_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(jt.MetajitFileNotFoundError, match="resnet18-f37072fd.pth"):
        module.resnet18(pretrained=True)
    torch.manual_seed(0)
    theirs = torchvision.models.resnet18()
    torch.save(theirs.state_dict(), tmp_path / "resnet18-f37072fd.pth")
    ours = module.resnet18(weights="ResNet18_Weights.IMAGENET1K_V1")
    np.testing.assert_array_equal(ours.fc.weight.numpy(), theirs.fc.weight.detach().numpy())
    with pytest.raises(ValueError, match="num_classes"):
        module.resnet18(weights=module.ResNet18_Weights.DEFAULT, num_classes=10)


def test_ddp_script_names_map_to_the_mpi_world():
    code = body(convert(
        "import torch\nimport torch.distributed as dist\n"
        "from torch.nn.parallel import DistributedDataParallel as DDP\n"
        "from torch.utils.data.distributed import DistributedSampler\n"
        "dist.init_process_group('nccl')\n"
        "model = DDP(torch.nn.Linear(3, 2))\n"
        "sampler = DistributedSampler(data)\n"
        "dist.all_reduce(t, op=dist.ReduceOp.SUM)\n"))
    assert code.splitlines() == [
        "jt.distributed.init_process_group('nccl')", "model = nn.parallel.DistributedDataParallel(nn.Linear(3, 2))",
        "sampler = jt.dataset.DistributedSampler(data)", "jt.distributed.all_reduce(t, op=jt.distributed.ReduceOp.SUM)"]
