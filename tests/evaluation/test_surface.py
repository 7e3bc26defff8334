"""Surface extraction and surface distances on shapes with hand-computed values."""

import math

import numpy as np
import pytest

from liverseg.evaluation.surface import (
    UNDEFINED_DISTANCE,
    bounding_box,
    directed_distances,
    surface,
    surface_distances,
)


def cube(shape, lo, hi):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return mask


def test_surface_of_cube_is_its_outer_shell():
    mask = cube((8, 8, 8), (2, 2, 2), (6, 6, 6))
    surf = surface(mask)
    assert surf.sum() == 4**3 - 2**3
    assert not surf[3:5, 3:5, 3:5].any()
    assert surf[2, 3, 3] and surf[5, 5, 5]


def test_surface_uses_18_neighbour_structure():
    # A one-voxel cavity: its 6 face and 12 edge neighbours become surface,
    # its 8 corner neighbours do not (they would with a 26-neighbour structure).
    mask = cube((9, 9, 9), (1, 1, 1), (8, 8, 8))
    mask[4, 4, 4] = False
    surf = surface(mask)
    assert surf.sum() == (7**3 - 5**3) + 18
    assert surf[3, 4, 4] and surf[3, 3, 4]
    assert not surf[3, 3, 3]


def test_mask_touching_array_border_has_surface_there():
    mask = np.ones((4, 5, 6), dtype=bool)
    surf = surface(mask)
    assert surf.sum() == 4 * 5 * 6 - 2 * 3 * 4
    assert surf[0].all() and surf[:, :, -1].all()


def test_bounding_box_margin_is_clipped():
    mask = cube((10, 10, 10), (0, 3, 8), (2, 5, 10))
    assert bounding_box(mask, margin=1) == (slice(0, 3), slice(2, 6), slice(7, 10))
    assert bounding_box(np.zeros((3, 3, 3), bool)) is None


def test_identical_masks_have_zero_distance():
    mask = np.zeros((20, 20, 12), dtype=bool)
    grid = np.indices(mask.shape) - np.array([10, 10, 6])[:, None, None, None]
    mask[(grid**2).sum(0) <= 25] = True
    d = surface_distances(mask, mask, (0.7, 0.7, 2.5))
    assert (d.assd, d.msd, d.rmsd) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("pred_empty,ref_empty", [(True, False), (False, True), (True, True)])
def test_empty_mask_gives_9001(pred_empty, ref_empty):
    full = cube((6, 6, 6), (1, 1, 1), (4, 4, 4))
    empty = np.zeros_like(full)
    d = surface_distances(empty if pred_empty else full, empty if ref_empty else full, (1, 1, 1))
    assert (d.assd, d.msd, d.rmsd) == (UNDEFINED_DISTANCE,) * 3 == (9001.0,) * 3


def test_cube_shifted_one_voxel_along_coarse_axis():
    # 4x4x4 cube, shifted by one voxel along z with spacing (1, 1, 2.5).
    # Each cube's 56 surface voxels: the 16 of the face left uncovered lie
    # 2.5 mm from the other surface; the 4 inner voxels of the opposite face
    # lie 1 mm (in-plane) from the other cube's ring; the other 36 lie on it.
    a = cube((8, 8, 8), (2, 2, 1), (6, 6, 5))
    b = cube((8, 8, 8), (2, 2, 2), (6, 6, 6))
    d = surface_distances(a, b, (1.0, 1.0, 2.5))
    assert d.assd == pytest.approx((2 * (16 * 2.5 + 4 * 1.0)) / 112, abs=1e-12)
    assert d.msd == 2.5
    assert d.rmsd == pytest.approx(math.sqrt(2 * (16 * 2.5**2 + 4 * 1.0) / 112), abs=1e-12)
    to_b, to_a = directed_distances(a, b, (1.0, 1.0, 2.5))
    assert sorted(to_b) == sorted(to_a)
    assert (
        len(to_b) == 56
        and np.count_nonzero(to_b == 2.5) == 16
        and np.count_nonzero(to_b == 1.0) == 4
    )


def test_spacing_follows_array_axes():
    # The same shift along axis 0 with the coarse spacing on axis 0 gives the
    # same numbers; with the coarse spacing on another axis it does not.
    a = cube((8, 8, 8), (1, 2, 2), (5, 6, 6))
    b = cube((8, 8, 8), (2, 2, 2), (6, 6, 6))
    d = surface_distances(a, b, (2.5, 1.0, 1.0))
    assert d.msd == 2.5
    assert d.assd == pytest.approx(88 / 112, abs=1e-12)
    assert surface_distances(a, b, (1.0, 1.0, 2.5)).msd == 1.0


def test_single_voxels_diagonal_offset():
    a = cube((5, 5, 5), (1, 1, 1), (2, 2, 2))
    b = cube((5, 5, 5), (2, 2, 2), (3, 3, 3))
    d = surface_distances(a, b, (0.5, 0.7, 2.5))
    expected = math.sqrt(0.5**2 + 0.7**2 + 2.5**2)
    assert d.assd == pytest.approx(expected, abs=1e-12)
    assert d.msd == pytest.approx(expected, abs=1e-12)
    assert d.rmsd == pytest.approx(expected, abs=1e-12)


def test_nested_cubes_isotropic():
    # 2x2x2 cube in the middle of a 6x6x6 cube: 8 inner voxels each 2 voxels
    # from the nearest outer face; outer shell voxels (152) from 2 to 2*sqrt(3).
    outer = cube((10, 10, 10), (2, 2, 2), (8, 8, 8))
    inner = cube((10, 10, 10), (4, 4, 4), (6, 6, 6))
    to_outer, to_inner = directed_distances(inner, outer, (2.0, 2.0, 2.0))
    assert np.all(to_outer == 4.0) and len(to_outer) == 8
    assert len(to_inner) == 6**3 - 4**3
    assert to_inner.min() == 4.0 and to_inner.max() == pytest.approx(4.0 * math.sqrt(3))


def test_rejects_bad_spacing_and_shapes():
    a = cube((4, 4, 4), (1, 1, 1), (3, 3, 3))
    with pytest.raises(ValueError, match="spacing"):
        surface_distances(a, a, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="shape"):
        surface_distances(a, a[:3], (1.0, 1.0, 1.0))


def test_ball_shifted_one_voxel_along_coarse_axis_has_msd_one_spacing():
    # Every surface voxel of A has its shifted copy on B's surface 2.5 mm
    # away, and A's lowest voxel has no B voxel at or below its slice, so
    # the maximum is exactly the z spacing in both directions.
    a = np.zeros((24, 24, 16), dtype=bool)
    grid = np.indices(a.shape) - np.array([12, 12, 7])[:, None, None, None]
    a[(grid**2).sum(0) <= 36] = True
    b = np.roll(a, 1, axis=2)
    to_b, to_a = directed_distances(a, b, (0.7, 0.7, 2.5))
    assert to_b.max() == to_a.max() == 2.5
    d = surface_distances(a, b, (0.7, 0.7, 2.5))
    assert d.msd == 2.5 and 0 < d.assd < d.rmsd < 2.5
