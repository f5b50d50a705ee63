"""unfold/fold, affine_grid/grid_sample (2-d and 3-d), interpolate (area and bicubic modes,
scale_factor's coordinates, Jittor's tf_mode) and ParameterDict against torch (values and
gradients), extreme grids included."""
import itertools

import numpy as np
import pytest

import metajit as jt
import metajit.nn.functional as F
from tests.oracle import numeric_grad

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def check(ours, theirs, *arrays, atol=1e-5, grad=True):
    """Values and the gradients of ``sum(out * weight)`` for every float input vs torch."""
    inputs = [jt.array(a) for a in arrays]
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    got, want = ours(*inputs), theirs(*tensors)
    np.testing.assert_allclose(got.numpy(), want.detach().numpy(), atol=atol, rtol=1e-5)
    if not grad:
        return
    weight = np.random.default_rng(3).standard_normal(tuple(want.shape)).astype(np.float32)
    (want * torch.tensor(weight)).sum().backward()
    for g, t in zip(jt.grad((got * jt.array(weight)).sum(), inputs), tensors):
        np.testing.assert_allclose(g.numpy(), t.grad.numpy(), atol=1e-4, rtol=1e-4)


GEOMETRIES = [dict(kernel_size=2), dict(kernel_size=(2, 3), dilation=(1, 2), padding=1, stride=(2, 1)),
              dict(kernel_size=3, padding=1)]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_unfold_and_fold_match_torch(rng, geometry):
    image = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    check(lambda x: F.unfold(x, **geometry), lambda x: TF.unfold(x, **geometry), image)
    blocks = TF.unfold(torch.tensor(image), **geometry).shape
    columns = rng.standard_normal(tuple(blocks)).astype(np.float32)
    check(lambda c: F.fold(c, (5, 6), **geometry), lambda c: TF.fold(c, (5, 6), **geometry), columns)
    check(lambda c: jt.nn.Fold((5, 6), **geometry)(c[0]), lambda c: torch.nn.Fold((5, 6), **geometry)(c[0]), columns)
    np.testing.assert_allclose(jt.nn.Unfold(**geometry)(jt.array(image)).numpy(),
                               torch.nn.Unfold(**geometry)(torch.tensor(image)).numpy())


def test_unfold_and_fold_name_bad_shapes():
    with pytest.raises(jt.MetajitShapeError, match=r"unfold expects a 4-d \(N, C, H, W\) input, got shape \(3, 4\)"):
        F.unfold(jt.zeros(3, 4), 2)
    with pytest.raises(jt.MetajitShapeError, match=r"too small for kernel \(5, 5\)"):
        F.unfold(jt.zeros(1, 1, 3, 3), 5)
    with pytest.raises(jt.MetajitShapeError, match="fold: 5 blocks given"):
        F.fold(jt.zeros(1, 4, 5), (4, 4), 2, stride=2)


@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_matches_torch(rng, align_corners):
    theta = rng.standard_normal((2, 2, 3)).astype(np.float32)
    check(lambda t: F.affine_grid(t, (2, 3, 4, 5), align_corners),
          lambda t: TF.affine_grid(t, (2, 3, 4, 5), align_corners=align_corners), theta)


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_matches_torch(rng, mode, padding_mode, align_corners):
    image = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    grid = rng.uniform(-1.6, 1.6, (2, 3, 6, 2)).astype(np.float32)  # inside and outside the image
    settings = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    check(lambda x, g: F.grid_sample(x, g, **settings), lambda x, g: TF.grid_sample(x, g, **settings), image, grid)


def test_grid_sample_with_extreme_coordinates_matches_torch(rng):
    image = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    grid = np.array([[[[np.nan, 0.0], [1e10, 0.0], [-1e10, 0.5], [np.inf, 0.0], [1.0, -1.0]]]], np.float32)
    for padding_mode in ("zeros", "border", "reflection"):
        for mode in ("bilinear", "nearest"):
            got = F.grid_sample(jt.array(image), jt.array(grid), mode, padding_mode).numpy()
            want = TF.grid_sample(torch.tensor(image), torch.tensor(grid), mode, padding_mode, False).numpy()
            np.testing.assert_allclose(got, want, atol=1e-6, err_msg=f"{mode} {padding_mode}")


def test_identity_warp_reproduces_the_image(rng):
    image = rng.standard_normal((1, 2, 4, 6)).astype(np.float32)
    theta = jt.array(np.array([[[1.0, 0, 0], [0, 1, 0]]], np.float32))
    warped = F.grid_sample(jt.array(image), F.affine_grid(theta, image.shape), align_corners=False)
    np.testing.assert_allclose(warped.numpy(), image, atol=1e-5)


@pytest.mark.filterwarnings("ignore:Since version 1.3.0")  # torch on unit-size grids: ours agree
@pytest.mark.parametrize("align_corners", [False, True])
def test_affine_grid_3d_matches_torch(rng, align_corners):
    theta = rng.standard_normal((2, 3, 4)).astype(np.float32)
    check(lambda t: F.affine_grid(t, (2, 3, 4, 5, 3), align_corners),
          lambda t: TF.affine_grid(t, (2, 3, 4, 5, 3), align_corners=align_corners), theta)
    check(lambda t: F.affine_grid(t, [2, 1, 1, 2, 1], align_corners),
          lambda t: TF.affine_grid(t, [2, 1, 1, 2, 1], align_corners=align_corners), theta)


@pytest.mark.parametrize("padding_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_grid_sample_3d_matches_torch(rng, mode, padding_mode, align_corners):
    volume = rng.standard_normal((2, 2, 3, 4, 5)).astype(np.float32)
    grid = rng.uniform(-1.6, 1.6, (2, 2, 3, 4, 3)).astype(np.float32)
    settings = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    check(lambda x, g: F.grid_sample(x, g, **settings), lambda x, g: TF.grid_sample(x, g, **settings), volume, grid)


def test_grid_sample_3d_with_extreme_coordinates_matches_torch(rng):
    volume = rng.standard_normal((1, 2, 2, 3, 3)).astype(np.float32)
    grid = np.array([[[[[np.nan, 0.0, 0.0], [0.0, 1e10, -1e10], [np.inf, -np.inf, 0.5], [1.0, -1.0, 1.0],
                        [0.0, 0.0, np.nan], [1e8, -3e7, 7.3], [-1.0001, 1.0001, 0.99999]]]]], np.float32)
    for padding_mode, mode, align_corners in itertools.product(("zeros", "border", "reflection"),
                                                               ("bilinear", "nearest"), (False, True)):
        got = F.grid_sample(jt.array(volume), jt.array(grid), mode, padding_mode, align_corners).numpy()
        want = TF.grid_sample(torch.tensor(volume), torch.tensor(grid), mode, padding_mode, align_corners).numpy()
        np.testing.assert_allclose(got, want, atol=1e-6, err_msg=f"{mode} {padding_mode} {align_corners}")


def test_identity_warp_reproduces_a_volume(rng):
    volume = rng.standard_normal((2, 2, 3, 4, 5)).astype(np.float32)
    theta = jt.array(np.tile(np.eye(3, 4, dtype=np.float32), (2, 1, 1)))
    for align_corners in (False, True):
        grid = F.affine_grid(theta, volume.shape, align_corners=align_corners)
        warped = F.grid_sample(jt.array(volume), grid, align_corners=align_corners)
        np.testing.assert_allclose(warped.numpy(), volume, atol=1e-5)


def test_affine_grid_and_grid_sample_name_bad_shapes():
    with pytest.raises(jt.MetajitShapeError, match=r"theta \(N, 3, 4\) with size \(N, C, D, H, W\); got theta "
                                                   r"\(1, 2, 3\) and size \(1, 1, 2, 2, 2\)"):
        F.affine_grid(jt.zeros(1, 2, 3), (1, 1, 2, 2, 2))
    with pytest.raises(jt.MetajitShapeError, match=r"grid \(N, Do, Ho, Wo, 3\); got \(1, 1, 2, 2, 2\) and "
                                                   r"\(1, 2, 2, 2, 2\)"):
        F.grid_sample(jt.zeros(1, 1, 2, 2, 2), jt.zeros(1, 2, 2, 2, 2))
    with pytest.raises(jt.MetajitShapeError, match="grid_sample expects input"):
        F.grid_sample(jt.zeros(1, 1, 2), jt.zeros(1, 2, 1))
    with pytest.raises(jt.MetajitValueError, match="mode must be 'bilinear' or 'nearest', got 'trilinear'"):
        F.grid_sample(jt.zeros(1, 1, 2, 2, 2), jt.zeros(1, 2, 2, 2, 3), mode="trilinear")


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(7, 4), (2, 9), (1, 1)])
def test_bicubic_interpolation_matches_torch(rng, size, align_corners):
    image = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    check(lambda x: jt.nn.interpolate(x, size, mode="bicubic", align_corners=align_corners),
          lambda x: TF.interpolate(x, size, mode="bicubic", align_corners=align_corners), image)


@pytest.mark.parametrize("size", [(7, 4), (2, 3), (5, 6)])
def test_area_interpolation_matches_torch(rng, size):
    image = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    check(lambda x: F.interpolate(x, size, mode="area"), lambda x: TF.interpolate(x, size, mode="area"), image)
    check(lambda x: jt.nn.Upsample(scale_factor=2, mode="bicubic")(x),
          lambda x: torch.nn.Upsample(scale_factor=2, mode="bicubic")(x), image)


MODES = [dict(mode="nearest"), dict(mode="area")] + [dict(mode=mode, align_corners=corners)
                                                     for mode in ("bilinear", "bicubic") for corners in (False, True)]


@pytest.mark.parametrize("recompute_scale_factor", [None, True])
@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("scale_factor", [1.7, (0.6, 2.3), 3.0, (1 / 3, 0.999)])
def test_interpolate_with_scale_factor_matches_torch(rng, scale_factor, mode, recompute_scale_factor):
    image = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    settings = dict(scale_factor=scale_factor, recompute_scale_factor=recompute_scale_factor, **mode)
    check(lambda x: F.interpolate(x, **settings), lambda x: TF.interpolate(x, **settings), image)
    check(lambda x: jt.nn.Upsample(**settings)(x), lambda x: torch.nn.Upsample(**settings)(x), image)


@pytest.mark.parametrize("sizes", [(2, 82), (3, 123), (7, 3), (5, 16), (1, 4)])
def test_nearest_indices_follow_torch_float_rule(rng, sizes):
    size, out_size = sizes
    image = rng.standard_normal((1, 2, size, size + 1)).astype(np.float32)
    check(lambda x: F.interpolate(x, (out_size, out_size + 2)), lambda x: TF.interpolate(x, (out_size, out_size + 2)),
          image)
    factor = out_size / size + 0.01
    check(lambda x: F.interpolate(x, scale_factor=factor), lambda x: TF.interpolate(x, scale_factor=factor), image)


def jittor_tf_mode_bilinear(image, out_height, out_width):
    """Jittor's ``resize(..., "bilinear", tf_mode=True)``: output i reads source i * size /
    out_size (clamped to the last pixel when enlarging); reads past the edge are 0."""
    height, width = image.shape[-2:]
    rows, columns = np.arange(out_height) * (height / out_height), np.arange(out_width) * (width / out_width)
    rows = np.clip(rows, 0, height - 1) if out_height > height else rows
    columns = np.clip(columns, 0, width - 1) if out_width > width else columns
    padded = np.pad(image, [(0, 0)] * (image.ndim - 2) + [(0, 1), (0, 1)])
    top, left = np.floor(rows).astype(int), np.floor(columns).astype(int)
    dy, dx = (rows - top)[:, None], (columns - left)[None, :]
    read = lambda r, c: padded[..., r[:, None], c[None, :]]  # noqa: E731
    return ((read(top, left) * (1 - dx) + read(top, left + 1) * dx) * (1 - dy)
            + (read(top + 1, left) * (1 - dx) + read(top + 1, left + 1) * dx) * dy)


@pytest.mark.parametrize("size", [(7, 4), (3, 10), (5, 7)])
def test_jittor_tf_mode_bilinear_matches_jittors_formula(rng, size):
    image = rng.standard_normal((1, 2, 5, 7))
    weight = rng.standard_normal((1, 2) + size)
    x = jt.array(image)
    got = F.interpolate(x, size, mode="bilinear", tf_mode=True)
    np.testing.assert_allclose(got.numpy(), jittor_tf_mode_bilinear(image, *size), rtol=1e-12, atol=1e-12)
    want = numeric_grad(lambda v: (jittor_tf_mode_bilinear(v, *size) * weight).sum(), image)
    np.testing.assert_allclose(jt.grad((got * jt.array(weight)).sum(), x).numpy(), want, rtol=1e-6, atol=1e-8)


def test_interpolate_names_bad_geometry():
    x = jt.zeros(1, 1, 4, 4)
    with pytest.raises(jt.MetajitValueError, match="give exactly one of size and scale_factor, got both"):
        F.interpolate(x, (2, 2), 2.0)
    with pytest.raises(jt.MetajitValueError, match="give exactly one of size and scale_factor, got neither"):
        F.interpolate(x)
    with pytest.raises(jt.MetajitValueError, match=r"scale_factor must be a positive number or two, got -2"):
        F.interpolate(x, scale_factor=-2)
    with pytest.raises(jt.MetajitValueError, match=r"output size must be two positive sizes, got \(0, 0\)"):
        F.interpolate(x, scale_factor=0.2)
    with pytest.raises(jt.MetajitShapeError, match=r"4-d \(N, C, H, W\) input, got shape \(1, 4, 4\)"):
        F.interpolate(jt.zeros(1, 4, 4), scale_factor=2)


def test_interpolate_names_the_modes():
    with pytest.raises(jt.MetajitValueError, match="'bicubic' or 'area', got 'trilinear'"):
        jt.nn.interpolate(jt.zeros(1, 1, 2, 2), (4, 4), mode="trilinear")


def test_parameter_dict_registers_its_parameters_as_torch_does(rng):
    class Scales(jt.nn.Module):
        def __init__(self):
            self.scales = jt.nn.ParameterDict({"a": jt.ones(3), "b": jt.zeros(2)})

        def execute(self, x):
            return x * self.scales["a"]

    model = Scales()
    model.scales["c"] = jt.ones(1)
    model.scales.update({"d": jt.zeros(4)})
    assert list(model.state_dict()) == ["scales.a", "scales.b", "scales.c", "scales.d"]
    assert len(model.scales) == 4 and "c" in model.scales and list(model.scales) == ["a", "b", "c", "d"]
    assert [tuple(v.shape) for v in model.scales.values()] == [(3,), (2,), (1,), (4,)]
    torch_dict = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.tensor(v.numpy()))
                                         for k, v in model.scales.items()})
    assert list(torch_dict.state_dict()) == [k.split(".")[1] for k in model.state_dict()]
    x = jt.array(rng.standard_normal(3).astype(np.float32))
    gradient = jt.grad(model(x).sum(), model.scales["a"])
    np.testing.assert_allclose(gradient.numpy(), x.numpy())
    assert len(model.parameters()) == 4
