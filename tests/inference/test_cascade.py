"""The cascade on a synthetic volume with networks of known output.

The fake liver net calls liver everything brighter than background (liver
and tumour), the fake tumour net everything darker than liver (tumour and
background), both with probabilities at 0 or 1 except a soft speck (liver
probability 0.6) far from the liver. So the expected label maps are known
exactly for every combination of post-processing switches.
"""

import numpy as np
import pytest

from liverseg.data.nifti import NiftiVolume
from liverseg.errors import ConfigError, NiftiError
from liverseg.inference import CrfScope, Segmenter, SegmentOptions
from liverseg.postprocess.choice import PostprocessChoice
from tests.inference import helpers
from tests.inference.helpers import LIVER_BOX, SHAPE, SPECK, TUMOUR_BOX


def box_minus_edges(box):
    """A box opened by the 6-neighbour cross: the box without its 12 edges."""
    mask = np.zeros(SHAPE, bool)
    mask[box] = True
    on_face = sum(
        ((idx == sl.start) | (idx == sl.stop - 1)).astype(int)
        for idx, sl in zip(np.indices(SHAPE), box)
    )
    return mask & (on_face < 2)


def labels_from(liver, tumour):
    labels = liver.astype(np.uint8)
    labels[tumour & liver] = 2
    return labels


@pytest.fixture(scope="module")
def fake_nets():
    return helpers.fake_liver_model(), helpers.fake_tumor_model()


def segment(fake_nets, volume=None, **options):
    # These tests pin the original CRF's kernel widths in voxels on a 32x32 volume.
    options.setdefault("crf_spatial_scale", "voxels")
    liver, tumour = fake_nets
    if volume is None:
        volume = helpers.synthetic_volume(speck=True)
    return Segmenter(liver, tumour, helpers.options(batch_size=4, **options)).segment(volume)


def test_default_cascade_crf_then_opening(fake_nets):
    result = segment(fake_nets)
    expected = labels_from(box_minus_edges(LIVER_BOX), box_minus_edges(TUMOUR_BOX))
    np.testing.assert_array_equal(result.labels, expected)
    assert result.labels.dtype == np.uint8 and result.labels.shape == SHAPE
    # the soft speck is liver (p = 0.6 > 0.5), so it widens the ROI box
    assert result.roi.to_list() == [6, 28, 3, 24]
    np.testing.assert_array_equal(result.roi_slices, np.arange(1, 7))
    assert set(result.timings) == {
        "liver_net",
        "roi",
        "tumor_net",
        "crf",
        "opening",
        "labels",
        "total",
    }


def test_crf_without_opening_removes_only_the_soft_speck(fake_nets):
    result = segment(fake_nets, opening=False)
    np.testing.assert_array_equal(result.labels, helpers.expected_labels())


def test_no_crf_no_opening_is_the_thresholded_cascade(fake_nets):
    result = segment(fake_nets, crf=False, opening=False)
    expected = helpers.expected_labels()
    # the speck lies on the box's last row, which the original crop drops: liver, no tumour
    expected[SPECK] = 1
    np.testing.assert_array_equal(result.labels, expected)


def test_paper_crop_keeps_the_last_row(fake_nets):
    result = segment(fake_nets, crf=False, opening=False, crop_variant="paper")
    expected = helpers.expected_labels()
    expected[SPECK] = 2  # now inside the crop: dark, inside the liver mask
    np.testing.assert_array_equal(result.labels, expected)
    assert result.tumor_region[:2] == (slice(6, 29), slice(3, 25))


def test_opening_without_crf_removes_speck_and_edges(fake_nets):
    result = segment(fake_nets, crf=False)
    expected = labels_from(box_minus_edges(LIVER_BOX), box_minus_edges(TUMOUR_BOX))
    np.testing.assert_array_equal(result.labels, expected)


def test_opening_targets_choose_which_structures_are_opened(fake_nets):
    liver_box = np.zeros(SHAPE, bool)
    liver_box[LIVER_BOX] = True
    tumour_box = np.zeros(SHAPE, bool)
    tumour_box[TUMOUR_BOX] = True
    expected = {
        ("liver",): (box_minus_edges(LIVER_BOX), tumour_box),
        ("tumor",): (liver_box, box_minus_edges(TUMOUR_BOX)),
        (): (liver_box, tumour_box),
    }
    for targets, (liver, tumour) in expected.items():
        result = segment(fake_nets, opening_targets=targets)
        np.testing.assert_array_equal(
            result.labels, labels_from(liver, tumour), err_msg=str(targets)
        )
    assert not helpers.options(opening=False).opening_for("tumor")
    with pytest.raises(ConfigError, match="opening_targets: unknown structure"):
        PostprocessChoice(opening_targets=("spleen",))


def test_crf_on_whole_volume_agrees_here(fake_nets):
    np.testing.assert_array_equal(
        segment(fake_nets, crf_on="volume").labels, segment(fake_nets).labels
    )


def test_crf_on_raw_hu_keeps_the_speck(fake_nets):
    # Raw HU min-max scaled over (-1000, 250): the speck is 9.5 bilateral widths away from
    # the background around it, so only its own message reaches it and it stays liver
    # (in the window image it is 2.5 widths away and the background pulls it over).
    expected = helpers.expected_labels()
    expected[SPECK] = 1
    np.testing.assert_array_equal(
        segment(fake_nets, crf_image="hu", opening=False).labels, expected
    )


def test_crf_targets_choose_which_structures_the_crf_refines(fake_nets):
    # A soft tumour voxel (probability 0.6) inside the liver: the tumour CRF removes it,
    # thresholding keeps it. The soft liver speck: the liver CRF removes it.
    soft = (8, 9, 3)
    hu = helpers.synthetic_volume(speck=True)
    hu[soft] = 129.6 / 0.6375 - 150.0
    expected = {
        ("liver", "tumor"): {},
        ("liver",): {soft: 2},
        ("tumor",): {SPECK: 1},
        (): {soft: 2, SPECK: 1},
    }
    for targets, changes in expected.items():
        result = segment(fake_nets, volume=hu, opening=False, crf_targets=targets)
        assert result.tumor_probability[soft] == pytest.approx(0.6, abs=0.01)
        labels = helpers.expected_labels()
        for voxel, label in changes.items():
            labels[voxel] = label
        np.testing.assert_array_equal(result.labels, labels, err_msg=str(targets))
    np.testing.assert_array_equal(
        segment(fake_nets, volume=hu, opening=False, crf=False).labels,
        segment(fake_nets, volume=hu, opening=False, crf_targets=()).labels,
    )


def test_crf_targets_are_checked():
    assert PostprocessChoice(crf_targets=["tumor", "liver", "tumor"]).crf_targets == (
        "tumor",
        "liver",
    )
    assert SegmentOptions().postprocess.crf_targets == ("liver", "tumor")
    assert not SegmentOptions().with_choice(crf_targets=()).crf_for("liver")
    with pytest.raises(ConfigError, match="unknown structure.*'lesion'"):
        PostprocessChoice(crf_targets=("liver", "lesion"))
    with pytest.raises(ConfigError, match="tuple of names"):
        PostprocessChoice(crf_targets="liver")


def test_without_liver_mask_dark_background_in_the_roi_is_tumour(fake_nets):
    result = segment(fake_nets, liver_mask=False, crf=False, opening=False)
    rows, cols, zs = result.tumor_region
    inside = np.zeros(SHAPE, bool)
    inside[rows, cols, 1:7] = True
    liver = np.zeros(SHAPE, bool)
    liver[LIVER_BOX] = True
    liver[SPECK] = True
    expected = liver.astype(np.uint8)
    expected[inside & (helpers.synthetic_volume(speck=True) < helpers.LIVER_HU)] = 2
    np.testing.assert_array_equal(result.labels, expected)
    assert np.count_nonzero((result.labels == 2) & ~liver) > 0


def test_tumour_probability_is_zero_outside_the_liver_mask(fake_nets):
    result = segment(fake_nets, crf=False, opening=False)
    tumour = result.tumor_probability
    assert tumour.shape == SHAPE and tumour.dtype == np.float32
    liver_mask = result.liver_probability > 0.5
    assert np.all(tumour[~liver_mask] == 0)
    assert np.all(tumour[TUMOUR_BOX] > 0.999)
    unmasked = segment(fake_nets, liver_mask=False, crf=False, opening=False).tumor_probability
    assert np.count_nonzero(unmasked[~liver_mask] > 0.5) > 0


def test_liver_only_without_tumour_model(fake_nets):
    liver, _ = fake_nets
    result = Segmenter(
        liver, None, helpers.options(opening=False, crf_spatial_scale="voxels")
    ).segment(helpers.synthetic_volume(speck=True))
    expected = (helpers.expected_labels() > 0).astype(np.uint8)
    np.testing.assert_array_equal(result.labels, expected)
    assert result.tumor_probability is None


def test_no_liver_means_no_tumour_net_call(fake_nets):
    liver, tumour = fake_nets
    segmenter = Segmenter(liver, tumour)
    result = segmenter.segment(np.full(SHAPE, -1000.0, np.float32))
    assert not result.labels.any() and result.roi is None and result.roi_slices.size == 0
    assert segmenter.tumor.trace_count == 0
    assert not result.tumor_probability.any()


def test_given_liver_probability_replaces_the_liver_net(fake_nets):
    liver, tumour = fake_nets
    segmenter = Segmenter(liver, tumour, helpers.options(crf=False, opening=False))
    prob = np.zeros(SHAPE, np.float32)
    prob[LIVER_BOX] = 1.0
    result = segmenter.segment(helpers.synthetic_volume(speck=True), liver_probability=prob)
    np.testing.assert_array_equal(result.labels, helpers.expected_labels())
    assert segmenter.liver.trace_count == 0


def test_slice_fusion_and_shifts_reach_both_networks(monkeypatch):
    """The liver probability is the mean-fused one; both nets see fusion and shifts."""
    from liverseg.inference import cascade, predictor

    liver = helpers.linear_model(0.01, (-1.0, 0.0, 1.0))
    tumour = helpers.linear_model(0.01, (1.0, 0.0, -1.0), name="linear_tumour_net")
    seen = []
    real = predictor.predict_slices

    def spy(*args, **kwargs):
        seen.append((kwargs["fusion"], kwargs["shifts"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(cascade, "predict_slices", spy)
    volume = helpers.synthetic_volume()
    options = helpers.options(
        batch_size=4, slice_fusion="mean", crf=False, opening=False, tta_shifts=[(1, 1), [1, 1]]
    )
    assert options.tta_shifts == ((1, 1),)
    result = Segmenter(liver, tumour, options).segment(volume)
    assert seen == [("mean", ((1, 1),))] * 2
    seen.clear()
    options = options.with_choice(tta_shifts=())
    result = Segmenter(liver, tumour, options).segment(volume)
    assert seen == [("mean", ())] * 2
    expected = real(
        predictor.StackPredictor(liver, predictor.PredictorOptions(4)),
        volume,
        cascade.pp.intensity_range(volume),
        fusion="mean",
    )
    np.testing.assert_allclose(result.liver_probability, expected, rtol=1e-6)
    middle = Segmenter(liver, tumour, helpers.options(batch_size=4, crf=False, opening=False))
    assert not np.allclose(middle.segment(volume).liver_probability, expected)


def test_probabilities_can_be_dropped(fake_nets):
    result = segment(fake_nets, keep_probabilities=False)
    assert result.liver_probability is None and result.tumor_probability is None
    assert result.labels.any()


def test_small_box_is_grown_to_the_network_minimum(fake_nets):
    hu = np.full((40, 40, 5), -1000.0, np.float32)
    hu[10:16, 20:24, 1:4] = helpers.LIVER_HU
    hu[12, 21, 2] = helpers.BRIGHT_HU
    result = segment(fake_nets, volume=hu, crf=False, opening=False)
    rows, cols, _ = result.tumor_region
    assert rows.stop - rows.start == 16 and cols.stop - cols.start == 16
    assert rows.start <= 10 and rows.stop >= 15 and cols.start <= 20 and cols.stop >= 23
    assert np.count_nonzero(result.labels == 1) == 6 * 4 * 3


def test_volume_checks_name_the_file(fake_nets):
    liver, tumour = fake_nets
    segmenter = Segmenter(liver, tumour)
    ref = NiftiVolume(
        np.zeros((32, 32, 2), np.int16), np.eye(4), None, (1.0, 1.0, 1.0), "/data/thin.nii.gz"
    )
    with pytest.raises(NiftiError, match=r"^/data/thin.nii.gz: volume has 2 slice\(s\)"):
        segmenter.segment(ref)
    with pytest.raises(NiftiError, match="at least 16x16"):
        segmenter.segment(np.zeros((8, 32, 5), np.int16))


def test_options_are_checked():
    with pytest.raises(ConfigError):
        SegmentOptions(crf_on="everywhere")
    with pytest.raises(ConfigError):
        SegmentOptions(crop_variant="tight")
    with pytest.raises(ConfigError):
        SegmentOptions(crf_margin=-1)
    with pytest.raises(ConfigError, match="slice_fusion"):
        PostprocessChoice(slice_fusion="median")
    assert SegmentOptions(crf_on=CrfScope.VOLUME).crf_on == "volume"
    assert SegmentOptions().batch_size == "auto"
    assert SegmentOptions(batch_pixels=1000).predictor_options().batch_size_for(20, 24) == 2
    for bad in ({"batch_size": 0}, {"batch_size": "max"}, {"batch_pixels": 0}):
        with pytest.raises(ConfigError, match="batch_"):
            SegmentOptions(**bad)


def test_swapped_models_are_refused():
    liver, tumour = helpers.real_models()
    with pytest.raises(ConfigError, match="swapped"):
        Segmenter(tumour, liver)


def test_real_networks_trace_once_over_volumes_of_different_sizes():
    liver, tumour = helpers.real_models()
    segmenter = Segmenter(liver, tumour, helpers.options(batch_size=2, crf=False))
    rng = np.random.default_rng(3)
    for shape in ((32, 32, 4), (40, 48, 5)):
        hu = rng.normal(60, 40, shape).astype(np.int16)
        result = segmenter.segment(hu)
        assert result.labels.shape == shape and set(np.unique(result.labels)) <= {0, 1, 2}
    assert segmenter.liver.trace_count == 1
    assert segmenter.tumor.trace_count == 1


def test_crf_max_voxels_runs_the_crf_in_slabs(fake_nets, monkeypatch):
    from liverseg.postprocess import crf as crf_lib

    sizes = []
    real = crf_lib._dense_crf
    monkeypatch.setattr(crf_lib, "_dense_crf", lambda p, *a: (sizes.append(p.size), real(p, *a))[1])
    default = segment(fake_nets, crf_max_voxels=0)
    assert SegmentOptions().crf_max_voxels == crf_lib.DEFAULT_MAX_VOXELS
    one_piece = list(sizes)
    assert len(one_piece) == 2  # liver box, tumour box
    sizes.clear()
    assert one_piece == [32 * 32 * 8, 26 * 26 * 8]  # boxes with the 10-voxel margin
    budget = 32 * 32 * 4  # liver: 4-slice slabs with overlap 1; tumour: 6-slice slabs
    slabbed = segment(fake_nets, crf_max_voxels=budget)
    assert len(sizes) > 2 and max(sizes) <= budget
    # saturated probabilities: slabs change nothing here
    np.testing.assert_array_equal(slabbed.labels, default.labels)
    np.testing.assert_array_equal(segment(fake_nets).labels, default.labels)
    with pytest.raises(ConfigError, match="crf_max_voxels"):
        SegmentOptions(crf_max_voxels=-1)


def test_crf_kernel_widths_scale_with_in_plane_size(fake_nets, monkeypatch):
    from liverseg.postprocess import crf as crf_lib

    seen = []
    real = crf_lib.dense_crf_3d

    def spy(prob, image, params, **kw):
        seen.append(params)
        return real(prob, image, params, **kw)

    monkeypatch.setattr(crf_lib, "dense_crf_3d", spy)
    segment(fake_nets, crf_spatial_scale="reference")
    factor = 32 / 512
    assert seen and all(p.bilateral_std == (60 * factor,) * 3 for p in seen)
    assert all(p.gaussian_std == (3 * factor,) * 3 for p in seen)
    assert all(p.bilateral_intensity_std == 20.0 and p.bilateral_weight == 10.0 for p in seen)
    seen.clear()
    segment(fake_nets, crf_spatial_scale="voxels")
    assert seen and all(p.bilateral_std == (60.0,) * 3 for p in seen)
    assert crf_lib.CrfParams().spatially_scaled(1.0) == crf_lib.CrfParams()
