"""tools/statistics.py end to end in a subprocess."""

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from tests.tools import helpers as tool_helpers

run_tool = tool_helpers.tool("statistics")


def test_statistics_tool_on_a_lits_directory(tmp_path):
    data = tmp_path / "lits"
    data.mkdir()
    affine = np.diag([0.8, 0.8, 2.0, 1.0])
    labels = np.zeros((30, 30, 10), np.uint8)
    labels[5:25, 5:25, 1:9] = 1
    labels[8:12, 8:12, 3:6] = 2  # lesion of 4 x 4 x 3 voxels
    labels[18:21, 18:22, 4:6] = 2  # lesion of 3 x 4 x 2 voxels
    hu = np.where(labels == 2, 35, 100).astype(np.int16)
    for i in range(2):
        nib.save(nib.Nifti1Image(labels, affine), str(data / f"segmentation-{i}.nii.gz"))
        nib.save(nib.Nifti1Image(hu, affine), str(data / f"volume-{i}.nii.gz"))
    (data / "segmentation-2.nii").write_bytes(b"broken")
    out = tmp_path / "out" / "stats.json"

    result = run_tool(f"--labels_dir={data}", f"--ct_dir={data}", f"--output={out}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "segmentation-2.nii" in result.stderr
    report = json.loads(out.read_text())
    assert [c["case"] for c in report["cases"]] == ["0", "1"]
    assert [f["case"] for f in report["failures"]] == ["2"]
    case = report["cases"][0]
    voxel_ml = 0.8 * 0.8 * 2.0 / 1000
    assert case["liver_volume_ml"] == pytest.approx(20 * 20 * 8 * voxel_ml)
    assert case["tumor_volume_ml"] == pytest.approx((48 + 24) * voxel_ml)
    assert case["tumor_burden"] == pytest.approx(72 / 3200)
    assert case["lesion_count"] == 2
    big, small = case["lesions"]
    assert big["voxels"] == 48 and small["voxels"] == 24
    assert big["longest_diameter_mm"] == pytest.approx(np.hypot(3 * 0.8, 3 * 0.8), abs=0.01)
    assert big["mean_hu"] == 35 and big["std_hu"] == 0
    assert big["centroid_mm"] == pytest.approx([9.5 * 0.8, 9.5 * 0.8, 4 * 2.0])
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert [r["case"] for r in rows] == ["0", "1"] and rows[0]["lesion_count"] == "2"

    again = run_tool(f"--labels_dir={data}", f"--output={out}")
    assert again.returncode == 1 and "exists" in again.stderr  # nothing overwritten
