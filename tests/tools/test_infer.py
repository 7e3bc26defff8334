"""tools/infer.py end to end in a subprocess, with untrained saved networks."""

import json
import os
import re

import nibabel as nib
import numpy as np
import pytest

from tests.inference import helpers
from tests.tools import helpers as tool_helpers

run_tool = tool_helpers.tool("infer")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return helpers.save_real_models(tmp_path_factory.mktemp("infer_models"))


def test_infer_tool_segments_a_directory_and_reports_bad_files(tmp_path, models):
    liver, tumor = models
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(1)
    affine = np.array([[-0.7, 0, 0, 10], [0, -0.7, 0, 20], [0, 0, 2.5, -30], [0, 0, 0, 1]])
    helpers.write_ct(
        src / "test-volume-3.nii.gz", rng.normal(40, 60, (32, 32, 5)).astype(np.int16), affine
    )
    (src / "test-volume-4.nii").write_bytes(b"not a nifti file at all" * 20)
    (src / "notes.txt").write_text("x")
    result = run_tool(
        f"--input_dir={src}",
        f"--output_dir={out}",
        f"--liver_model={liver}",
        f"--tumor_model={tumor}",
        "--batch_size=2",
        "--opening_targets=tumor",
        "--slice_fusion=mean",
        "--tta_shifts=1:2,-1:0",
        "--crf_on=roi",
        "--crop_variant=paper",
        "--write_probabilities",
        "--crf_targets=liver",
        "--crf_max_voxels=2000",
        "--statistics",
        "--report_html",
    )
    assert result.returncode == 1, result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    # TensorFlow's native start-up lines (oneDNN, CUDA probing) are held back
    assert not re.search(r"^[IWE]0000 |absl::InitializeLog|oneDNN", output, re.MULTILINE), output
    errors = [
        line for line in output.splitlines() if "test-volume-4.nii" in line and "ERROR" in line
    ]
    assert len(errors) == 1 and "not a NIfTI file" in errors[0]
    assert "notes.txt (not a NIfTI file)" in output
    assert "1 written, 0 skipped, 1 failed" in result.stdout
    assert sorted(os.listdir(out)) == [
        "inference_options.json",
        "report.html",
        "statistics.csv",
        "statistics.json",
        "test-segmentation-3.nii.gz",
        "test-segmentation-3_liver_probability.nii.gz",
        "test-segmentation-3_statistics.json",
        "test-segmentation-3_tumor_probability.nii.gz",
    ]
    # the options used are recorded beside the outputs, flags included
    record = json.loads((out / "inference_options.json").read_text())
    assert record["postprocessing"]["choice"] == {
        "slice_fusion": "mean",
        "tta_shifts": [[1, 2], [-1, 0]],
        "crf_targets": ["liver"],
        "opening_targets": ["tumor"],
        "liver_largest_component": False,
        "tumor_min_volume_mm3": 0.0,
    }
    assert record["segment_options"]["crop_variant"] == "paper"
    assert record["models"] == {"liver": str(liver), "tumor": str(tumor)}
    seg = nib.load(str(out / "test-segmentation-3.nii.gz"))
    np.testing.assert_array_equal(seg.affine, nib.load(str(src / "test-volume-3.nii.gz")).affine)
    assert seg.shape == (32, 32, 5) and set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2}
    # --statistics: per case and for the run, from the written label map and the CT
    (stats,) = json.loads((out / "statistics.json").read_text())["cases"]
    assert stats == json.loads((out / "test-segmentation-3_statistics.json").read_text())
    labels = np.asarray(seg.dataobj)
    assert stats["case"] == "test-3"
    assert stats["liver_volume_ml"] == pytest.approx(
        (labels >= 1).sum() * 0.7 * 0.7 * 2.5 / 1000, abs=1e-4
    )
    assert stats["lesion_count"] == len(stats["lesions"])
    assert (out / "statistics.csv").read_text().startswith("case,liver_volume_ml,")
    page = (out / "report.html").read_text()
    assert (
        "test-3 (test-volume-3.nii.gz)" in page
        and "&quot;crop_variant&quot;: &quot;paper&quot;" in page
    )

    again = run_tool(
        f"--input_dir={src / 'test-volume-3.nii.gz'}",
        f"--output_dir={out}",
        f"--liver_model={liver}",
        "--skip_existing",
        "--crf_targets=",
    )
    assert again.returncode == 0, again.stderr
    assert "0 written, 1 skipped, 0 failed" in again.stdout


def test_infer_tool_one_line_error_for_a_missing_model(tmp_path):
    helpers.write_ct(tmp_path / "volume-0.nii", np.zeros((32, 32, 4), np.int16))
    result = run_tool(
        f"--input_dir={tmp_path}",
        f"--output_dir={tmp_path / 'out'}",
        f"--liver_model={tmp_path / 'nope'}",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"error: {tmp_path / 'nope'}: model path does not exist"
    )
    conflicting = run_tool(
        f"--input_dir={tmp_path}",
        f"--output_dir={tmp_path / 'out'}",
        f"--liver_model={tmp_path / 'nope'}",
        "--overwrite",
        "--skip_existing",
    )
    assert conflicting.returncode == 1
    assert (
        conflicting.stderr.strip().splitlines()[-1]
        == "error: overwrite and skip_existing exclude each other"
    )
    bad_target = run_tool(
        f"--input_dir={tmp_path}",
        f"--output_dir={tmp_path / 'out'}",
        f"--liver_model={tmp_path / 'nope'}",
        "--crf_targets=liver,lesion",
    )
    assert bad_target.returncode == 1
    assert (
        bad_target.stderr.strip().splitlines()[-1]
        == "error: crf_targets: unknown value(s) 'lesion'; choose from liver, tumor"
    )
