"""``jt.transform``: Jittor's common image transforms for datasets, on numpy ``HWC`` images
(uint8 or float) and on PIL images when Pillow is installed (optional).

They run on the host, in the data loader, before anything reaches the device. As in
Jittor, `ToTensor` returns a float32 ``CHW`` numpy array scaled to [0, 1] (the loader
turns batches into Vars), `ImageNormalize` works on that, and an int `Resize` size means a
square ``(size, size)``.

Example::

    from metajit import transform
    pipeline = transform.Compose([transform.Resize(256), transform.CenterCrop(224),
                                  transform.RandomHorizontalFlip(), transform.ToTensor(),
                                  transform.ImageNormalize([0.5] * 3, [0.5] * 3)])
    chw = pipeline(hwc_uint8_image)
"""
import random

import numpy as np

from .errors import MetajitShapeError, MetajitValueError

try:
    from PIL import Image
except ImportError:  # Pillow is optional: numpy images always work
    Image = None


def _is_pil(image):
    return Image is not None and isinstance(image, Image.Image)


def _pair(size):
    return (int(size), int(size)) if isinstance(size, (int, np.integer)) else tuple(int(s) for s in size)


def _height_width(image):
    if _is_pil(image):
        return image.size[1], image.size[0]
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise MetajitShapeError(f"image transforms take PIL images or numpy HW / HWC arrays, got "
                                f"{type(image).__name__} of shape {getattr(image, 'shape', None)}")
    return image.shape[:2]


def _crop(image, top, left, height, width):
    if _is_pil(image):
        return image.crop((left, top, left + width, top + height))
    image_height, image_width = image.shape[:2]
    if top < 0 or left < 0 or top + height > image_height or left + width > image_width:
        raise MetajitShapeError(f"crop of {(height, width)} at {(top, left)} does not fit an image of "
                                f"{(image_height, image_width)}")
    return image[top:top + height, left:left + width]


def _resize_array(image, height, width):
    """Bilinear resize of an HW / HWC array with half-pixel centres (PyTorch's
    ``interpolate(mode="bilinear", align_corners=False)``, OpenCV's INTER_LINEAR)."""
    def taps(size, out_size):
        source = np.maximum((np.arange(out_size) + 0.5) * (size / out_size) - 0.5, 0)
        low = np.minimum(np.floor(source).astype(np.int64), size - 1)
        return low, np.minimum(low + 1, size - 1), source - low
    top, bottom, row_weight = taps(image.shape[0], height)
    left, right, column_weight = taps(image.shape[1], width)
    data = image.astype(np.float64)
    expand = (slice(None), None) + (None,) * (image.ndim - 2)
    rows = data[top] * (1 - row_weight[expand]) + data[bottom] * row_weight[expand]
    expand = (None, slice(None)) + (None,) * (image.ndim - 2)
    result = rows[:, left] * (1 - column_weight[expand]) + rows[:, right] * column_weight[expand]
    if image.dtype == np.uint8:
        return np.clip(np.rint(result), 0, 255).astype(np.uint8)
    return result.astype(image.dtype)


class Compose:
    """Apply transforms in order. Example: ``Compose([Resize(32), ToTensor()])(image)``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image):
        for transform in self.transforms:
            image = transform(image)
        return image


class Resize:
    """Resize to ``size`` (an int: a square, as Jittor; or ``(height, width)``), bilinear
    by default (PIL's filter ``mode`` for PIL images). Example: ``Resize((32, 48))``."""

    def __init__(self, size, mode=None):
        self.size = _pair(size)
        self.mode = mode

    def __call__(self, image):
        height, width = self.size
        if _is_pil(image):
            return image.resize((width, height), Image.BILINEAR if self.mode is None else self.mode)
        _height_width(image)
        return _resize_array(image, height, width)


class CenterCrop:
    """Crop the central ``size`` (int: square) region (offsets rounded as torchvision).
    Example: ``CenterCrop(224)``."""

    def __init__(self, size):
        self.size = _pair(size)

    def __call__(self, image):
        image_height, image_width = _height_width(image)
        height, width = self.size
        top, left = int(round((image_height - height) / 2.0)), int(round((image_width - width) / 2.0))
        return _crop(image, top, left, height, width)


class RandomCrop:
    """Crop a ``size`` region at a random place (Python's ``random``, seeded by
    ``jt.set_seed``), after zero-padding by ``padding`` when given. Example: ``RandomCrop(28, padding=2)``."""

    def __init__(self, size, padding=0):
        self.size = _pair(size)
        self.padding = int(padding)

    def __call__(self, image):
        if self.padding:
            if _is_pil(image):
                image = np.asarray(image)
            pad = [(self.padding, self.padding)] * 2 + [(0, 0)] * (image.ndim - 2)
            image = np.pad(image, pad)
        image_height, image_width = _height_width(image)
        height, width = self.size
        if height > image_height or width > image_width:
            raise MetajitShapeError(f"RandomCrop of {self.size} is larger than the image {(image_height, image_width)}")
        top, left = random.randint(0, image_height - height), random.randint(0, image_width - width)
        return _crop(image, top, left, height, width)


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``. Example: ``RandomHorizontalFlip(0.5)``."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, image):
        if random.random() >= self.p:
            return image
        if _is_pil(image):
            return image.transpose(Image.FLIP_LEFT_RIGHT)
        _height_width(image)
        return image[:, ::-1].copy()


class ToTensor:
    """A PIL image or HW / HWC array as a float32 ``CHW`` numpy array; uint8 data is
    scaled to [0, 1] (as Jittor's ``ToTensor``). Example: ``ToTensor()(image).shape`` is ``(3, H, W)``."""

    def __call__(self, image):
        array = np.asarray(image)
        _height_width(array)
        if array.ndim == 2:
            array = array[:, :, None]
        scale = 1 / 255.0 if array.dtype == np.uint8 else 1.0
        return np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32) * np.float32(scale)


class ImageNormalize:
    """``(image - mean) / std`` per channel of a ``CHW`` array (after `ToTensor`).
    Example: ``ImageNormalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])``."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(-1, 1, 1)
        if (self.std == 0).any():
            raise MetajitValueError(f"ImageNormalize: std {list(std)} has a zero")

    def __call__(self, image):
        image = np.asarray(image, np.float32)
        if image.ndim != 3 or image.shape[0] not in (1, len(self.mean)):
            raise MetajitShapeError(f"ImageNormalize expects a CHW array with {len(self.mean)} channels, "
                                    f"got shape {image.shape}")
        return (image - self.mean) / self.std


Normalize = ImageNormalize
