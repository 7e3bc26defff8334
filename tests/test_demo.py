"""The demo end to end on a tiny profile: every promised output, then a resume."""

import json

import pytest

from liverseg.demo import DEFAULT, QUICK, DemoSettings, run_demo

TINY = DemoSettings(
    shape=(32, 32, 10),
    num_train=4,
    num_test=1,
    liver_steps=2,
    tumor_steps=2,
    batch_size=2,
    num_external=1,
    external_size=32,
    external_slices=10,
    val_fraction=0.25,
)


@pytest.mark.slow
def test_demo_writes_every_output_and_resumes(tmp_path, capsys):
    work = tmp_path / "demo"
    report = run_demo(str(work), settings=TINY)
    assert set(report) >= {"cases", "liver", "tumor", "external"}
    assert json.loads((work / "report.json").read_text())["liver"] == report["liver"]
    external = json.loads((work / "report_external.json").read_text())
    assert external["liver"] == report["external"]["liver"]
    assert (work / "report.csv").is_file() and (work / "report_external.csv").is_file()
    for png in [
        work / "training_curves.png",
        work / "overlays" / "case-1000.png",
        work / "overlays_external" / "case-0.png",
    ]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for stage in ("liver", "tumor"):
        model = work / "models" / stage
        assert (model / "model.weights.h5").is_file() and (model / "plans.json").is_file()
        assert (model / "postprocessing.json").is_file()  # tuned after the tumour stage
    for directory in ("predictions", "predictions_external"):
        options = json.loads((work / directory / "inference_options.json").read_text())
        assert options["postprocessing"]["source"].endswith("postprocessing.json")
        assert options["geometry"]["source"].endswith("plans.json")
    assert (work / "predictions" / "segmentation-1000.nii.gz").is_file()
    first = capsys.readouterr().out
    assert "L.dice" in first and "timings (s):" in first and "external family" in first

    run_demo(str(work), settings=TINY)
    again = capsys.readouterr().out
    assert "liver model in" in again and "tumor model in" in again and "is trained" in again
    assert again.count("exist") >= 3  # the three phantom sets reused


def test_profiles_train_on_wide_phantoms_and_validate_externally():
    for profile in (DEFAULT, QUICK):
        assert profile.style == "wide" and profile.num_external >= 3
        assert profile.num_train * profile.val_fraction >= 2  # cases to tune on
    assert QUICK.shape[0] < DEFAULT.shape[0] and QUICK.liver_steps < DEFAULT.liver_steps
