"""The Vision Transformer against torchvision 0.28's: small configurations (every head and
stem kind) in eval and training mode with gradients, the builders at a small image size
(-m slow), and the image size each published checkpoint needs."""
import numpy as np
import pytest

import metajit as jt
from metajit.errors import MetajitValueError
from tests.models.conftest import relative_error

torch = pytest.importorskip("torch")

SMALL = dict(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=5)


def _pair(torchvision, **extra):
    """(ours, theirs): a small torchvision ViT with its parameters moved off their
    initial values (the head starts at zero) and ours loaded from it strictly."""
    torch.manual_seed(0)
    stem = extra.pop("stems", None)
    if stem:
        extra["conv_stem_configs"] = [torchvision.models.vision_transformer.ConvStemConfig(*s) for s in stem]
    theirs = torchvision.models.VisionTransformer(**SMALL, **extra)
    with torch.no_grad():
        for parameter in theirs.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    if stem:
        extra["conv_stem_configs"] = [jt.models.ConvStemConfig(*s) for s in stem]
    ours = jt.models.VisionTransformer(**SMALL, **extra)
    assert ours.load_state_dict(theirs.state_dict()) == ([], [])
    return ours, theirs


@pytest.mark.parametrize("extra", [{}, {"representation_size": 12}, {"stems": [(8, 3, 2), (16, 3, 4)]}],
                         ids=["patches", "pre_logits", "conv_stem"])
def test_eval_forward_matches_torchvision(torchvision, extra):
    ours, theirs = _pair(torchvision, **extra)
    image = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    expected = theirs.eval()(torch.from_numpy(image))
    assert relative_error(ours.eval()(jt.array(image)).numpy(), expected) < 1e-5


def test_training_forward_and_every_gradient_match_torchvision(torchvision):
    ours, theirs = _pair(torchvision)  # dropout 0: training differs from eval only in BatchNorm-free paths
    image = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    labels = np.array([1, 3])
    theirs.train()
    loss = torch.nn.functional.cross_entropy(theirs(torch.from_numpy(image)), torch.from_numpy(labels))
    loss.backward()
    ours.train()
    ours_loss = jt.nn.cross_entropy(ours(jt.array(image)), jt.array(labels))
    gradients = jt.grad(ours_loss, list(ours.parameters()))
    np.testing.assert_allclose(ours_loss.item(), loss.item(), rtol=1e-5)
    for (name, parameter), gradient in zip(theirs.named_parameters(), gradients):
        assert relative_error(gradient.numpy(), parameter.grad) < 1e-4, name


def test_builders_take_torchvision_arguments_and_check_the_image(torchvision):
    model = jt.models.vit_b_32(image_size=64, num_classes=3, representation_size=10)
    assert model.seq_length == 5 and model.heads.head.weight.shape == (3, 10)
    assert len(model.encoder.layers) == 12
    with pytest.raises(MetajitValueError, match="defined with num_layers=12"):
        jt.models.vit_b_32(num_layers=1)
    with pytest.raises(MetajitValueError, match="64x64 images, got 32x32"):
        model(jt.zeros((1, 3, 32, 32)))
    with pytest.raises(MetajitValueError, match="not divisible by patch_size"):
        jt.models.vit_b_16(image_size=40)


def test_published_weights_fix_the_image_size_they_were_trained_at(no_weights_dirs, monkeypatch):
    monkeypatch.setenv("METAJIT_WEIGHTS_DIR", str(no_weights_dirs))
    (no_weights_dirs / "vit_b_16_swag-9ac1b537.pth").write_bytes(b"")
    with pytest.raises(MetajitValueError, match="IMAGENET1K_SWAG_E2E_V1 weights need image_size=384"):
        jt.models.vit_b_16(weights="IMAGENET1K_SWAG_E2E_V1", image_size=224)
    with pytest.raises(MetajitValueError, match="IMAGENET1K_V1"):
        jt.models.vit_h_14(pretrained=True)  # torchvision publishes no V1 weights for it


@pytest.mark.slow
@pytest.mark.parametrize("name, side", [("vit_b_16", 32), ("vit_b_32", 64), ("vit_l_16", 32), ("vit_l_32", 64),
                                        ("vit_h_14", 28)])
def test_every_builder_matches_torchvision(torchvision, name, side):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, name)(image_size=side).eval()
    with torch.no_grad():
        theirs.heads.head.weight.normal_(0, 0.02)
    ours = getattr(jt.models, name)(image_size=side).eval()
    assert ours.load_state_dict(theirs.state_dict()) == ([], [])
    image = np.random.default_rng(0).standard_normal((1, 3, side, side)).astype(np.float32)
    assert relative_error(ours(jt.array(image)).numpy(), theirs(torch.from_numpy(image))) < 1e-3
