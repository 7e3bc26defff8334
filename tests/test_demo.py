"""The demo end to end on a tiny profile: every promised output, then a resume."""

import json

import pytest

from liverseg.demo import DEFAULT, QUICK, DemoSettings, run_demo

TINY = DemoSettings(shape=(32, 32, 10), num_train=3, num_test=1, liver_steps=2, tumor_steps=2,
                    batch_size=2)


@pytest.mark.slow
def test_demo_writes_every_output_and_resumes(tmp_path, capsys):
    work = tmp_path / "demo"
    report = run_demo(str(work), settings=TINY)
    assert set(report) >= {"cases", "liver", "tumor"}
    assert json.loads((work / "report.json").read_text())["liver"] == report["liver"]
    assert (work / "report.csv").is_file()
    for png in [work / "training_curves.png", work / "overlays" / "case-1000.png"]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for stage in ("liver", "tumor"):
        assert (work / "models" / stage / "model.weights.h5").is_file()
    assert (work / "predictions" / "segmentation-1000.nii.gz").is_file()
    first = capsys.readouterr().out
    assert "L.dice" in first and "timings (s):" in first

    run_demo(str(work), settings=TINY)
    again = capsys.readouterr().out
    assert "liver model in" in again and "tumor model in" in again and "is trained" in again
    assert again.count("exist") >= 2  # both phantom sets reused


def test_default_profile_uses_the_measured_post_processing():
    """No CRF, opening on the tumour only, mean slice fusion, one shifted pass (README)."""
    options = DEFAULT.segment_options()
    assert options.crf_targets == () and options.opening_targets == ("tumor",)
    assert options.slice_fusion == "mean" and options.tta_shifts == ((2, 2),)
    assert QUICK.shape[0] < DEFAULT.shape[0] and QUICK.liver_steps < DEFAULT.liver_steps
