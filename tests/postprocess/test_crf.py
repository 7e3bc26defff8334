"""3D dense CRF: features in 3D, cleaning, array handling, ROI variant."""

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from liverseg.errors import ConfigError
from liverseg.postprocess import crf as crf_lib
from liverseg.postprocess.crf import (
    CrfParams,
    crf_roi,
    default_overlap,
    dense_crf_3d,
    dense_crf_3d_roi,
    pairwise_features,
    scale_intensity,
    unary_energy,
    z_slabs,
)

SHAPE = (32, 30, 24)


def sphere(shape=SHAPE, radius=9.0):
    grid = np.indices(shape) - (np.asarray(shape) / 2 - 0.5)[:, None, None, None]
    return (grid**2).sum(0) <= radius**2


def ct_like(mask, rng, inside=150.0, outside=50.0, noise=10.0):
    return np.where(mask, inside, outside) + rng.normal(0, noise, mask.shape)


def test_default_params_are_the_originals():
    p = CrfParams()
    assert p.gaussian_std == (3.0, 3.0, 3.0) and p.gaussian_weight == 3.0
    assert p.bilateral_std == (60.0, 60.0, 60.0) and p.bilateral_intensity_std == 20.0
    assert p.bilateral_weight == 10.0 and p.iterations == 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.iterations = 5
    with pytest.raises(ConfigError):
        CrfParams(iterations=-1)
    with pytest.raises(ConfigError):
        CrfParams(gaussian_std=(3.0, 3.0))


def test_features_are_3d_coordinates_and_scaled_intensity():
    image = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    gaussian, bilateral = pairwise_features(image)
    assert gaussian.shape == (3, 120) and bilateral.shape == (4, 120)
    for f in (gaussian, bilateral):
        assert f.dtype == np.float32 and f.flags["C_CONTIGUOUS"]
    flat = np.ravel_multi_index((2, 3, 4), image.shape)
    np.testing.assert_allclose(gaussian[:, flat], [2 / 3, 3 / 3, 4 / 3], rtol=1e-6)
    intensity = image[2, 3, 4] / 119 * 255
    np.testing.assert_allclose(
        bilateral[:, flat], [2 / 60, 3 / 60, 4 / 60, intensity / 20], rtol=1e-6
    )


def test_unary_and_intensity_scaling():
    u = unary_energy(np.array([0.0, 0.25, 1.0]), 1e-8)
    assert u.dtype == np.float32 and u.shape == (2, 3) and u.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(u[:, 1], [-np.log(0.75), -np.log(0.25)], rtol=1e-6)
    np.testing.assert_allclose(u[:, 0], [0.0, -np.log(1e-8)], atol=1e-6, rtol=1e-6)
    assert np.isfinite(u).all()
    s = scale_intensity(np.array([[[-100.0, 0.0, 300.0]]]))
    np.testing.assert_allclose(s, [[[0.0, 255 / 4, 255.0]]], rtol=1e-6)
    np.testing.assert_allclose(scale_intensity(np.array([[[5.0]]]), (0, 10)), [[[127.5]]])
    assert not scale_intensity(np.full((2, 2, 2), 7.0)).any()


def test_cleans_noisy_sphere():
    rng = np.random.default_rng(0)
    truth = sphere()
    prob = np.clip(np.where(truth, 0.7, 0.3) + rng.normal(0, 0.25, SHAPE), 0, 1)
    out = dense_crf_3d(prob, ct_like(truth, rng))
    assert out.dtype == np.uint8 and out.shape == SHAPE and set(np.unique(out)) <= {0, 1}
    before = np.count_nonzero((prob > 0.5) != truth)
    after = np.count_nonzero(out.astype(bool) != truth)
    assert before > 4000 and after < before / 50


def test_uses_neighbours_along_the_third_axis():
    # One slice of the map is wrong everywhere (p 0.45 inside, 0.55 outside);
    # only neighbours along axis 2 can fix it, so this fails for a 2D CRF.
    rng = np.random.default_rng(1)
    truth = sphere()
    prob = np.where(truth, 0.95, 0.05)
    prob[:, :, 12] = np.where(truth[:, :, 12], 0.45, 0.55)
    out = dense_crf_3d(prob, ct_like(truth, rng))
    assert np.count_nonzero((prob > 0.5) != truth) == SHAPE[0] * SHAPE[1]
    np.testing.assert_array_equal(out.astype(bool), truth)


def test_certain_labels_are_kept():
    rng = np.random.default_rng(2)
    truth = sphere()
    out = dense_crf_3d(truth.astype(np.float32), rng.uniform(0, 255, SHAPE))
    np.testing.assert_array_equal(out, truth)


def test_layout_and_dtype_do_not_matter():
    rng = np.random.default_rng(3)
    truth = sphere()
    prob = np.clip(np.where(truth, 0.7, 0.3) + rng.normal(0, 0.25, SHAPE), 0, 1)
    image = ct_like(truth, rng).astype(np.int16)
    expected = dense_crf_3d(prob.astype(np.float32), image)
    fortran = dense_crf_3d(np.asfortranarray(prob), np.asfortranarray(image.astype(np.float64)))
    np.testing.assert_array_equal(fortran, expected)
    flipped = dense_crf_3d(prob[:, ::-1], image[:, ::-1])  # negative strides
    np.testing.assert_array_equal(flipped[:, ::-1], expected)


def test_input_errors():
    with pytest.raises(ValueError, match="same shape"):
        dense_crf_3d(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        dense_crf_3d(np.full((4, 4, 4), 1.5), np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        dense_crf_3d(np.zeros((4, 4, 4)), np.full((4, 4, 4), np.nan))


def test_roi_box_and_empty_roi():
    prob = np.zeros((20, 20, 10))
    prob[5:8, 6:9, 2:4] = 0.9
    assert crf_roi(prob, margin=2) == (slice(3, 10), slice(4, 11), slice(0, 6))
    assert crf_roi(prob, margin=(0, 1, 2)) == (slice(5, 8), slice(5, 10), slice(0, 6))
    assert crf_roi(np.full((4, 4, 4), 0.5)) is None
    assert not dense_crf_3d_roi(np.full((4, 4, 4), 0.4), np.zeros((4, 4, 4))).any()


def blob_scene(inside, outside, seed=1):
    """An ellipsoid in a 64x64x32 volume: confident inside, noisy near the
    boundary, low probability far away; CT-like image with given contrast."""
    rng = np.random.default_rng(seed)
    g = np.indices((64, 64, 32)).astype(float)
    truth = ((g[0] - 28) / 14) ** 2 + ((g[1] - 34) / 16) ** 2 + ((g[2] - 16) / 8) ** 2 <= 1
    near = np.exp(-ndimage.distance_transform_edt(~truth) / 4)
    prob = np.clip(np.where(truth, 0.8, 0.2 * near) + rng.normal(0, 0.2, truth.shape) * near, 0, 1)
    image = ct_like(truth, rng, inside, outside)
    image[:3], image[-3:] = 0.0, 255.0
    return truth, prob.astype(np.float32), image


def test_roi_crf_matches_whole_volume_when_the_image_separates_the_structure():
    truth, prob, image = blob_scene(150.0, 50.0)
    whole = dense_crf_3d(prob, image)
    roi = dense_crf_3d_roi(prob, image, margin=10)
    assert np.count_nonzero(whole != truth) <= 2
    assert np.count_nonzero(roi != whole) <= 2


def test_roi_crf_keeps_more_foreground_when_contrast_is_low():
    # Documented difference: outside the box the whole-volume CRF has a large
    # background mass that pulls, through the 60-voxel bilateral kernel, on
    # the structure; the ROI CRF does not see it and keeps more foreground.
    # The gap closes as the margin grows.
    _, prob, image = blob_scene(120.0, 60.0)
    whole = dense_crf_3d(prob, image).astype(bool)
    gaps = []
    for margin in (0, 10, 20):
        roi = dense_crf_3d_roi(prob, image, margin=margin).astype(bool)
        assert not (whole & ~roi).any()
        gaps.append(np.count_nonzero(roi & ~whole))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[0] > 1000


# ---------------------------------------------------------------------------
# Memory bound: z slabs


def noisy_sphere(seed=0):
    rng = np.random.default_rng(seed)
    truth = sphere()
    prob = np.clip(np.where(truth, 0.7, 0.3) + rng.normal(0, 0.25, SHAPE), 0, 1)
    return truth, prob, ct_like(truth, rng)


def test_unslabbed_crf_is_the_plain_pydensecrf_recipe():
    # the recipe as written before the slab option: both feature arrays, then inference
    import pydensecrf.densecrf as dcrf

    _, prob, image = noisy_sphere()
    crf = dcrf.DenseCRF(prob.size, 2)
    crf.setUnaryEnergy(unary_energy(prob, 1e-8))
    gaussian, bilateral = pairwise_features(image)
    crf.addPairwiseEnergy(
        gaussian, compat=3.0, kernel=dcrf.CONST_KERNEL, normalization=dcrf.NORMALIZE_AFTER
    )
    crf.addPairwiseEnergy(
        bilateral, compat=10.0, kernel=dcrf.CONST_KERNEL, normalization=dcrf.NORMALIZE_AFTER
    )
    q = np.asarray(crf.inference(10))
    expected = (q[1] > q[0]).reshape(SHAPE).astype(np.uint8)
    np.testing.assert_array_equal(dense_crf_3d(prob, image), expected)
    # at or below the budget the slab option changes nothing
    np.testing.assert_array_equal(dense_crf_3d(prob, image, max_voxels=prob.size), expected)
    np.testing.assert_array_equal(dense_crf_3d(prob, image, max_voxels=None, overlap=0), expected)


@pytest.mark.parametrize(
    "shape,max_voxels,overlap",
    [
        ((10, 10, 50), 1000, 2),
        ((10, 10, 50), 1000, 9),
        ((7, 9, 31), 700, 3),
        ((10, 10, 50), 5000, 9),
        ((8, 8, 100), 64 * 33, 9),
    ],
)
def test_slabs_tile_the_axis_within_the_budget(shape, max_voxels, overlap):
    slabs = z_slabs(shape, max_voxels, overlap)
    plane = shape[0] * shape[1]
    covered = []
    for slab, core in slabs:
        assert (slab.stop - slab.start) * plane <= max_voxels
        covered.extend(range(slab.start + core.start, slab.start + core.stop))
        # overlap on both sides of the core unless at the array's ends (capped at depth / 4)
        used = min(overlap, (max_voxels // plane) // 4)
        assert core.start == min(used, slab.start + core.start)
        assert slab.stop - slab.start - core.stop == min(used, shape[2] - slab.start - core.stop)
    assert covered == list(range(shape[2]))
    lengths = [core.stop - core.start for _, core in slabs]
    assert max(lengths) - min(lengths) <= 1


def test_slab_plan_edge_cases():
    assert z_slabs((10, 10, 50), 5000, 9) == [(slice(0, 50), slice(0, 50))]
    # a slice over the budget: one slice per slab, no overlap
    assert z_slabs((10, 10, 3), 50, 4) == [(slice(k, k + 1), slice(0, 1)) for k in range(3)]
    assert default_overlap() == 9
    assert default_overlap(CrfParams().spatially_scaled(0.25)) == 3
    assert default_overlap(CrfParams().spatially_scaled(0.05)) == 2
    with pytest.raises(ValueError):
        z_slabs((4, 4, 4), 0, 1)


def test_slabs_without_iterations_are_exact_and_scaled_like_the_whole(monkeypatch):
    # With 0 iterations the CRF is the unary argmax: slabbing must not change a voxel.
    # Every slab CRF gets at most max_voxels voxels and the whole image's range.
    _, prob, image = noisy_sphere()
    params = CrfParams(iterations=0)
    calls = []
    real = crf_lib._dense_crf

    def spy(p, im, prm, rng):
        calls.append((p.size, rng))
        return real(p, im, prm, rng)

    monkeypatch.setattr(crf_lib, "_dense_crf", spy)
    budget = SHAPE[0] * SHAPE[1] * 8
    out = dense_crf_3d(prob, image, params, max_voxels=budget)
    np.testing.assert_array_equal(out, (prob > 0.5).astype(np.uint8))
    whole = (float(np.float32(image.min())), float(np.float32(image.max())))
    assert len(calls) == len(z_slabs(SHAPE, budget, default_overlap())) > 1
    assert all(size <= budget and rng == whole for size, rng in calls)


def test_slabbed_crf_agrees_with_the_unslabbed_one_here():
    # High contrast, small structure: slabs of 8 and 12 slices give the same labels
    # (on a LiTS-size ROI they differ slightly: docs/BENCHMARKS.md).
    truth, prob, image = noisy_sphere()
    expected = dense_crf_3d(prob, image)
    for slices in (8, 12):
        np.testing.assert_array_equal(
            dense_crf_3d(prob, image, max_voxels=SHAPE[0] * SHAPE[1] * slices), expected
        )
    truth, prob, image = blob_scene(150.0, 50.0)
    roi = dense_crf_3d_roi(prob, image, margin=10)
    slabbed = dense_crf_3d_roi(prob, image, margin=10, max_voxels=64 * 64 * 8)
    assert np.count_nonzero(slabbed != roi) <= 2 and np.count_nonzero(slabbed != truth) <= 2


def test_slabs_keep_the_third_axis_neighbours():
    # the wrong slice of test_uses_neighbours_along_the_third_axis, inside 8-slice slabs
    # whose cuts fall beside it (slab cores 2..6, 6..10, 10..14, ...: slice 12 is near one)
    rng = np.random.default_rng(1)
    truth = sphere()
    prob = np.where(truth, 0.95, 0.05)
    prob[:, :, 12] = np.where(truth[:, :, 12], 0.45, 0.55)
    out = dense_crf_3d(prob, ct_like(truth, rng), max_voxels=SHAPE[0] * SHAPE[1] * 8)
    np.testing.assert_array_equal(out.astype(bool), truth)


def test_image_can_be_given_slab_by_slab():
    _, prob, image = noisy_sphere()
    rng = (float(image.min()), float(image.max()))
    asked = []

    def image_of(zs):
        asked.append((zs.start, zs.stop))
        return image[:, :, zs]

    np.testing.assert_array_equal(
        dense_crf_3d(prob, image_of, intensity_range=rng), dense_crf_3d(prob, image)
    )
    assert asked == [(0, SHAPE[2])]
    budget = SHAPE[0] * SHAPE[1] * 8
    asked.clear()
    np.testing.assert_array_equal(
        dense_crf_3d(prob, image_of, intensity_range=rng, max_voxels=budget),
        dense_crf_3d(prob, image, max_voxels=budget),
    )
    assert asked == [(s.start, s.stop) for s, _ in z_slabs(SHAPE, budget, default_overlap())]
    with pytest.raises(ValueError, match="intensity_range"):
        dense_crf_3d(prob, image_of)
    with pytest.raises(ValueError, match="same shape"):
        dense_crf_3d(prob, lambda zs: image[:, :, zs][:-1], intensity_range=rng)
