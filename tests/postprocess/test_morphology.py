"""Binary opening: default element, speck removal, bounding-box restriction."""

import numpy as np
import pytest
from scipy import ndimage

from liverseg.postprocess.morphology import DEFAULT_STRUCTURE, bounding_box, opening


def ball(shape, centre, radius):
    grid = np.indices(shape) - np.asarray(centre)[:, None, None, None]
    return (grid**2).sum(0) <= radius**2


def test_default_structure_is_6_neighbour_cross():
    assert DEFAULT_STRUCTURE.shape == (3, 3, 3) and DEFAULT_STRUCTURE.sum() == 7
    assert DEFAULT_STRUCTURE[1, 1, :].all() and not DEFAULT_STRUCTURE[0, 0, 1]


def test_removes_specks_and_keeps_ball():
    sphere = ball((40, 40, 30), (20, 20, 15), 8)
    noisy = sphere.copy()
    specks = [(2, 2, 2), (35, 5, 20), (5, 35, 3), (20, 20, 28)]
    for s in specks:
        noisy[s] = True
    noisy[30, 10, 10:12] = True  # a 2-voxel speck
    out = opening(noisy)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, sphere)


def test_cube_loses_edges_with_the_cross():
    cube = np.zeros((10, 10, 10), bool)
    cube[2:8, 2:8, 2:8] = True
    out = opening(cube)
    assert out.sum() == 6**3 - 12 * 4 - 8
    assert out[3:7, 3:7, 3:7].all() and not out[2, 2, 4]
    # a full 3x3x3 element keeps the cube
    np.testing.assert_array_equal(opening(cube, np.ones((3, 3, 3), bool)), cube)


@pytest.mark.parametrize("iterations", [1, 2])
def test_equals_whole_volume_opening(rng, iterations):
    mask = ndimage.gaussian_filter(rng.normal(size=(30, 26, 18)), 1.5) > 0.05
    mask[:, :, :3] = True  # touches the array border
    mask[:4] = False
    expected = ndimage.binary_opening(mask, DEFAULT_STRUCTURE, iterations=iterations)
    np.testing.assert_array_equal(opening(mask, iterations=iterations), expected)
    big = np.ones((5, 5, 5), bool)
    np.testing.assert_array_equal(opening(mask, big), ndimage.binary_opening(mask, big))


def test_empty_and_bad_input():
    assert not opening(np.zeros((4, 4, 4), np.uint8)).any()
    assert bounding_box(np.zeros((4, 4, 4), bool)) is None
    with pytest.raises(ValueError, match="3D"):
        opening(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="iterations"):
        opening(np.ones((4, 4, 4), bool), iterations=0)
