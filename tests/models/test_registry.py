"""torchvision's registry and weights enums: every ``<Model>_Weights`` enum has torchvision's
name, members, checkpoint URLs and DEFAULT; ``get_model`` / ``list_models`` /
``get_model_weights`` / ``get_weight`` answer as torchvision's for our models."""
import pytest

import metajit as jt
from tests.models.conftest import assert_same_outputs

torch = pytest.importorskip("torch")
JITTOR_ONLY = {"resnet26", "resnet38"}
# torchvision's classification families metajit.models has (Swin and MaxViT it has not)
FAMILIES = ("alexnet", "vgg", "resnet", "resnext", "wide_resnet", "squeezenet", "googlenet", "inception",
            "mobilenet_v2", "mobilenet_v3", "mnasnet", "shufflenet", "densenet", "efficientnet", "convnext", "regnet",
            "vit")


def test_weights_enums_match_torchvisions(torchvision):
    ours = jt.models.weights_enums()
    assert len(ours) == len(jt.models.list_models()) - len(JITTOR_ONLY)
    for name, enum in ours.items():
        theirs = getattr(torchvision.models, name)
        assert [m.name for m in enum] == [m.name for m in theirs], name
        assert [m.url for m in enum] == [m.url for m in theirs], name
        assert enum.DEFAULT.name == theirs.DEFAULT.name, name
        assert getattr(jt.models, name) is enum


def test_every_model_of_the_families_present_is_there(torchvision):
    theirs = torchvision.models.list_models(module=torchvision.models)
    assert sorted(set(jt.models.list_models(module=jt.models)) - JITTOR_ONLY) == \
        [name for name in theirs if name.startswith(FAMILIES)]


def test_registry_functions_answer_as_torchvisions(torchvision):
    theirs = set(torchvision.models.list_models(module=torchvision.models))
    assert set(jt.models.list_models()) - JITTOR_ONLY <= theirs
    for family in ("mobilenet_v3", "efficientnet", "convnext", "regnet"):
        assert jt.models.list_models(include=f"{family}*") == torchvision.models.list_models(include=f"{family}*")
    assert jt.models.get_model_weights("regnet_y_128gf").DEFAULT.name == "IMAGENET1K_SWAG_E2E_V1"
    assert jt.models.EfficientNet_V2_S_Weights.DEFAULT.file_name == "efficientnet_v2_s-dd5fe13b.pth"
    assert jt.models.list_models(include="resnet*", exclude="*26") == \
        sorted(set(torchvision.models.list_models(include="resnet*")) | {"resnet38"})
    assert jt.models.list_models(module=jt.models) == jt.models.list_models()
    assert jt.models.list_models(module=jt.models.resnet) == []  # a package, as torchvision's
    assert jt.models.get_model_weights("resnet50") is jt.models.ResNet50_Weights
    assert jt.models.get_model_weights(jt.models.mobilenet_v2).DEFAULT.name == "IMAGENET1K_V2"
    assert jt.models.get_weight("ResNet50_Weights.IMAGENET1K_V1") is jt.models.ResNet50_Weights.IMAGENET1K_V1
    assert jt.models.get_model("squeezenet1_1", num_classes=7).classifier[1].out_channels == 7
    with pytest.raises(jt.MetajitValueError, match="unknown model 'resnet17'"):
        jt.models.get_model("resnet17")


def test_our_enum_members_load_local_checkpoints(no_weights_dirs, monkeypatch, resnet18_checkpoint):
    theirs, path = resnet18_checkpoint
    monkeypatch.setenv("METAJIT_WEIGHTS_DIR", str(path.parent))
    assert_same_outputs(jt.models.resnet18(weights=jt.models.ResNet18_Weights.DEFAULT), theirs)
    state = jt.models.ResNet18_Weights.IMAGENET1K_V1.get_state_dict()
    assert set(state) == set(theirs.state_dict())
    with pytest.raises(jt.MetajitValueError, match="another model's"):
        jt.models.resnet34(weights=jt.models.ResNet18_Weights.DEFAULT)
