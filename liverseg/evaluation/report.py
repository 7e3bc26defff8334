"""LiTS evaluation of a directory of predictions against a directory of
references: case pairing, per-case scoring, aggregation and report files.

Files are paired by case id: ``segmentation-N.nii[.gz]`` is case ``"N"`` and
``test-segmentation-N.nii[.gz]`` is case ``"test-N"`` (the ids of
``liverseg.data.lits``), in both directories. The name parsing lives here
because evaluation pairs two label directories, which is not the
volume/segmentation layout that ``liverseg.data.lits`` discovers.

Every reference case is scored on its own: an unreadable file, a shape or
spacing mismatch, labels outside {0, 1, 2}, a case named twice
(``segmentation-3.nii`` and ``segmentation-3.nii.gz``), an unexpected error
or a missing prediction (with ``missing="error"``) becomes an entry of
``report["failures"]`` naming the file, and the other cases are still
scored. Entries not named like segmentations are skipped, logged and listed
in ``report["ignored"]``. Aggregates cover the scored cases only.

Aggregates (DESIGN.md section 7): liver ``dice_per_case`` and the liver
VOE/RVD/ASSD/MSD/RMSD are means over cases (9001 values included, as in the
scoring program; undefined RVDs left out); ``dice_global`` is
2 * sum(intersections) / sum(sizes) over all cases. Tumour ``precision`` and
``recall`` pool lesion TP/FP/FN over cases; tumour VOE/RVD/ASSD/MSD/RMSD
(and the extra ``dice_per_lesion``) are means over all detected lesions.
A metric with nothing to average is None (JSON null).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import enum
import io
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from liverseg.data import lits
from liverseg.data.nifti import load_labels, read_header
from liverseg.errors import ConfigError, LayoutError, LiverSegError, NiftiError, OutputError
from liverseg.evaluation.metrics import Overlap, RvdConvention, case_metrics
from liverseg.utils.atomic import atomic_write_text, check_can_write

logger = logging.getLogger(__name__)


LIVER_CASE_KEYS = ("dice", "voe", "rvd", "assd", "msd", "rmsd")
TUMOR_CASE_KEYS = ("dice", "num_reference_lesions", "num_predicted_lesions", "num_detected")
LESION_MEAN_KEYS = ("voe", "rvd", "assd", "msd", "rmsd")

SPACING_RTOL = 1e-4
"""Relative tolerance when comparing prediction and reference voxel spacing."""


class MissingPolicy(str, enum.Enum):
    """What to do with a reference case that has no prediction file."""

    ERROR = "error"
    EMPTY = "empty"


def case_id_from_name(name: str) -> str | None:
    """``"N"`` for segmentation-N.nii[.gz], ``"test-N"`` for test-segmentation-N,
    None for any other name."""
    parsed = lits.parse_name(name)
    if parsed is None or parsed[1] != "segmentation":
        return None
    return lits.case_id(parsed[0], parsed[2])


def _case_sort_key(case_id: str) -> tuple[int, int]:
    if case_id.startswith("test-"):
        return 1, int(case_id[5:])
    return 0, int(case_id)


@dataclasses.dataclass
class Scan:
    """What a directory holds: one entry per case, cases named twice, other entries."""

    found: dict[str, Path]
    duplicates: dict[str, list[Path]]
    ignored: list[Path]


def scan_segmentations(directory: str | os.PathLike) -> Scan:
    """Sorts the entries of ``directory`` into cases, duplicated cases and ignored entries.

    Every entry named like a segmentation counts, whatever it is (a
    directory or a dangling link then fails when loaded, with its own
    message, instead of looking like a missing file). Hidden entries (such as
    the temporary files of an interrupted write) are skipped silently.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LayoutError(directory, "not a directory")
    try:
        entries = sorted(directory.iterdir())
    except OSError as err:
        raise LayoutError(directory, f"cannot list directory: {err.strerror or err}") from None
    named: dict[str, list[Path]] = {}
    ignored: list[Path] = []
    for path in entries:
        if path.name.startswith("."):
            continue
        case = case_id_from_name(path.name)
        if case is None:
            ignored.append(path)
        else:
            named.setdefault(case, []).append(path)
    order = sorted(named, key=_case_sort_key)
    return Scan(found={case: named[case][0] for case in order if len(named[case]) == 1},
                duplicates={case: named[case] for case in order if len(named[case]) > 1},
                ignored=ignored)


def find_segmentations(directory: str | os.PathLike) -> dict[str, Path]:
    """Maps case id to segmentation entry in ``directory`` (sorted by case).

    Raises LayoutError when a case appears twice (``segmentation-3.nii`` and
    ``segmentation-3.nii.gz``).
    """
    scan = scan_segmentations(directory)
    for case, paths in scan.duplicates.items():
        raise LayoutError(paths[1], f"case {case} appears twice (also {paths[0].name})")
    return scan.found


def _log_ignored(directory, ignored: Sequence[Path], limit: int = 10) -> None:
    if ignored:
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in ignored[:limit])
        more = f" and {len(ignored) - limit} more" if len(ignored) > limit else ""
        logger.info("%s: ignored %d entr%s not named segmentation-N.nii[.gz]: %s%s", directory,
                    len(ignored), "y" if len(ignored) == 1 else "ies", names, more)


def _expected_name(case_id: str) -> str:
    if case_id.startswith("test-"):
        return f"test-segmentation-{case_id[5:]}.nii"
    return f"segmentation-{case_id}.nii"


def _header_shape(volume) -> tuple[int, ...]:
    # read_header leaves data empty; trailing singleton axes are accepted by nifti.
    return tuple(int(n) for n in volume.header.get_data_shape()[:3])


def _format_spacing(spacing) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in spacing) + ")"


def evaluate_case(pred_path: Path | None, gt_path: Path,
                  rvd_convention: RvdConvention | str = RvdConvention.REFERENCE) -> dict:
    """Loads one pair (``pred_path`` None = empty prediction) and scores it.

    Shapes and spacings are compared from the headers before any voxel data
    is read. Raises NiftiError naming the offending file.
    """
    ref_header = read_header(gt_path)
    ref_shape = _header_shape(ref_header)
    spacing = tuple(float(s) for s in ref_header.spacing)
    if pred_path is not None:
        pred_header = read_header(pred_path)
        if _header_shape(pred_header) != ref_shape:
            raise NiftiError(pred_path, f"shape {_header_shape(pred_header)} does not match the "
                                        f"reference {gt_path} shape {ref_shape}")
        if not np.allclose(pred_header.spacing, spacing, rtol=SPACING_RTOL, atol=0.0):
            raise NiftiError(pred_path, f"voxel spacing {_format_spacing(pred_header.spacing)} "
                                        f"does not match the reference {gt_path} spacing "
                                        f"{_format_spacing(spacing)}")
    # load_labels rejects values outside {0, 1, 2}, naming the file.
    reference = load_labels(gt_path).data
    pred = (np.zeros(ref_shape, dtype=np.uint8) if pred_path is None
            else load_labels(pred_path).data)
    return case_metrics(pred, reference, spacing, rvd_convention=rvd_convention)


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _global_dice(overlaps: Sequence[Overlap]) -> float | None:
    if not overlaps:
        return None
    total = Overlap(sum(o.intersection for o in overlaps), sum(o.pred for o in overlaps),
                    sum(o.ref for o in overlaps))
    return total.dice()


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def aggregate(results: Sequence[dict]) -> tuple[dict, dict]:
    """Liver and tumour summaries of a list of ``case_metrics`` results."""
    liver = {
        "dice_per_case": _mean(r["liver"]["dice"] for r in results),
        "dice_global": _global_dice([r["overlap"]["liver"] for r in results]),
    }
    for key in LESION_MEAN_KEYS:
        liver[key] = _mean(r["liver"][key] for r in results)

    lesions = [lesion for r in results for lesion in r["lesions"]]
    n_ref = sum(r["tumor"]["num_reference_lesions"] for r in results)
    n_pred = sum(r["tumor"]["num_predicted_lesions"] for r in results)
    tp = sum(r["tumor"]["num_detected"] for r in results)
    tumor = {
        "dice_per_case": _mean(r["tumor"]["dice"] for r in results),
        "dice_global": _global_dice([r["overlap"]["tumor"] for r in results]),
        "precision": _ratio(tp, n_pred),
        "recall": _ratio(tp, n_ref),
    }
    for key in LESION_MEAN_KEYS:
        tumor[key] = _mean(lesion[key] for lesion in lesions)
    tumor.update({
        "dice_per_lesion": _mean(lesion["dice"] for lesion in lesions),
        "num_reference_lesions": n_ref,
        "num_predicted_lesions": n_pred,
        "num_detected": tp,
        "false_positives": n_pred - tp,
        "false_negatives": n_ref - tp,
    })
    return liver, tumor


def evaluate_directories(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike,
                         missing: MissingPolicy | str = MissingPolicy.ERROR,
                         rvd_convention: RvdConvention | str = RvdConvention.REFERENCE) -> dict:
    """Scores every reference case in ``gt_dir`` against ``pred_dir``.

    Returns the report dict: ``cases`` (per-case liver and tumour entries),
    ``liver`` and ``tumor`` aggregates, and the extras ``rvd_convention``,
    ``missing``, ``missing_predictions`` (cases scored as empty),
    ``unmatched_predictions`` (prediction files without a reference),
    ``failures`` (``{"case", "path", "error"}`` per case that could not be
    scored) and ``ignored`` (entries of either directory not named like a
    segmentation). Raises LayoutError when a directory is missing or ``gt_dir``
    holds no segmentation, ConfigError on an unknown option.
    """
    try:
        missing = MissingPolicy(missing)
        rvd_convention = RvdConvention(rvd_convention)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    gt_scan = scan_segmentations(gt_dir)
    references = gt_scan.found
    if not references and not gt_scan.duplicates:
        raise LayoutError(gt_dir, "no segmentation-N.nii[.gz] or test-segmentation-N.nii[.gz] files")
    pred_scan = scan_segmentations(pred_dir)
    predictions = pred_scan.found
    _log_ignored(gt_dir, gt_scan.ignored)
    _log_ignored(pred_dir, pred_scan.ignored)

    cases, results, failures, scored_empty = [], [], [], []
    reference_ids = sorted(set(references) | set(gt_scan.duplicates), key=_case_sort_key)
    for case_id in reference_ids:
        duplicates = gt_scan.duplicates.get(case_id) or pred_scan.duplicates.get(case_id)
        if duplicates:
            error = (f"{duplicates[1]}: case {case_id} appears twice (also {duplicates[0].name}); "
                     "remove one")
            failures.append({"case": case_id, "path": str(duplicates[1]), "error": error})
            logger.error("case %s: %s", case_id, error)
            continue
        gt_path = references[case_id]
        pred_path = predictions.get(case_id)
        if pred_path is None and missing is MissingPolicy.ERROR:
            expected = Path(pred_dir) / _expected_name(case_id)
            failures.append({"case": case_id, "path": str(expected),
                             "error": f"{expected}: prediction missing (no {expected.name}[.gz]); "
                                      "pass --missing=empty to score it as empty"})
            logger.error("case %s: missing prediction %s", case_id, expected)
            continue
        try:
            result = evaluate_case(pred_path, gt_path, rvd_convention)
        except LiverSegError as err:
            path = getattr(err, "path", None) or str(gt_path)
            failures.append({"case": case_id, "path": path, "error": str(err)})
            logger.error("case %s: %s", case_id, err)
            continue
        except MemoryError:
            path = str(pred_path or gt_path)
            error = f"{path}: out of memory while scoring case {case_id} (reference {gt_path})"
            failures.append({"case": case_id, "path": path, "error": error})
            logger.error("case %s: %s", case_id, error)
            continue
        except Exception as err:  # one case's bug must not stop the others
            path = str(pred_path or gt_path)
            error = f"{path}: unexpected {type(err).__name__} while scoring case {case_id}: {err}"
            failures.append({"case": case_id, "path": path, "error": error})
            logger.error("case %s: %s", case_id, error)
            logger.debug("traceback", exc_info=True)
            continue
        if pred_path is None:
            scored_empty.append(case_id)
        results.append(result)
        cases.append({
            "case": case_id,
            "liver": {k: result["liver"][k] for k in LIVER_CASE_KEYS},
            "tumor": {k: result["tumor"][k] for k in TUMOR_CASE_KEYS},
        })
        logger.info("case %s: liver dice %.4f, tumour dice %.4f", case_id,
                    result["liver"]["dice"], result["tumor"]["dice"])

    liver, tumor = aggregate(results)
    return {
        "cases": cases,
        "liver": liver,
        "tumor": tumor,
        "rvd_convention": rvd_convention.value,
        "missing": missing.value,
        "missing_predictions": scored_empty,
        "unmatched_predictions": [str(p) for c, p in predictions.items() if c not in references]
        + [str(p) for c, paths in pred_scan.duplicates.items() if c not in reference_ids
           for p in paths],
        "failures": failures,
        "ignored": [str(p) for p in gt_scan.ignored + pred_scan.ignored],
    }


CSV_COLUMNS = ("case",) + tuple(f"liver_{k}" for k in LIVER_CASE_KEYS) + tuple(
    f"tumor_{k}" for k in TUMOR_CASE_KEYS)


def report_csv(report: dict) -> str:
    """The per-case rows of ``report`` as CSV text (empty cell = undefined)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for case in report["cases"]:
        row = [case["case"]]
        row += [case["liver"][k] for k in LIVER_CASE_KEYS]
        row += [case["tumor"][k] for k in TUMOR_CASE_KEYS]
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
    head = ("case",) + tuple(f"L.{k}" for k in LIVER_CASE_KEYS) + ("T.dice", "T.ref", "T.pred", "T.det")
    lines = ["liver (L.) and tumour (T.) scores; T.ref/T.pred/T.det = reference, predicted, "
             "detected lesions", "".join(h.rjust(10) for h in head)]
    for case in report["cases"]:
        values = [case["liver"][k] for k in LIVER_CASE_KEYS] + [case["tumor"][k] for k in TUMOR_CASE_KEYS]
        lines.append(case["case"].rjust(10) + "".join(_fmt(v) for v in values))
    for name in ("liver", "tumor"):
        summary = ", ".join(f"{k} {_fmt(v, 0)}" for k, v in report[name].items())
        lines.append(f"{name}: {summary}")
    lines.append(f"rvd convention: {report.get('rvd_convention', RvdConvention.REFERENCE.value)}")
    for failure in report.get("failures", []):
        lines.append(f"FAILED {failure['case']}: {failure['error']}")
    return "\n".join(lines)


def csv_path_for(output: str | os.PathLike) -> Path:
    """The CSV written beside the JSON report (same name, ``.csv`` suffix)."""
    output = Path(output)
    if output.suffix.lower() == ".csv":
        raise ConfigError(f"{output}: the report output must not be a .csv name "
                          "(the per-case CSV is written beside it)")
    return output.with_suffix(".csv")


def write_report(report: dict, output: str | os.PathLike, overwrite: bool = False) -> tuple[Path, Path]:
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
        raise OutputError(output, f"cannot create the report's directory: {ancestor} "
                                  "is not a directory")


def evaluate_to_files(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike,
                      output: str | os.PathLike, *,
                      missing: MissingPolicy | str = MissingPolicy.ERROR,
                      rvd_convention: RvdConvention | str = RvdConvention.REFERENCE,
                      overwrite: bool = False) -> dict:
    """Checks the outputs can be written, evaluates, writes JSON and CSV, and
    returns the report (its ``failures`` list says whether all cases scored)."""
    output = Path(output)
    check_output(output, overwrite)
    report = evaluate_directories(pred_dir, gt_dir, missing=missing, rvd_convention=rvd_convention)
    write_report(report, output, overwrite=overwrite)
    return report
