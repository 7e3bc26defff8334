"""Stored test-time choices (liverseg.postprocess.choice) and their use by the cascade."""

import dataclasses
import json

import numpy as np
import pytest

from liverseg.data import preprocess as pp
from liverseg.errors import ConfigError
from liverseg.inference import Segmenter, SegmentOptions
from liverseg.postprocess import choice as choice_lib
from liverseg.postprocess.choice import ORIGINAL_CHOICE, PostprocessChoice
from liverseg.postprocess.finalize import FinalizeOptions, Probabilities, finalize
from tests.inference import helpers

TUNED = PostprocessChoice(
    slice_fusion="mean",
    tta_shifts=((2, 2),),
    crf_targets=(),
    opening_targets=("tumor",),
    liver_largest_component=True,
    tumor_min_volume_mm3=12.5,
)


def test_original_choice_is_the_original_cascade():
    assert SegmentOptions().postprocess == ORIGINAL_CHOICE
    assert ORIGINAL_CHOICE.crf_targets == ("liver", "tumor")
    assert ORIGINAL_CHOICE.opening_targets == ("liver", "tumor")
    assert ORIGINAL_CHOICE.slice_fusion == "middle" and ORIGINAL_CHOICE.tta_shifts == ()


def test_save_load_round_trip(tmp_path):
    path = choice_lib.save_choice(tmp_path, TUNED, details={"dice": {"liver": 0.9}})
    assert path.name == "postprocessing.json"
    assert choice_lib.load_choice(tmp_path) == TUNED
    assert json.loads(path.read_text())["details"] == {"dice": {"liver": 0.9}}
    assert choice_lib.load_choice(tmp_path / "missing") is None
    assert choice_lib.load_choice(tmp_path / "postprocessing.json") is None  # not a directory


@pytest.mark.parametrize(
    "document,problem",
    [
        ("{", "not a valid"),
        ('{"choice": {"slice_fusion": "median"}}', "slice_fusion"),
        ('{"choice": {"crf_targets": ["spleen"]}}', "spleen"),
        ('{"choice": {"tumor_min_volume_mm3": -1}}', "tumor_min_volume_mm3"),
        ('{"choice": {"colour": 1}}', "unknown"),
        ("[]", "no 'choice'"),
        ('{"choice": {"tta_shifts": [[0, 0]]}}', "tta_shifts"),
    ],
)
def test_a_bad_file_names_itself_and_the_problem(tmp_path, document, problem):
    (tmp_path / "postprocessing.json").write_text(document)
    with pytest.raises(ConfigError, match=problem) as err:
        choice_lib.load_choice(tmp_path)
    assert str(tmp_path / "postprocessing.json") in str(err.value)


def test_segment_options_apply_and_report_a_choice():
    options = SegmentOptions(crop_variant="paper").with_choice(TUNED)
    assert options.postprocess == TUNED and options.crop_variant == "paper"
    f = options.finalize_options()
    assert f.crf_targets == () and f.opening_targets == ("tumor",)
    assert f.liver_largest_component and f.tumor_min_volume_mm3 == 12.5
    # a single choice changes without touching the others
    assert options.with_choice(opening_targets=()).postprocess == dataclasses.replace(
        TUNED, opening_targets=()
    )


@pytest.mark.parametrize("crf", [True, False])
def test_finalize_on_saved_probabilities_equals_the_cascade(crf):
    """The decisions apply to probability maps alone: the same labels as the cascade."""
    volume = helpers.synthetic_volume(speck=True)
    options = helpers.options(
        batch_size=4,
        crf_spatial_scale="voxels",
        opening=False,
        crf=crf,
        liver_largest_component=True,
        tumor_min_volume_mm3=3.0,
    )
    result = Segmenter(helpers.fake_liver_model(), helpers.fake_tumor_model(), options).segment(
        volume
    )
    probs = Probabilities.from_full(result.liver_probability, result.tumor_probability)
    labels = finalize(
        volume, pp.intensity_range(volume), probs, (1.0, 1.0, 1.0), options.finalize_options()
    )
    np.testing.assert_array_equal(labels, result.labels)
    if crf:
        return
    # the largest component drops the soft speck far from the liver
    plain = Segmenter(
        helpers.fake_liver_model(),
        helpers.fake_tumor_model(),
        helpers.options(batch_size=4, crf_spatial_scale="voxels", crf=False, opening=False),
    ).segment(volume)
    assert result.voxel_counts()["liver"] < plain.voxel_counts()["liver"]


def test_minimum_tumour_volume_uses_the_spacing():
    liver = np.zeros((16, 16, 8), np.float32)
    liver[2:14, 2:14, 1:7] = 1.0
    tumour = np.zeros_like(liver)
    tumour[4:6, 4:6, 2:4] = 1.0  # 8 voxels
    tumour[9:12, 9:12, 2:5] = 1.0  # 27 voxels
    hu = np.zeros(liver.shape, np.int16)
    probs = lambda: Probabilities.from_full(liver, tumour)  # noqa: E731
    opts = FinalizeOptions(crf_targets=(), opening_targets=(), tumor_min_volume_mm3=20.0)
    at_1mm = finalize(hu, (0.0, 1.0), probs(), (1.0, 1.0, 1.0), opts)
    at_3mm = finalize(hu, (0.0, 1.0), probs(), (1.0, 1.0, 3.0), opts)
    assert int((at_1mm == 2).sum()) == 27  # the 8 mm^3 lesion is dropped
    assert int((at_3mm == 2).sum()) == 35  # 24 mm^3: kept
