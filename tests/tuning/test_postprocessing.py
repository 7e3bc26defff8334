"""Choosing post-processing on validation cases (liverseg.tuning)."""

import json

import pytest

from liverseg.data import lits, nifti
from liverseg.postprocess.choice import ORIGINAL_CHOICE, PostprocessChoice, load_choice
from liverseg.tuning import TuneOptions, tune_postprocessing
from liverseg.tuning.postprocessing import Score, operations, pick, save_result
from tests.inference import helpers

SMALL = TuneOptions(tta_shift_sets=((),), tumor_min_volumes_mm3=(0.0, 50.0))


def test_operations_count_the_steps_a_choice_runs():
    assert operations(ORIGINAL_CHOICE) == 4  # CRF and opening on both structures
    bare = PostprocessChoice(crf_targets=(), opening_targets=())
    assert operations(bare) == 0
    assert (
        operations(
            PostprocessChoice(
                slice_fusion="mean", tta_shifts=((2, 2),), crf_targets=(), opening_targets=()
            )
        )
        == 1
    )
    assert (
        operations(
            PostprocessChoice(
                crf_targets=(),
                opening_targets=("tumor",),
                liver_largest_component=True,
                tumor_min_volume_mm3=5.0,
            )
        )
        == 3
    )


def test_pick_keeps_a_step_only_where_it_earns_its_place():
    bare = Score(PostprocessChoice(crf_targets=(), opening_targets=()), 0.950, 0.700)
    original = Score(ORIGINAL_CHOICE, 0.951, 0.700)
    opening = Score(PostprocessChoice(crf_targets=(), opening_targets=("tumor",)), 0.950, 0.720)
    assert pick([bare, original], min_gain=0.002).choice == bare.choice
    assert pick([bare, original, opening], min_gain=0.002).choice == opening.choice
    assert pick([bare, original, opening], min_gain=0.05).choice == bare.choice


@pytest.fixture(scope="module")
def validation_dir(tmp_path_factory):
    """Two labelled cases of the cascade tests' synthetic volume (a liver block with a
    tumour block and a soft liver-like speck far from it)."""
    directory = tmp_path_factory.mktemp("val")
    for i in (0, 1):
        path = helpers.write_ct(
            directory / f"volume-{i}.nii.gz", helpers.synthetic_volume(speck=True)
        )
        nifti.save_labels(
            directory / f"segmentation-{i}.nii.gz", helpers.expected_labels(), nifti.load_ct(path)
        )
    return directory


def test_tuning_finds_a_perfect_choice_with_the_fewest_steps(validation_dir, tmp_path):
    cases = lits.discover_cases(validation_dir)
    result = tune_postprocessing(
        helpers.fake_liver_model(),
        helpers.fake_tumor_model(),
        cases,
        options=SMALL,
        report=lambda line: None,
    )
    assert len(result.scores) == 2 * 4 * 4 * 2 * 2
    chosen = result.score_of(result.choice)
    # the fake networks are exact but for the speck: without the opening (which
    # shaves the blocks' edges) and with the largest liver component, perfect
    assert result.scores[0].total == pytest.approx(2.0)
    eligible = [s for s in result.scores if s.total >= 2.0 - SMALL.min_gain]
    assert chosen in eligible and result.choice.opening_targets == ()
    assert operations(result.choice) == min(operations(s.choice) for s in eligible)
    original = result.score_of(ORIGINAL_CHOICE)
    assert original.total < 2.0 - SMALL.min_gain
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    written = save_result(result, [tmp_path / "a", tmp_path / "b"])
    assert len(written) == 2 and load_choice(tmp_path / "b") == result.choice
    details = json.loads(written[0].read_text())["details"]
    assert details["cases"] == ["0", "1"] and details["original"]["liver_dice"] < 1.0
