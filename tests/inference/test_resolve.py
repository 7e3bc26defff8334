"""Which options a run uses (liverseg.inference.resolve): stored, original, overrides."""

import pytest

from liverseg.data.geometry import Geometry
from liverseg.data.plans import save_plans
from liverseg.errors import ConfigError
from liverseg.inference import SegmentOptions, resolve_options
from liverseg.postprocess.choice import ORIGINAL_CHOICE, PostprocessChoice, save_choice

TUNED = PostprocessChoice(
    slice_fusion="mean", crf_targets=("liver",), opening_targets=(), liver_largest_component=True
)


@pytest.fixture
def model_dirs(tmp_path):
    liver, tumor = tmp_path / "liver", tmp_path / "tumor"
    liver.mkdir()
    tumor.mkdir()
    return liver, tumor


def test_stored_choice_and_grid_by_default(model_dirs):
    liver, tumor = model_dirs
    save_choice(tumor, TUNED)
    save_choice(liver, ORIGINAL_CHOICE)  # the tumour model's (tuned with the pair) wins
    save_plans(liver, Geometry("LPS", (4.0, 4.0)))
    resolved = resolve_options(str(liver), str(tumor))
    assert resolved.segment_options.postprocess == TUNED
    assert resolved.choice_source == str(tumor / "postprocessing.json")
    assert resolved.geometry == Geometry("LPS", (4.0, 4.0))
    assert resolved.to_dict()["postprocessing"]["choice"] == TUNED.to_dict()


def test_models_without_files_run_the_original_cascade_as_stored(model_dirs):
    resolved = resolve_options(*map(str, model_dirs))
    assert resolved.segment_options.postprocess == ORIGINAL_CHOICE
    assert resolved.geometry is None and "no stored choice" in resolved.choice_source
    assert "no plans.json" in resolved.geometry_source


def test_original_and_native_ignore_the_stored_files(model_dirs):
    liver, tumor = model_dirs
    save_choice(tumor, TUNED)
    save_plans(liver, Geometry("LPS", (4.0, 4.0)))
    resolved = resolve_options(str(liver), str(tumor), postprocess="original", geometry="native")
    assert resolved.segment_options.postprocess == ORIGINAL_CHOICE
    assert resolved.geometry is None and resolved.choice_source == "original"


def test_overrides_win_and_the_base_is_kept(model_dirs):
    liver, tumor = model_dirs
    save_choice(tumor, TUNED)
    resolved = resolve_options(
        str(liver),
        str(tumor),
        base=SegmentOptions(crop_variant="paper"),
        overrides={"crf_targets": (), "tumor_min_volume_mm3": 30.0, "mixed_precision": True},
    )
    options = resolved.segment_options
    assert options.crop_variant == "paper" and options.slice_fusion == "mean"
    assert options.mixed_precision
    assert (
        options.postprocess.crf_targets == () and options.postprocess.tumor_min_volume_mm3 == 30.0
    )
    assert "overrides: crf_targets, mixed_precision, tumor_min_volume_mm3" in resolved.choice_source


@pytest.mark.parametrize(
    "kwargs,problem",
    [
        ({"postprocess": "tuned"}, "postprocess"),
        ({"geometry": "mm"}, "geometry"),
        ({"overrides": {"colour": 1}}, "unknown cascade options"),
    ],
)
def test_bad_arguments(model_dirs, kwargs, problem):
    with pytest.raises(ConfigError, match=problem):
        resolve_options(*map(str, model_dirs), **kwargs)
