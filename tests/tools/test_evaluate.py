"""tools/evaluate.py end to end in a subprocess."""

import csv
import json

import nibabel as nib
import numpy as np

from tests.tools import helpers as tool_helpers


def write(path, labels, spacing=(0.7, 0.7, 2.0)):
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), np.diag(list(spacing) + [1.0])), str(path))


run_tool = tool_helpers.tool("evaluate")


def test_evaluate_tool_end_to_end(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    labels = np.zeros((12, 12, 6), np.uint8)
    labels[2:10, 2:10, 1:5] = 1
    labels[4:6, 4:6, 2:4] = 2
    for i in range(3):
        write(gt / f"segmentation-{i}.nii.gz", labels)
    write(pred / "segmentation-0.nii.gz", labels)
    write(pred / "segmentation-1.nii.gz", labels[:, :, :5])
    write(pred / "segmentation-2.nii.gz", labels)
    out = tmp_path / "report.json"

    result = run_tool(f"--pred_dir={pred}", f"--gt_dir={gt}", f"--output={out}")
    assert result.returncode == 1
    assert "segmentation-1.nii.gz" in result.stderr and "Traceback" not in result.stderr
    report = json.loads(out.read_text())
    assert [c["case"] for c in report["cases"]] == ["0", "2"]
    assert set(report) >= {"cases", "liver", "tumor", "failures"}
    assert set(report["cases"][0]["liver"]) == {"dice", "voe", "rvd", "assd", "msd", "rmsd"}
    assert set(report["cases"][0]["tumor"]) == {
        "dice",
        "num_reference_lesions",
        "num_predicted_lesions",
        "num_detected",
    }
    (failure,) = report["failures"]
    assert failure["case"] == "1" and "shape" in failure["error"]
    assert report["liver"]["dice_global"] == 1.0 and report["tumor"]["recall"] == 1.0
    with open(out.with_suffix(".csv")) as f:
        assert [row["case"] for row in csv.DictReader(f)] == ["0", "2"]
    assert "L.dice" in result.stdout

    again = run_tool(f"--pred_dir={pred}", f"--gt_dir={gt}", f"--output={out}")
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1].startswith(f"error: {out}: output exists")

    write(pred / "segmentation-1.nii.gz", labels)
    ok = run_tool(f"--pred_dir={pred}", f"--gt_dir={gt}", f"--output={out}", "--overwrite")
    assert ok.returncode == 0, ok.stderr
    assert len(json.loads(out.read_text())["cases"]) == 3
