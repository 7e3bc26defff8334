"""Clinical statistics on phantoms of known lesion sizes, in any storage order and spacing."""

import numpy as np
import pytest

from liverseg.evaluation.aggregate import burden_scores
from liverseg.evaluation.metrics import case_metrics
from liverseg.evaluation.statistics import axial_axis, case_statistics

SPACING = np.array([0.6, 0.8, 1.5])  # mm along the stored axes
SHAPE = (120, 100, 48)
#: (centre in voxels, radius in mm) of three spherical lesions inside a spherical liver
LESIONS = [((60, 50, 24), 10.0), ((40, 40, 14), 5.0), ((84, 64, 30), 7.5)]


def _phantom():
    grid = np.indices(SHAPE).transpose(1, 2, 3, 0).astype(np.float64)

    def ball(centre, radius):
        return np.sqrt((((grid - centre) * SPACING) ** 2).sum(-1)) <= radius

    labels = np.zeros(SHAPE, np.uint8)
    labels[ball((60, 50, 24), 34.0)] = 1
    hu = np.where(labels == 1, 110.0, -50.0)
    for i, (centre, radius) in enumerate(LESIONS):
        labels[ball(centre, radius)] = 2
        hu[ball(centre, radius)] = 30.0 + 10 * i
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = [-100.0, 50.0, 200.0]
    return labels, hu, affine


def _stored(labels, hu, affine, perm, flips):
    """The same scan stored with its axes permuted and flipped (affine adjusted)."""
    lab, h, aff = np.transpose(labels, perm), np.transpose(hu, perm), affine[:, list(perm) + [3]]
    for axis in flips:
        lab, h = np.flip(lab, axis), np.flip(h, axis)
        flip = np.eye(4)
        flip[axis, axis] = -1
        flip[axis, 3] = lab.shape[axis] - 1
        aff = aff @ flip
    return lab, h, aff


@pytest.mark.parametrize("perm, flips", [((0, 1, 2), ()), ((1, 0, 2), (0,)), ((2, 0, 1), (1, 2))])
def test_volumes_diameters_centroids_of_known_spheres(perm, flips):
    labels, hu, affine = _phantom()
    stored_labels, stored_hu, stored_affine = _stored(labels, hu, affine, perm, flips)
    stats = case_statistics("c", stored_labels, stored_affine, stored_hu)
    assert len(stats.lesions) == 3
    voxel = SPACING.max()
    by_size = sorted(LESIONS, key=lambda lesion: -lesion[1])
    for lesion, (centre, radius) in zip(stats.lesions, by_size):
        assert lesion.volume_ml == pytest.approx(4 / 3 * np.pi * radius**3 / 1000, rel=0.01)
        # voxel centres: at most one voxel short of the true diameter
        assert 2 * radius - voxel <= lesion.longest_diameter_mm <= 2 * radius
        assert 2 * radius - voxel <= lesion.perpendicular_diameter_mm <= 2 * radius
        expected = affine[:3, :3] @ np.array(centre, float) + affine[:3, 3]
        np.testing.assert_allclose(lesion.centroid_mm, expected, atol=1e-6)
        assert lesion.std_hu == 0.0
    assert {round(x.mean_hu) for x in stats.lesions} == {30, 40, 50}
    tumour_ml = sum(4 / 3 * np.pi * r**3 / 1000 for _, r in LESIONS)
    assert stats.tumor_volume_ml == pytest.approx(tumour_ml, rel=0.01)
    assert stats.liver_volume_ml == pytest.approx(4 / 3 * np.pi * 34.0**3 / 1000, rel=0.01)
    assert stats.tumor_burden == pytest.approx(stats.tumor_volume_ml / stats.liver_volume_ml)


def test_the_axial_plane_follows_the_affine():
    assert axial_axis(np.diag([1.0, 1.0, 2.5, 1.0])) == 2
    assert axial_axis(np.diag([1.0, 1.0, 2.5, 1.0])[:, [2, 0, 1, 3]]) == 0


def test_an_elongated_lesion_has_its_long_and_short_axes_in_plane():
    labels = np.zeros((60, 60, 5), np.uint8)
    labels[10:50, 25:35, 1:4] = 2  # 40 x 10 voxels of 1 x 2 mm: 39 mm by 18 mm between centres
    stats = case_statistics("e", labels, np.diag([1.0, 2.0, 3.0, 1.0]))
    (lesion,) = stats.lesions
    assert lesion.longest_diameter_mm == pytest.approx(np.hypot(39, 18))
    assert lesion.volume_ml == pytest.approx(40 * 10 * 3 * 6 / 1000)
    assert stats.liver_volume_ml == pytest.approx(lesion.volume_ml)
    assert stats.tumor_burden == 1.0


def test_no_tumour_and_no_liver():
    empty = case_statistics("n", np.zeros((8, 8, 4), np.uint8), np.eye(4))
    assert empty.lesions == () and empty.tumor_burden == 0.0 and empty.liver_volume_ml == 0.0
    assert empty.to_dict()["lesion_count"] == 0


def test_tumour_burden_score_of_the_evaluation():
    ref = np.zeros((20, 20, 5), np.uint8)
    ref[2:18, 2:18, :] = 1
    ref[5:9, 5:9, :] = 2  # burden 16 / 256
    pred = ref.copy()
    pred[5:9, 9:13, :] = 2  # burden 32 / 256
    spacing = (0.5, 0.5, 2.0)
    results = [case_metrics(pred, ref, spacing), case_metrics(ref, ref, spacing)]
    volumes = results[0]["volumes"]
    assert volumes["tumor_burden"] == 32 / 256 and volumes["reference_tumor_burden"] == 16 / 256
    assert volumes["liver_ml"] == volumes["reference_liver_ml"] == 256 * 5 * 0.5 / 1000
    assert volumes["liver_volume_error_ml"] == 0.0
    score = burden_scores(results)
    assert score["max_error"] == pytest.approx(16 / 256)
    assert score["rmse"] == pytest.approx(np.sqrt((16 / 256) ** 2 / 2))
    assert burden_scores([]) == {"rmse": None, "max_error": None}
