"""Connected-component clean-up (liverseg.postprocess.components)."""

import numpy as np
import pytest

from liverseg.postprocess import components


def _mask():
    m = np.zeros((12, 12, 6), bool)
    m[1:6, 1:6, 1:4] = True  # 75 voxels
    m[8:10, 8:10, 2:4] = True  # 8 voxels
    m[11, 0, 0] = True  # 1 voxel
    m[8, 1, 1] = m[9, 2, 1] = True  # diagonal neighbours: two components (6-connectivity)
    return m


def test_largest_component_keeps_the_biggest_only():
    m = _mask()
    out = components.largest_component(m)
    expected = np.zeros_like(m)
    expected[1:6, 1:6, 1:4] = True
    np.testing.assert_array_equal(out, expected)
    assert not components.largest_component(np.zeros((4, 4, 4), bool)).any()
    single = np.zeros((5, 5, 5), bool)
    single[2, 2, 2] = True
    np.testing.assert_array_equal(components.largest_component(single), single)


@pytest.mark.parametrize("min_voxels,kept", [(0, 86), (1, 86), (2, 83), (8, 83), (9, 75), (76, 0)])
def test_remove_small_components(min_voxels, kept):
    out = components.remove_small_components(_mask(), min_voxels)
    assert int(out.sum()) == kept
    assert not (out & ~_mask()).any()


def test_min_voxels_for_anisotropic_spacing():
    assert components.min_voxels_for(30.0, (0.5, 2.0, 3.0)) == pytest.approx(10.0)
