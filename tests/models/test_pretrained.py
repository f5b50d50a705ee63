"""Pretrained weights come from local files only: METAJIT_WEIGHTS_DIR, torch hub's
checkpoint directory, a path, a weights name or a torchvision weights enum; otherwise a
MetajitFileNotFoundError names the file and where to put it. Checkpoints are written by
torch.save from torchvision models."""
import numpy as np
import pytest

import metajit as jt
from tests.models.conftest import assert_same_outputs

torch = pytest.importorskip("torch")


def test_pretrained_reads_metajit_weights_dir(no_weights_dirs, monkeypatch, resnet18_checkpoint):
    theirs, path = resnet18_checkpoint
    monkeypatch.setenv("METAJIT_WEIGHTS_DIR", str(path.parent))
    assert_same_outputs(jt.models.resnet18(pretrained=True), theirs)


def test_pretrained_reads_torch_hub_checkpoints(no_weights_dirs, resnet18_checkpoint):
    theirs, path = resnet18_checkpoint
    hub = no_weights_dirs / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / path.name).write_bytes(path.read_bytes())
    assert_same_outputs(jt.models.resnet18(weights="DEFAULT"), theirs)


def test_weights_by_path_name_and_torchvision_enum(no_weights_dirs, monkeypatch, torchvision, resnet18_checkpoint):
    theirs, path = resnet18_checkpoint
    assert_same_outputs(jt.models.resnet18(weights=str(path)), theirs)
    monkeypatch.setenv("METAJIT_WEIGHTS_DIR", str(path.parent))
    assert_same_outputs(jt.models.resnet18(weights="ResNet18_Weights.IMAGENET1K_V1"), theirs)
    assert_same_outputs(jt.models.resnet18(weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1), theirs)
    assert_same_outputs(jt.models.resnet18(weights="ResNet18_Weights.DEFAULT", progress=False), theirs)
    assert_same_outputs(jt.models.resnet18(weights=path.name), theirs)  # torchvision's file name, looked up
    for other in ("ResNet50_Weights.IMAGENET1K_V1", torchvision.models.ResNet50_Weights.IMAGENET1K_V1):
        with pytest.raises(jt.MetajitValueError, match="another model's.*ResNet50_Weights"):
            jt.models.resnet18(weights=other)


def test_default_weights_are_torchvisions_latest_and_pretrained_its_first(no_weights_dirs, monkeypatch, torchvision):
    """torchvision's DEFAULT is IMAGENET1K_V2 where there is one (mobilenet_v2, resnet50 ...);
    the legacy ``pretrained=True`` means IMAGENET1K_V1; VGG-16's extra feature weights are
    not its default."""
    torch.manual_seed(0)
    theirs = torchvision.models.mobilenet_v2().eval()
    torch.save(theirs.state_dict(), no_weights_dirs / "mobilenet_v2-7ebf99e0.pth")  # the V2 file
    monkeypatch.setenv("METAJIT_WEIGHTS_DIR", str(no_weights_dirs))
    assert_same_outputs(jt.models.mobilenet_v2(weights="DEFAULT"), theirs)
    assert_same_outputs(jt.models.mobilenet_v2(weights="MobileNet_V2_Weights.DEFAULT"), theirs)
    assert_same_outputs(jt.models.mobilenet_v2(weights=torchvision.models.MobileNet_V2_Weights.DEFAULT), theirs)
    with pytest.raises(jt.MetajitFileNotFoundError, match="mobilenet_v2-b0353104.pth"):
        jt.models.mobilenet_v2(pretrained=True)
    with pytest.raises(jt.MetajitFileNotFoundError, match="vgg16-397923af.pth"):
        jt.models.vgg16(weights="DEFAULT")


def test_missing_weights_name_the_file_and_where_to_put_it(no_weights_dirs):
    with pytest.raises(jt.MetajitFileNotFoundError) as error:
        jt.models.resnet50(weights="IMAGENET1K_V2")
    message = str(error.value)
    assert "resnet50-11ad3fa6.pth" in message and "METAJIT_WEIGHTS_DIR" in message
    assert str(no_weights_dirs / "torch_home" / "hub" / "checkpoints") in message
    assert isinstance(error.value, FileNotFoundError)
    with pytest.raises(jt.MetajitFileNotFoundError, match="does not exist"):
        jt.models.alexnet(weights=str(no_weights_dirs / "nowhere.pth"))
    with pytest.raises(jt.MetajitValueError, match="unknown weights 'IMAGENET9K'"):
        jt.models.alexnet(weights="IMAGENET9K")


def test_pretrained_needs_1000_classes(no_weights_dirs, resnet18_checkpoint):
    with pytest.raises(jt.MetajitValueError, match="num_classes=1000"):
        jt.models.resnet18(weights=str(resnet18_checkpoint[1]), num_classes=10)


def test_old_densenet_checkpoint_names_and_format(no_weights_dirs, torchvision):
    # torchvision's published densenet files: "norm.1"-style keys, no num_batches_tracked,
    # written by torch.save before PyTorch 1.6
    torch.manual_seed(0)
    theirs = torchvision.models.densenet121().eval()
    state = {key.replace("norm1", "norm.1").replace("conv2", "conv.2"): value
             for key, value in theirs.state_dict().items() if not key.endswith("num_batches_tracked")}
    assert "features.denseblock1.denselayer1.norm.1.weight" in state
    path = no_weights_dirs / "densenet121-a639ec97.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    assert_same_outputs(jt.models.densenet121(weights=str(path)), theirs)


def test_googlenet_weights_set_transform_input_and_drop_auxiliary_heads(no_weights_dirs, torchvision):
    torch.manual_seed(0)
    theirs = torchvision.models.googlenet(init_weights=False, transform_input=True).eval()
    path = no_weights_dirs / "googlenet-1378be20.pth"
    torch.save(theirs.state_dict(), path)
    ours = jt.models.googlenet(weights=str(path))
    assert ours.transform_input and ours.aux1 is None and not ours.aux_logits
    assert_same_outputs(ours, theirs, side=64)
    kept = jt.models.googlenet(weights=str(path), aux_logits=True).train()
    outputs = kept(jt.randn(2, 3, 64, 64))
    assert outputs.aux_logits1.shape == (2, 1000) and outputs.aux_logits2.shape == (2, 1000)


def test_jittor_spellings_of_the_resnets(no_weights_dirs, torchvision, resnet18_checkpoint):
    """``from jittor.models import Resnet50`` (and Jittor's resnet26 / resnet38, torchvision's
    ResNet class with bottleneck depths [1, 2, 4, 1] and [2, 3, 5, 2]) runs unchanged."""
    for jittor_name in ("Resnet18", "Resnet34", "Resnet50", "Resnet101", "Resnet152", "Resnext50_32x4d",
                        "Resnext101_32x8d", "Wide_resnet50_2", "Wide_resnet101_2"):
        assert getattr(jt.models, jittor_name) is getattr(jt.models, jittor_name.lower())
    theirs, path = resnet18_checkpoint
    assert_same_outputs(jt.models.Resnet18(weights=str(path)), theirs)
    from torchvision.models.resnet import Bottleneck, ResNet
    for builder, depths in ((jt.models.Resnet26, [1, 2, 4, 1]), (jt.models.resnet38, [2, 3, 5, 2])):
        torch.manual_seed(0)
        reference = ResNet(Bottleneck, depths, num_classes=10).eval()
        ours = builder(num_classes=10)
        assert ours.load_state_dict(reference.state_dict()) == ([], [])
        assert_same_outputs(ours, reference)
    with pytest.raises(jt.errors.MetajitValueError, match="no pretrained weights.*weights="):
        jt.models.Resnet26(pretrained=True)


def test_mnasnet_version_1_checkpoint_loads_into_a_narrower_model(tmp_path, torchvision):
    """Checkpoints saved before torchvision scaled MNASNet's stem (32/16 channels whatever
    the width, as the published mnasnet0_5 file) rebuild the stem in place: the model then
    computes what the saved one did."""
    from torchvision.models import mnasnet
    nn, momentum = torch.nn, mnasnet._BN_MOMENTUM
    torch.manual_seed(0)
    saved = torchvision.models.mnasnet0_5()
    version_1_stem = [
        nn.Conv2d(3, 32, 3, padding=1, stride=2, bias=False), nn.BatchNorm2d(32, momentum=momentum), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False), nn.BatchNorm2d(32, momentum=momentum), nn.ReLU(),
        nn.Conv2d(32, 16, 1, bias=False), nn.BatchNorm2d(16, momentum=momentum),
        mnasnet._stack(16, mnasnet._get_depths(0.5)[2], 3, 2, 3, 3, momentum)]
    for index, layer in enumerate(version_1_stem):
        saved.layers[index] = layer
    saved._version = 1
    path = tmp_path / "mnasnet0.5_version1.pth"
    torch.save(saved.state_dict(), path)
    ours = jt.models.mnasnet0_5()
    assert ours.load_state_dict(str(path)) == ([], [])
    assert [name for name, _ in ours.layers.named_children()] == [str(k) for k in range(17)]
    assert_same_outputs(ours, saved.eval(), side=64)


def test_the_callers_own_checkpoint_loads_as_it_is(tmp_path, torchvision):
    """A path that is not one of torchvision's files is the caller's checkpoint: any
    num_classes, and GoogLeNet's transform_input and auxiliary heads as the caller asks."""
    torch.manual_seed(0)
    classifier = torchvision.models.resnet18(num_classes=10).eval()
    torch.save(classifier.state_dict(), tmp_path / "my_resnet.pth")
    assert_same_outputs(jt.models.resnet18(weights=str(tmp_path / "my_resnet.pth"), num_classes=10), classifier)
    plain = torchvision.models.googlenet(aux_logits=False, init_weights=False).eval()
    torch.save(plain.state_dict(), tmp_path / "my_googlenet.pth")
    ours = jt.models.googlenet(weights=str(tmp_path / "my_googlenet.pth"), aux_logits=False)
    assert not ours.transform_input
    assert_same_outputs(ours, plain, side=64)


def test_a_pth_written_by_metajit_loads_into_torchvision(tmp_path, torchvision):
    """``jt.save(model.state_dict(), "x.pth")`` writes torch's zip format: torch.load reads it
    weights-only, torchvision's model takes it strictly and computes what ours does."""
    ours = jt.models.resnet18(num_classes=5)
    path = tmp_path / "from_metajit.pth"
    jt.save(ours.state_dict(), str(path))
    state = torch.load(path)  # (weights_only=True by default)
    assert list(state) == list(ours.state_dict()) and state["fc.bias"].dtype == torch.float32
    assert state["bn1.num_batches_tracked"].dtype == torch.int64
    theirs = torchvision.models.resnet18(num_classes=5)
    theirs.load_state_dict(state)
    assert_same_outputs(ours, theirs.eval())
    jt.save({"shared": [state["fc.bias"].numpy()] * 2, "step": 3, "scale": np.float64(0.5)}, str(tmp_path / "misc.pt"))
    misc = torch.load(tmp_path / "misc.pt")
    assert misc["step"] == 3 and misc["scale"].item() == 0.5 and misc["shared"][0] is misc["shared"][1]
    np.testing.assert_array_equal(jt.load(str(tmp_path / "misc.pt"))["shared"][1], state["fc.bias"].numpy())


def test_a_metajit_state_dict_loads_straight_into_torchvision(torchvision):
    """torch functions see Vars as tensors (``__torch_function__``), so torchvision's
    ``load_state_dict`` takes metajit's state dict as it is."""
    ours = jt.models.mobilenet_v2(num_classes=4)
    theirs = torchvision.models.mobilenet_v2(num_classes=4)
    theirs.load_state_dict(ours.state_dict())
    assert_same_outputs(ours, theirs.eval())
    value = jt.array(np.float32(2.5))
    assert torch.as_tensor(value).item() == 2.5 and torch.stack([ours.classifier[1].bias] * 2).shape == (2, 4)
