"""jt.transform on numpy HWC images and PIL images, against torch's bilinear interpolation
and plain numpy slicing."""
import random

import numpy as np
import pytest

from metajit import MetajitShapeError, transform

torch = pytest.importorskip("torch")


@pytest.fixture
def image(rng):
    return rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [(3, 5), (9, 12), 4])
def test_resize_matches_torch_bilinear(rng, size):
    data = rng.standard_normal((6, 8, 3)).astype(np.float32)
    height, width = (size, size) if isinstance(size, int) else size
    want = torch.nn.functional.interpolate(torch.tensor(data).permute(2, 0, 1)[None], (height, width),
                                           mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(transform.Resize(size)(data), want, rtol=1e-5, atol=1e-6)


def test_crops_and_flip(image):
    np.testing.assert_array_equal(transform.CenterCrop((4, 4))(image), image[1:5, 2:6])
    random.seed(3)
    crop = transform.RandomCrop(5)(image)
    assert crop.shape == (5, 5, 3)
    assert any((image[t:t + 5, s:s + 5] == crop).all() for t in range(2) for s in range(4))
    assert transform.RandomCrop(6, padding=1)(image).shape == (6, 6, 3)
    np.testing.assert_array_equal(transform.RandomHorizontalFlip(1.0)(image), image[:, ::-1])
    np.testing.assert_array_equal(transform.RandomHorizontalFlip(0.0)(image), image)
    with pytest.raises(MetajitShapeError, match=r"RandomCrop of \(7, 9\) is larger than the image \(6, 8\)"):
        transform.RandomCrop((7, 9))(image)


def test_compose_to_tensor_and_normalize(image):
    pipeline = transform.Compose([transform.CenterCrop(4), transform.ToTensor(),
                                  transform.ImageNormalize([0.5, 0.5, 0.5], [0.25, 0.5, 1.0])])
    result = pipeline(image)
    want = (image[1:5, 2:6].transpose(2, 0, 1) / 255.0 - 0.5) / np.array([0.25, 0.5, 1.0]).reshape(3, 1, 1)
    assert result.dtype == np.float32 and result.shape == (3, 4, 4)
    np.testing.assert_allclose(result, want, rtol=1e-5, atol=1e-6)
    assert transform.Normalize is transform.ImageNormalize
    with pytest.raises(MetajitShapeError, match="CHW array with 3 channels"):
        transform.ImageNormalize([0.5] * 3, [1.0] * 3)(np.zeros((2, 4, 4), np.float32))


def test_pil_images_follow_the_same_path(image):
    Image = pytest.importorskip("PIL.Image")
    picture = Image.fromarray(image)
    np.testing.assert_array_equal(np.asarray(transform.CenterCrop(4)(picture)), image[1:5, 2:6])
    np.testing.assert_array_equal(np.asarray(transform.RandomHorizontalFlip(1.0)(picture)), image[:, ::-1])
    assert transform.Resize((3, 5))(picture).size == (5, 3)
    np.testing.assert_allclose(transform.ToTensor()(picture), image.transpose(2, 0, 1) / 255.0, rtol=1e-6)
