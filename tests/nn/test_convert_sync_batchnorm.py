"""``nn.SyncBatchNorm.convert_sync_batchnorm``, against torch: which layers are converted, and
that the converted ones keep the same Vars and compute the same."""
import numpy as np
import torch

import metajit as jt


def _model(nn):
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.BatchNorm1d(6, affine=False)),
                         nn.LayerNorm(6))


def _kinds(model):
    return [(name, type(module).__name__) for name, module in model.named_modules()]


def test_the_batch_norms_are_converted_keeping_their_vars():
    model, reference = _model(jt.nn), _model(torch.nn)
    model[1].eval()
    before = model.state_dict()
    x = np.random.default_rng(0).standard_normal((4, 3, 4, 4)).astype(np.float32)
    expected = model(jt.array(x)).numpy()
    converted = jt.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert _kinds(converted) == _kinds(torch.nn.SyncBatchNorm.convert_sync_batchnorm(reference))
    assert converted is model and list(converted.state_dict()) == list(before)
    assert all(converted.state_dict()[key] is value for key, value in before.items())
    assert not converted[1].training and converted[3][2].training
    for name in ("momentum", "eps", "affine", "track_running_stats", "num_features"):
        assert getattr(converted[3][2], name) == getattr(reference[3][2], name)
    np.testing.assert_allclose(converted(jt.array(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_a_batch_norm_itself_is_converted():
    layer = jt.nn.BatchNorm2d(3, momentum=0.3)
    converted = jt.nn.SyncBatchNorm.convert_sync_batchnorm(layer)
    assert type(converted).__name__ == type(torch.nn.SyncBatchNorm.convert_sync_batchnorm(
        torch.nn.BatchNorm2d(3))).__name__ == "SyncBatchNorm"
    assert converted.weight is layer.weight and converted.running_var is layer.running_var
    assert converted.momentum == 0.3 and converted.sync
    assert jt.nn.SyncBatchNorm.convert_sync_batchnorm(converted) is converted
