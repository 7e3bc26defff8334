"""The report's files and table: JSON, per-case CSV, a text table."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from liverseg.errors import ConfigError, OutputError
from liverseg.evaluation.aggregate import LIVER_CASE_KEYS, TUMOR_CASE_KEYS, VOLUME_CASE_KEYS
from liverseg.evaluation.metrics import RvdConvention
from liverseg.utils.atomic import atomic_write_text, check_can_write

CSV_COLUMNS = (
    ("case",)
    + tuple(f"liver_{k}" for k in LIVER_CASE_KEYS)
    + tuple(f"tumor_{k}" for k in TUMOR_CASE_KEYS)
    + VOLUME_CASE_KEYS
)


def report_csv(report: dict) -> str:
    """The per-case rows of ``report`` as CSV text (empty cell = undefined)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for case in report["cases"]:
        row = [case["case"]]
        row += [case["liver"][k] for k in LIVER_CASE_KEYS]
        row += [case["tumor"][k] for k in TUMOR_CASE_KEYS]
        row += [case.get("volumes", {}).get(k) for k in VOLUME_CASE_KEYS]
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def _fmt(value, width: int = 10) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value).rjust(width)
    return f"{value:.4f}".rjust(width)


def format_table(report: dict) -> str:
    """Human-readable table of the per-case scores and the aggregates."""
    head = (
        ("case",)
        + tuple(f"L.{k}" for k in LIVER_CASE_KEYS)
        + ("T.dice", "T.ref", "T.pred", "T.det", "L.ml.err", "burden", "ref.bur.")
    )
    lines = [
        "liver (L.) and tumour (T.) scores; T.ref/T.pred/T.det = reference, predicted, "
        "detected lesions",
        "".join(h.rjust(10) for h in head),
    ]
    for case in report["cases"]:
        volumes = case.get("volumes", {})
        values = (
            [case["liver"][k] for k in LIVER_CASE_KEYS]
            + [case["tumor"][k] for k in TUMOR_CASE_KEYS]
            + [
                volumes.get(k)
                for k in ("liver_volume_error_ml", "tumor_burden", "reference_tumor_burden")
            ]
        )
        lines.append(case["case"].rjust(10) + "".join(_fmt(v) for v in values))
    for name in ("liver", "tumor"):
        summary = ", ".join(f"{k} {_fmt(v, 0)}" for k, v in report[name].items())
        lines.append(f"{name}: {summary}")
    burden = report.get("tumor_burden")
    if burden:
        lines.append(
            f"tumour burden (LiTS): rmse {_fmt(burden['rmse'], 0)}, "
            f"max error {_fmt(burden['max_error'], 0)}"
        )
    lines.append(f"rvd convention: {report.get('rvd_convention', RvdConvention.REFERENCE.value)}")
    for failure in report.get("failures", []):
        lines.append(f"FAILED {failure['case']}: {failure['error']}")
    return "\n".join(lines)


def csv_path_for(output: str | os.PathLike) -> Path:
    """The CSV written beside the JSON report (same name, ``.csv`` suffix)."""
    output = Path(output)
    if output.suffix.lower() == ".csv":
        raise ConfigError(
            f"{output}: the report output must not be a .csv name "
            "(the per-case CSV is written beside it)"
        )
    return output.with_suffix(".csv")


def write_report(
    report: dict, output: str | os.PathLike, overwrite: bool = False
) -> tuple[Path, Path]:
    """Writes ``report`` as JSON to ``output`` and its per-case CSV beside it
    (atomically); returns both paths."""
    output = Path(output)
    csv_path = csv_path_for(output)
    check_output(output, overwrite)
    text = json.dumps(report, indent=2, allow_nan=False) + "\n"
    try:
        atomic_write_text(csv_path, report_csv(report), overwrite=overwrite)
    except OSError as err:
        raise OutputError(csv_path, f"cannot write the CSV report: {err.strerror or err}") from None
    try:
        atomic_write_text(output, text, overwrite=overwrite)
    except BaseException as err:
        # The JSON marks a finished report: without it, leave no CSV of this run either.
        with contextlib.suppress(OSError):
            csv_path.unlink()
        if isinstance(err, OSError):
            raise OutputError(output, f"cannot write the report: {err.strerror or err}") from None
        raise
    return output, csv_path


def check_output(output: str | os.PathLike, overwrite: bool = False) -> None:
    """Raises OutputError if the JSON report or its CSV cannot be written at ``output``."""
    output = Path(output)
    check_can_write(output, overwrite)
    check_can_write(csv_path_for(output), overwrite)
    ancestor = output.parent
    while not (ancestor.exists() or ancestor.is_symlink()) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(
            output, f"cannot create the report's directory: {ancestor} is not a directory"
        )
