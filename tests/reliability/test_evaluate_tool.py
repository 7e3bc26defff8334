"""tools/evaluate.py on a directory of bad predictions, and its report files.

The good cases are scored and the report is written even though most
predictions are broken; each broken one is named once on stderr and listed
in the report's failures. Report outputs follow the same rules as every
output: no partial files, nothing overwritten or written through a symlink
without --overwrite.
"""

import json
import os
import re

import numpy as np
import pytest

from liverseg.errors import OutputError
from liverseg.evaluation import report as report_lib
from liverseg.evaluation import writers as report_writers
from tests.reliability import badfiles as bf
from tests.reliability.conftest import assert_one_line_error, run_tool

GOOD_CASES = ("50", "51")


@pytest.fixture(scope="module")
def battery(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate_battery")
    pred, gt = root / "pred", root / "gt"
    pred.mkdir()
    gt.mkdir()
    for bad in bf.LABEL_BATTERY:
        bad.write(pred)
        bf.write_good_labels(gt / bad.name)
    for case in GOOD_CASES:
        bf.write_good_labels(gt / f"segmentation-{case}.nii.gz")
        bf.write_good_labels(pred / f"segmentation-{case}.nii.gz")
    bf.write_good_labels(gt / "segmentation-60.nii.gz")  # no prediction at all
    (pred / "segmentation-61.nii").mkdir()  # a directory named like a prediction
    bf.write_good_labels(gt / "segmentation-61.nii.gz")
    bf.write_good_labels(gt / "segmentation-62.nii")  # named twice in pred
    bf.write_good_labels(pred / "segmentation-62.nii")
    bf.write_good_labels(pred / "segmentation-62.nii.gz")
    bf.write_good_labels(pred / "segmentation-63.nii.gz")  # its reference is truncated
    bf.LABEL_BATTERY[0].make(gt / "segmentation-63.nii.gz")
    (pred / "notes.txt").write_text("x")
    (pred / ".segmentation-50.nii.gz.abc.tmp.nii.gz").write_bytes(b"leftover of a killed write")
    out = root / "report" / "report.json"
    result = run_tool("evaluate", f"--pred_dir={pred}", f"--gt_dir={gt}", f"--output={out}")
    return pred, gt, out, result


def test_report_is_written_with_the_good_cases(battery):
    _, _, out, result = battery
    assert result.returncode == 1
    assert "Traceback" not in result.output
    report = json.loads(out.read_text())
    assert [c["case"] for c in report["cases"]] == list(GOOD_CASES)
    assert all(c["liver"]["dice"] == 1.0 for c in report["cases"])
    assert out.with_suffix(".csv").is_file()
    assert result.last_error() == (
        f"error: {len(bf.LABEL_BATTERY) + 4} case(s) could not be scored; see {out}"
    )


@pytest.mark.parametrize("bad", bf.LABEL_BATTERY, ids=lambda b: b.name)
def test_each_bad_prediction_is_named_once(battery, bad):
    pred, _, out, result = battery
    path = str(pred / bad.name)
    line = result.error_line_for(path, bad.note)
    assert re.search(bad.expect, line), (bad.note, line)
    report = json.loads(out.read_text())
    (failure,) = [f for f in report["failures"] if f["path"] == path]
    assert re.search(bad.expect, failure["error"])


def test_missing_directory_duplicate_and_bad_reference_fail_alone(battery):
    pred, gt, out, result = battery
    failures = {f["case"]: f["error"] for f in json.loads(out.read_text())["failures"]}
    assert failures["60"].startswith(f"{pred / 'segmentation-60.nii'}: prediction missing")
    assert failures["61"] == f"{pred / 'segmentation-61.nii'}: is a directory, not a NIfTI file"
    assert failures["62"] == (
        f"{pred / 'segmentation-62.nii.gz'}: case 62 appears twice "
        "(also segmentation-62.nii); remove one"
    )
    assert failures["63"].startswith(f"{gt / 'segmentation-63.nii.gz'}: file is truncated")
    assert len(result.liverseg_errors()) == len(failures) + 1  # + the final summary line


def test_stray_entries_are_listed_and_hidden_leftovers_skipped(battery):
    pred, _, out, result = battery
    assert (
        f"INFO {pred}: ignored 1 entry not named segmentation-N.nii[.gz]: notes.txt"
        in result.stderr.splitlines()
    )
    assert json.loads(out.read_text())["ignored"] == [str(pred / "notes.txt")]


def test_report_symlink_is_refused_then_replaced_not_written_through(battery, tmp_path):
    pred, gt, _, _ = battery
    target = tmp_path / "precious.json"
    target.write_text("keep")
    link = tmp_path / "report.json"
    os.symlink(target, link)
    refused = run_tool("evaluate", f"--pred_dir={pred}", f"--gt_dir={gt}", f"--output={link}")
    assert_one_line_error(refused, f"error: {link}: output exists (a symlink)", "--overwrite")
    assert not link.with_suffix(".csv").exists()
    replaced = run_tool(
        "evaluate", f"--pred_dir={pred}", f"--gt_dir={gt}", f"--output={link}", "--overwrite"
    )
    assert replaced.returncode == 1  # the bad cases still fail
    assert not link.is_symlink() and json.loads(link.read_text())["cases"]
    assert target.read_text() == "keep"


@pytest.mark.parametrize("where", ["under_a_file", "is_a_directory", "csv_name"])
def test_unusable_report_paths_are_refused_before_scoring(battery, tmp_path, where):
    pred, gt, _, _ = battery
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "dir.json").mkdir()
    output, fragment = {
        "under_a_file": (tmp_path / "file.txt" / "report.json", "is not a directory"),
        "is_a_directory": (tmp_path / "dir.json", "output path is an existing directory"),
        "csv_name": (tmp_path / "report.csv", "must not be a .csv name"),
    }[where]
    result = run_tool("evaluate", f"--pred_dir={pred}", f"--gt_dir={gt}", f"--output={output}")
    assert_one_line_error(result, str(output), fragment)
    assert "INFO case" not in result.stderr  # refused before any case was scored


def test_missing_directories_are_one_line_errors(tmp_path):
    (tmp_path / "gt").mkdir()
    missing = run_tool(
        "evaluate",
        f"--pred_dir={tmp_path / 'nope'}",
        f"--gt_dir={tmp_path / 'gt'}",
        f"--output={tmp_path / 'r.json'}",
    )
    assert_one_line_error(missing, str(tmp_path / "gt"), "no segmentation")
    bf.write_good_labels(tmp_path / "gt" / "segmentation-0.nii")
    missing = run_tool(
        "evaluate",
        f"--pred_dir={tmp_path / 'nope'}",
        f"--gt_dir={tmp_path / 'gt'}",
        f"--output={tmp_path / 'r.json'}",
    )
    assert_one_line_error(missing, f"{tmp_path / 'nope'}: not a directory")
    assert not (tmp_path / "r.json").exists()


def test_a_failed_report_write_leaves_no_report(battery, tmp_path, monkeypatch):
    pred, gt, _, _ = battery
    out = tmp_path / "report.json"
    real = report_writers.atomic_write_text

    def write_then_fail(path, text, overwrite=False):
        if str(path).endswith(".json"):

            def half(tmp):
                tmp.write_text(text[: len(text) // 2])
                raise OSError(28, "No space left on device")

            from liverseg.utils.atomic import atomic_write_with

            return atomic_write_with(path, half, overwrite=overwrite)
        return real(path, text, overwrite=overwrite)

    monkeypatch.setattr(report_writers, "atomic_write_text", write_then_fail)
    with pytest.raises(OutputError, match="No space left on device") as info:
        report_lib.evaluate_to_files(pred, gt, out)
    assert str(info.value).startswith(str(out))
    assert os.listdir(tmp_path) == []  # neither JSON, CSV nor temporary file


def test_out_of_memory_in_one_case_fails_that_case_only(battery, monkeypatch):
    pred, gt, _, _ = battery
    real = report_lib.load_labels

    def load(path, **kw):
        if os.path.basename(path) == "segmentation-51.nii.gz" and "pred" in str(path):
            raise MemoryError()
        return real(path, **kw)

    monkeypatch.setattr(report_lib, "load_labels", load)
    report = report_lib.evaluate_directories(pred, gt)
    assert [c["case"] for c in report["cases"]] == ["50"]
    (failure,) = [f for f in report["failures"] if f["case"] == "51"]
    assert failure["error"].startswith(f"{pred / 'segmentation-51.nii.gz'}: out of memory")


def test_an_unexpected_error_in_one_case_fails_that_case_only(battery, monkeypatch):
    pred, gt, _, _ = battery
    real = report_lib.case_metrics

    def metrics(p, r, spacing, **kw):
        if np.count_nonzero(p) == 0:
            raise ZeroDivisionError("boom")
        return real(p, r, spacing, **kw)

    monkeypatch.setattr(report_lib, "case_metrics", metrics)
    report = report_lib.evaluate_directories(pred, gt, missing="empty")
    (failure,) = [f for f in report["failures"] if f["case"] == "60"]
    assert failure["error"] == (
        f"{gt / 'segmentation-60.nii.gz'}: unexpected ZeroDivisionError while scoring case 60: boom"
    )
    assert [c["case"] for c in report["cases"]] == list(GOOD_CASES)
