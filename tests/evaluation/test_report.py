"""Directory evaluation: pairing, errors per case, aggregates, report files."""

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from liverseg.errors import ConfigError, LayoutError, OutputError
from liverseg.evaluation.report import (
    CSV_COLUMNS,
    aggregate,
    case_id_from_name,
    evaluate_directories,
    evaluate_to_files,
    find_segmentations,
    format_table,
)

SPACING = (0.8, 0.8, 2.5)
SHAPE = (16, 16, 8)


def write(path, labels, spacing=SPACING, dtype=np.uint8):
    affine = np.diag(list(spacing) + [1.0])
    nib.save(nib.Nifti1Image(np.asarray(labels, dtype=dtype), affine), str(path))


def scene(liver_shift=0, tumour=True):
    labels = np.zeros(SHAPE, np.uint8)
    labels[3:11, 3:11, 2 + liver_shift : 6 + liver_shift] = 1
    if tumour:
        labels[5:7, 5:7, 3:5] = 2
    return labels


@pytest.fixture
def dirs(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    return pred, gt


def test_case_ids():
    assert case_id_from_name("segmentation-7.nii") == "7"
    assert case_id_from_name("segmentation-007.nii.gz") == "7"
    assert case_id_from_name("test-segmentation-12.nii") == "test-12"
    assert case_id_from_name("volume-7.nii") is None
    assert case_id_from_name("segmentation-7.nii.bak") is None


def test_duplicate_case_is_layout_error(dirs):
    _, gt = dirs
    write(gt / "segmentation-1.nii", scene())
    write(gt / "segmentation-1.nii.gz", scene())
    with pytest.raises(LayoutError, match="segmentation-1.nii.*twice"):
        find_segmentations(gt)


def test_scores_and_aggregates(dirs):
    pred, gt = dirs
    write(gt / "segmentation-0.nii", scene())
    write(pred / "segmentation-0.nii", scene())
    write(gt / "segmentation-2.nii.gz", scene())
    write(pred / "segmentation-2.nii.gz", scene(liver_shift=1, tumour=False))
    write(gt / "test-segmentation-1.nii", scene(tumour=False))
    write(pred / "test-segmentation-1.nii", scene(tumour=False))
    write(pred / "segmentation-9.nii", scene())  # no reference: listed, not scored
    report = evaluate_directories(pred, gt)
    assert [c["case"] for c in report["cases"]] == ["0", "2", "test-1"]
    assert report["failures"] == [] and report["unmatched_predictions"][0].endswith(
        "segmentation-9.nii"
    )
    c0, c2, t1 = report["cases"]
    assert c0["liver"]["dice"] == 1.0 and c0["tumor"] == {
        "dice": 1.0,
        "num_reference_lesions": 1,
        "num_predicted_lesions": 1,
        "num_detected": 1,
    }
    assert c2["liver"]["dice"] == 0.75 and c2["liver"]["msd"] == 2.5
    assert c2["tumor"]["dice"] == 0.0 and t1["tumor"]["dice"] == 1.0

    liver, tumor = report["liver"], report["tumor"]
    assert liver["dice_per_case"] == pytest.approx((1 + 0.75 + 1) / 3)
    assert liver["dice_global"] == pytest.approx(2 * (256 + 192 + 256) / (3 * 512))
    assert liver["msd"] == pytest.approx(2.5 / 3)
    assert tumor["dice_per_case"] == pytest.approx(2 / 3)
    assert tumor["dice_global"] == pytest.approx(2 * 8 / (8 + 16))
    assert tumor["precision"] == 1.0 and tumor["recall"] == 0.5
    assert tumor["assd"] == 0.0 and tumor["voe"] == 0.0 and tumor["dice_per_lesion"] == 1.0
    assert report["rvd_convention"] == "reference"


def test_bad_cases_fail_by_name_and_others_are_scored(dirs):
    pred, gt = dirs
    for i in range(5):
        write(gt / f"segmentation-{i}.nii", scene())
    write(pred / "segmentation-0.nii", scene())
    write(pred / "segmentation-1.nii", scene()[:, :, :7])  # shape
    write(pred / "segmentation-2.nii", scene(), spacing=(0.8, 0.8, 5.0))  # spacing
    bad = scene()
    bad[0, 0, 0] = 3
    write(pred / "segmentation-3.nii", bad)  # label
    # segmentation-4 missing
    report = evaluate_directories(pred, gt)
    assert [c["case"] for c in report["cases"]] == ["0"]
    failures = {f["case"]: f for f in report["failures"]}
    assert set(failures) == {"1", "2", "3", "4"}
    assert failures["1"]["path"].endswith("pred/segmentation-1.nii")
    assert "shape (16, 16, 7)" in failures["1"]["error"]
    assert "spacing" in failures["2"]["error"] and failures["2"]["error"].startswith(str(pred))
    assert "3" in failures["3"]["error"] and failures["3"]["path"].endswith("segmentation-3.nii")
    assert "missing" in failures["4"]["error"] and "segmentation-4.nii" in failures["4"]["error"]
    assert report["liver"]["dice_per_case"] == 1.0


def test_missing_empty_scores_an_empty_prediction(dirs):
    pred, gt = dirs
    write(gt / "segmentation-4.nii", scene())
    report = evaluate_directories(pred, gt, missing="empty", rvd_convention="scoring_program")
    (case,) = report["cases"]
    assert report["missing_predictions"] == ["4"] and report["failures"] == []
    assert case["liver"]["dice"] == 0.0 and case["liver"]["assd"] == 9001.0
    assert case["liver"]["rvd"] is None  # |P| = 0 under the scoring program's convention
    assert report["liver"]["rvd"] is None
    assert report["tumor"]["precision"] is None and report["tumor"]["recall"] == 0.0


def test_layout_and_option_errors(dirs, tmp_path):
    pred, gt = dirs
    with pytest.raises(LayoutError, match="no segmentation"):
        evaluate_directories(pred, gt)
    write(gt / "segmentation-0.nii", scene())
    with pytest.raises(LayoutError, match="not a directory"):
        evaluate_directories(tmp_path / "nope", gt)
    with pytest.raises(ConfigError):
        evaluate_directories(pred, gt, missing="skip")


def test_writes_json_and_csv_and_refuses_overwrite(dirs, tmp_path):
    pred, gt = dirs
    write(gt / "segmentation-0.nii", scene())
    write(pred / "segmentation-0.nii", scene(liver_shift=1))
    out = tmp_path / "out" / "report.json"
    report = evaluate_to_files(pred, gt, out)
    loaded = json.loads(out.read_text())
    assert loaded == json.loads(json.dumps(report))
    assert set(loaded["cases"][0]) == {"case", "liver", "tumor", "volumes"}
    assert set(loaded["liver"]) == {
        "dice_per_case",
        "dice_global",
        "voe",
        "rvd",
        "assd",
        "msd",
        "rmsd",
    }
    assert {
        "dice_per_case",
        "dice_global",
        "precision",
        "recall",
        "voe",
        "rvd",
        "assd",
        "msd",
        "rmsd",
    } <= set(loaded["tumor"])
    with open(out.with_suffix(".csv")) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and rows[0]["case"] == "0"
    assert float(rows[0]["liver_dice"]) == report["cases"][0]["liver"]["dice"]
    assert "FAILED" not in format_table(report)
    with pytest.raises(OutputError, match="exists"):
        evaluate_to_files(pred, gt, out)
    evaluate_to_files(pred, gt, out, overwrite=True)
    with pytest.raises(ConfigError, match="csv"):
        evaluate_to_files(pred, gt, tmp_path / "report.csv")


def test_aggregate_of_nothing_is_undefined():
    liver, tumor = aggregate([])
    assert liver["dice_per_case"] is None and tumor["precision"] is None
