import itertools
import json

import numpy as np
import pytest
from scipy import ndimage

from liverseg.data.geometry import Geometry, GridTransform, axis_codes, infer_training_geometry
from liverseg.errors import ConfigError

SPACING = (0.9, 1.3, 2.5)
PERMUTATIONS = list(itertools.permutations(range(3)))
FLIPS = list(itertools.product((False, True), repeat=3))


def ras_affine(spacing=SPACING, origin=(-40.0, 25.0, 100.0)):
    affine = np.diag(list(spacing) + [1.0])
    affine[:3, 3] = origin
    return affine


def stored_as(data, affine, spacing, perm, flips):
    """The same world image stored with axis j holding base axis ``perm[j]``, reversed
    where ``flips[j]``: (data, affine, spacing) of that storage."""
    stored = np.transpose(data, perm)
    to_base = np.zeros((4, 4))
    to_base[3, 3] = 1.0
    for j, (axis, flip) in enumerate(zip(perm, flips)):
        if flip:
            stored = np.flip(stored, axis=j)
            to_base[axis, j] = -1.0
            to_base[axis, 3] = data.shape[axis] - 1
        else:
            to_base[axis, j] = 1.0
    return stored, affine @ to_base, tuple(spacing[a] for a in perm)


def all_storages(data, affine=None, spacing=SPACING):
    affine = ras_affine(spacing) if affine is None else affine
    for perm in PERMUTATIONS:
        for flips in FLIPS:
            yield stored_as(data, affine, spacing, perm, flips)


def transform(affine, shape, spacing, orientation="RAS", pixel_spacing=None):
    return GridTransform.for_volume(affine, shape, spacing, Geometry(orientation, pixel_spacing))


def world_of_centres(grid):
    """World coordinates (x, y, z arrays) of the model grid's voxel centres."""
    idx = np.indices(grid.model_shape, dtype=np.float64).reshape(3, -1)
    world = grid.model_affine[:3, :3] @ idx + grid.model_affine[:3, 3:]
    return world.reshape((3,) + grid.model_shape)


@pytest.fixture
def volume(rng):
    return rng.integers(-1000, 1000, size=(5, 6, 7)).astype(np.int16)


# ----------------------------------------------------------------------------
# Reorientation


def test_all_48_storages_give_the_same_model_array(volume):
    labels = (np.abs(volume) % 3).astype(np.uint8)
    assert len(list(all_storages(volume))) == 48
    for target in ("RAS", "LPI", "SAR"):
        reference = None
        for (ct, affine, spacing), (lab, _, _) in zip(all_storages(volume), all_storages(labels)):
            grid = transform(affine, ct.shape, spacing, target)
            assert axis_codes(grid.model_affine) == target
            model, model_labels = grid.forward(ct, 1), grid.forward(lab, 0)
            assert np.shares_memory(model, ct) and np.shares_memory(model_labels, lab)
            if reference is None:
                reference = (model, model_labels, grid.model_affine, grid.model_spacing)
            np.testing.assert_array_equal(model, reference[0])
            np.testing.assert_array_equal(model_labels, reference[1])
            np.testing.assert_allclose(grid.model_affine, reference[2], atol=1e-9)
            assert grid.model_spacing == pytest.approx(reference[3])
            for array, order in ((ct, 1), (lab, 0)):
                back = grid.backward(grid.forward(array, order), order)
                assert back.shape == array.shape and back.dtype == array.dtype
                np.testing.assert_array_equal(back, array)


def test_ras_target_restores_the_base_array(volume):
    for ct, affine, spacing in all_storages(volume):
        np.testing.assert_array_equal(transform(affine, ct.shape, spacing).forward(ct), volume)


def test_all_48_storages_agree_after_resampling(volume):
    labels = (np.abs(volume) % 3).astype(np.uint8)
    big = np.kron(volume, np.ones((8, 3, 1), np.int16))  # 40 x 18 x 7
    big_labels = np.kron(labels, np.ones((8, 3, 1), np.uint8))
    reference = None
    for perm, flips in itertools.product(PERMUTATIONS, FLIPS):
        ct, affine, spacing = stored_as(big, ras_affine(), SPACING, perm, flips)
        lab = stored_as(big_labels, ras_affine(), SPACING, perm, flips)[0]
        grid = transform(affine, ct.shape, spacing, "LPS", (2.1, 0.7))
        model, model_labels = grid.forward(ct, 1), grid.forward(lab, 0)
        back, back_labels = grid.backward(model), grid.backward(model_labels, 0)
        if reference is None:  # the first storage is the base (RAS) one
            reference = model, model_labels, back, back_labels
            assert grid.model_shape == (17, 33, 7)
        # float32 sums run in the order of the input's memory layout: equal up to rounding
        np.testing.assert_allclose(model, reference[0], rtol=0, atol=1e-3)
        np.testing.assert_array_equal(model_labels, reference[1])
        assert back.shape == ct.shape and back.dtype == np.float32 and back.flags.f_contiguous
        stored_back = stored_as(reference[2], ras_affine(), SPACING, perm, flips)[0]
        np.testing.assert_allclose(back, stored_back, rtol=0, atol=1e-3)
        np.testing.assert_array_equal(
            back_labels, stored_as(reference[3], ras_affine(), SPACING, perm, flips)[0]
        )


def test_oblique_affine_takes_the_closest_axes(volume):
    angle = np.deg2rad(25)
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    affine = ras_affine()
    affine[:3, :3] = rot @ affine[:3, :3]
    assert axis_codes(affine) == "RAS"
    grid = transform(affine, volume.shape, SPACING, "LAI")
    np.testing.assert_array_equal(grid.forward(volume), volume[::-1, :, ::-1])
    world_centre = affine @ np.r_[(np.array(volume.shape) - 1) / 2, 1]
    model_centre = grid.model_affine @ np.r_[(np.array(grid.model_shape) - 1) / 2, 1]
    np.testing.assert_allclose(model_centre, world_centre, atol=1e-9)


def test_axis_codes_of_a_singular_affine_raise():
    with pytest.raises(ValueError, match="singular"):
        axis_codes(np.diag([1.0, 0.0, 1.0, 1.0]))


# ----------------------------------------------------------------------------
# Resampling


def test_model_shape_and_spacing():
    grid = transform(
        ras_affine((0.8, 0.7, 2.0)), (512, 300, 40), (0.8, 0.7, 2.0), pixel_spacing=(3.9, 1.6)
    )
    assert grid.model_shape == (105, 131, 40)  # round(512*0.8/3.9), round(300*0.7/1.6)
    assert grid.model_spacing == pytest.approx((512 * 0.8 / 105, 300 * 0.7 / 131, 2.0))
    assert grid.resamples
    tiny = transform(ras_affine((1.0, 1.0, 1.0)), (40, 40, 3), None, pixel_spacing=(10.0, 3.0))
    assert tiny.model_shape == (16, 16, 3)  # at least the networks' minimum


def test_spacing_within_one_percent_is_not_resampled(rng):
    ct = rng.normal(size=(30, 20, 4)).astype(np.float32)
    grid = transform(
        ras_affine((1.005, 0.996, 1.0)), ct.shape, (1.005, 0.996, 1.0), pixel_spacing=(1.0, 1.0)
    )
    assert not grid.resamples and grid.model_shape == ct.shape
    assert grid.forward(ct) is ct and grid.backward(ct) is ct
    one_axis = transform(
        ras_affine((1.005, 0.5, 1.0)), (30, 40, 4), (1.005, 0.5, 1.0), pixel_spacing=(1.0, 1.0)
    )
    assert one_axis.model_shape == (30, 20, 4)
    assert one_axis.model_spacing == pytest.approx((1.005, 1.0, 1.0))


def test_constant_volume_stays_constant():
    for shape, spacing, target in (
        ((40, 33, 3), (0.8, 0.8, 2.0), (3.9, 2.5)),
        ((17, 20, 2), (2.0, 1.5, 2.0), (0.7, 0.9)),
    ):
        ct = np.full(shape, 123, np.int16)
        grid = transform(ras_affine(spacing), shape, spacing, pixel_spacing=target)
        model = grid.forward(ct)
        assert model.dtype == np.float32 and model.shape == grid.model_shape
        np.testing.assert_allclose(model, 123.0, rtol=1e-6)
        np.testing.assert_allclose(grid.backward(model), 123.0, rtol=1e-6)


GRADIENT, OFFSET = np.array([0.7, -1.9, 0.4]), 12.0  # a ramp in world mm


def world_ramp(affine, shape):
    idx = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = affine[:3, :3] @ idx + affine[:3, 3:]
    return (GRADIENT @ world + OFFSET).reshape(shape)


@pytest.mark.parametrize(
    "spacing,target",
    [((0.8, 0.8, 2.0), (3.1, 2.3)), ((2.0, 1.7, 3.0), (0.75, 1.1)), ((0.6, 1.4, 2.0), (1.0, 1.0))],
)
def test_linear_ramp_stays_the_same_ramp_in_world_coordinates(spacing, target):
    ramp = world_ramp(ras_affine(spacing), (64, 60, 3)).astype(np.float32)
    for perm, flips in (
        ((0, 1, 2), (False,) * 3),
        ((1, 0, 2), (True, False, True)),
        ((2, 0, 1), (False, True, False)),
    ):
        stored, affine, spacing_s = stored_as(ramp, ras_affine(spacing), spacing, perm, flips)
        grid = transform(affine, stored.shape, spacing_s, "LPS", target)
        model = grid.forward(stored)
        expected = GRADIENT @ world_of_centres(grid).reshape(3, -1) + OFFSET
        error = np.abs(model - expected.reshape(model.shape))
        # exact where the kernel stays inside the image; cut (biased) within reach of an edge
        assert error[3:-3, 3:-3].max() < 1e-3
        reach = max(grid.model_spacing[:2]) + max(grid.reoriented_spacing[:2])
        assert error.max() < np.linalg.norm(GRADIENT) * reach


def test_upsampling_matches_scipy_zoom_grid_mode(rng):
    ct = rng.normal(size=(23, 30, 3)).astype(np.float32)
    grid = transform(ras_affine((1.0, 1.0, 1.0)), ct.shape, None, pixel_spacing=(0.45, 0.7))
    zoom = np.array(grid.model_shape) / np.array(ct.shape)
    expected = ndimage.zoom(ct, zoom, order=1, grid_mode=True, mode="nearest")
    np.testing.assert_allclose(grid.forward(ct), expected, atol=1e-5)


@pytest.mark.parametrize("memory_order", ["C", "F"])
def test_backward_has_the_exact_input_shape(memory_order):
    for shape in ((33, 50, 3), (64, 17, 2), (101, 99, 1)):
        for spacing in ((0.77, 1.13, 2.0), (2.9, 0.31, 5.0)):
            ct = np.zeros(shape, np.int16, order=memory_order)
            for codes in ("RAS", "PIL"):
                grid = transform(ras_affine(spacing), shape, spacing, codes, (1.9, 0.83))
                model = grid.forward(ct)
                assert model.shape == grid.model_shape
                assert grid.backward(model).shape == shape
                assert grid.backward(grid.forward(ct, 0), 0).shape == shape


def disc(affine, shape, centre_mm, radius_mm):
    idx = np.indices(shape, dtype=np.float64).reshape(3, -1)
    world = (affine[:3, :3] @ idx + affine[:3, 3:]).reshape((3,) + shape)
    return ((world[0] - centre_mm[0]) ** 2 + (world[1] - centre_mm[1]) ** 2 <= radius_mm**2).astype(
        np.uint8
    )


def test_disc_keeps_its_area_after_resampling():
    spacing, radius = (0.8, 0.6, 2.0), 21.0
    affine = ras_affine(spacing, origin=(0.0, 0.0, 0.0))
    mask = disc(affine, (90, 120, 2), (36.0, 35.0), radius)
    area = np.pi * radius**2
    assert mask[:, :, 0].sum() * spacing[0] * spacing[1] == pytest.approx(area, rel=0.01)
    for target in ((2.3, 2.3), (1.7, 0.45)):
        grid = transform(affine, mask.shape, spacing, "LPS", target)
        sx, sy, _ = grid.model_spacing
        nearest = grid.forward(mask, 0)
        linear = grid.forward(mask, 1)
        assert nearest[:, :, 0].sum() * sx * sy == pytest.approx(area, rel=0.05)
        assert (linear[:, :, 0] > 0.5).sum() * sx * sy == pytest.approx(area, rel=0.05)
        back = grid.backward(linear, 1) > 0.5
        assert np.mean(back != mask.astype(bool)) < 0.01


def test_labels_stay_labels_under_order_zero(rng):
    labels = rng.integers(0, 3, size=(41, 37, 3)).astype(np.uint8)
    grid = transform(ras_affine(), labels.shape, SPACING, "LPS", (2.2, 0.8))
    model = grid.forward(labels, 0)
    assert model.dtype == np.uint8 and set(np.unique(model)) <= {0, 1, 2}
    back = grid.backward(model, 0)
    assert back.dtype == np.uint8 and set(np.unique(back)) <= {0, 1, 2}
    assert back.shape == labels.shape


def test_anisotropic_pixels_use_one_factor_per_axis():
    spacing = (0.5, 1.5, 2.0)
    affine = ras_affine(spacing)
    ramp = np.indices((60, 20, 2))[0].astype(np.float32)  # along axis 0 only
    grid = transform(affine, ramp.shape, spacing, pixel_spacing=(1.0, 1.0))
    assert grid.model_shape == (30, 30, 2)
    assert grid.model_spacing == pytest.approx((1.0, 1.0, 2.0))
    model = grid.forward(ramp)
    np.testing.assert_allclose(
        model[1:-1],
        np.broadcast_to((2 * np.arange(30) + 0.5)[1:-1, None, None], (28, 30, 2)),
        atol=1e-5,
    )
    swapped = transform(affine, ramp.shape, spacing, "ARS", (1.0, 1.0))
    assert swapped.model_shape == (30, 30, 2)
    np.testing.assert_allclose(swapped.forward(ramp), np.swapaxes(model, 0, 1), atol=1e-5)


def test_model_affine_maps_model_pixels_to_the_same_world():
    affine = ras_affine((0.8, 0.8, 2.0))
    grid = transform(affine, (100, 80, 4), None, "RAS", (4.0, 2.0))
    assert grid.model_shape == (20, 32, 4)
    # the field of view (outer pixel edges) is the same on both grids
    for corner in itertools.product((-0.5, 0.5), repeat=2):
        inp = np.array(
            [
                corner[0] + (0 if corner[0] < 0 else 99),
                corner[1] + (0 if corner[1] < 0 else 79),
                0,
                1,
            ]
        )
        out = np.array(
            [
                corner[0] + (0 if corner[0] < 0 else 19),
                corner[1] + (0 if corner[1] < 0 else 31),
                0,
                1,
            ]
        )
        np.testing.assert_allclose(affine @ inp, grid.model_affine @ out, atol=1e-9)


def test_wrong_shapes_and_orders_are_refused(volume):
    grid = transform(ras_affine(), volume.shape, SPACING)
    with pytest.raises(ValueError, match="shape"):
        grid.forward(volume[:, :, :3])
    with pytest.raises(ValueError, match="order"):
        grid.forward(volume, 3)
    with pytest.raises(ValueError, match="spacing"):
        transform(ras_affine(), volume.shape, (1.0, 0.0, 1.0))


# ----------------------------------------------------------------------------
# Training geometry and Geometry


def test_infer_training_geometry_majority_orientation_and_median_spacing():
    shape = (64, 64, 20)
    ras = [(ras_affine((s, s * 1.1, 2.0)), shape, (s, s * 1.1, 2.0)) for s in (0.6, 0.8, 0.7)]
    lps_affine = np.diag([-0.9, -0.95, 1.0, 1.0])
    lps = [(lps_affine, shape, (0.9, 0.95, 1.0))]
    # stored y, x, z (codes "ARS"): its axes 1 and 0 are the RAS axes 0 and 1
    ars_affine = np.array([[0, 0.5, 0, 0], [0.4, 0, 0, 0], [0, 0, 3.0, 0], [0, 0, 0, 1.0]])
    ars = [(ars_affine, shape, (0.4, 0.5, 3.0))]
    geometry = infer_training_geometry(ras + lps + ars)
    assert geometry.orientation == "RAS"
    # axis 0: 0.6, 0.8, 0.7, 0.9, 0.5 ; axis 1: 0.66, 0.88, 0.77, 0.95, 0.4
    assert geometry.pixel_spacing == pytest.approx((0.7, 0.77))
    assert infer_training_geometry(lps * 3 + ras).orientation == "LPS"
    with pytest.raises(ValueError, match="no training volumes"):
        infer_training_geometry([])


def test_geometry_validation():
    assert Geometry("lps", [1, 2.5]) == Geometry("LPS", (1.0, 2.5))
    for bad in ("RAX", "RRS", "RA", "RASP", 7, "LPR"):
        with pytest.raises(ConfigError, match="orientation"):
            Geometry(bad)
    for bad in (
        (0.0, 1.0),
        (1.0, -2.0),
        (float("nan"), 1.0),
        (1.0,),
        "11",
        (True, 1.0),
        (1.0, float("inf")),
    ):
        with pytest.raises(ConfigError, match="pixel_spacing"):
            Geometry("RAS", bad)


def test_geometry_json_round_trip():
    for geometry in (Geometry("LPS", (0.8, 0.75)), Geometry("RAS")):
        assert Geometry.from_dict(json.loads(json.dumps(geometry.to_dict()))) == geometry
    with pytest.raises(ConfigError, match="missing pixel_spacing"):
        Geometry.from_dict({"orientation": "RAS"})
    with pytest.raises(ConfigError, match="unknown"):
        Geometry.from_dict({"orientation": "RAS", "pixel_spacing": None, "zoom": 2})
    with pytest.raises(ConfigError, match="mapping"):
        Geometry.from_dict(["RAS", None])
    with pytest.raises(ConfigError, match="pixel_spacing"):
        Geometry.from_dict({"orientation": "RAS", "pixel_spacing": [1.0, -1.0]})
