"""LiTS evaluation of a directory of predictions against a directory of
references: case pairing, per-case scoring, aggregation and report files.

Files are paired by case id (``pairing``); the aggregates follow the LiTS
scoring rules (``aggregate``); ``writers`` makes the JSON, CSV and table.

Every reference case is scored on its own: an unreadable file, a shape or
spacing mismatch, labels outside {0, 1, 2}, a case named twice
(``segmentation-3.nii`` and ``segmentation-3.nii.gz``), an unexpected error
or a missing prediction (with ``missing="error"``) becomes an entry of
``report["failures"]`` naming the file, and the other cases are still
scored. Entries not named like segmentations are skipped, logged and listed
in ``report["ignored"]``. Aggregates cover the scored cases only.
"""

from __future__ import annotations

import enum
import logging
import os
from pathlib import Path

import numpy as np

from liverseg.data.nifti import load_labels, read_header
from liverseg.errors import ConfigError, LayoutError, LiverSegError, NiftiError
from liverseg.evaluation.aggregate import (
    LESION_MEAN_KEYS,
    LIVER_CASE_KEYS,
    TUMOR_CASE_KEYS,
    VOLUME_CASE_KEYS,
    aggregate,
    burden_scores,
)
from liverseg.evaluation.metrics import RvdConvention, case_metrics
from liverseg.evaluation.pairing import (
    Scan,
    _case_sort_key,
    _expected_name,
    _log_ignored,
    case_id_from_name,
    find_segmentations,
    scan_segmentations,
)
from liverseg.evaluation.writers import (
    CSV_COLUMNS,
    check_output,
    csv_path_for,
    format_table,
    report_csv,
    write_report,
)

logger = logging.getLogger(__name__)

__all__ = [
    "CSV_COLUMNS",
    "LESION_MEAN_KEYS",
    "LIVER_CASE_KEYS",
    "MissingPolicy",
    "Scan",
    "TUMOR_CASE_KEYS",
    "aggregate",
    "case_id_from_name",
    "check_output",
    "csv_path_for",
    "evaluate_case",
    "evaluate_directories",
    "evaluate_to_files",
    "find_segmentations",
    "format_table",
    "report_csv",
    "scan_segmentations",
    "write_report",
]

SPACING_RTOL = 1e-4
"""Relative tolerance when comparing prediction and reference voxel spacing."""


class MissingPolicy(str, enum.Enum):
    """What to do with a reference case that has no prediction file."""

    ERROR = "error"
    EMPTY = "empty"


def _header_shape(volume) -> tuple[int, ...]:
    # read_header leaves data empty; trailing singleton axes are accepted by nifti.
    return tuple(int(n) for n in volume.header.get_data_shape()[:3])


def _format_spacing(spacing) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in spacing) + ")"


def evaluate_case(
    pred_path: Path | None,
    gt_path: Path,
    rvd_convention: RvdConvention | str = RvdConvention.REFERENCE,
) -> dict:
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
            raise NiftiError(
                pred_path,
                f"shape {_header_shape(pred_header)} does not match the "
                f"reference {gt_path} shape {ref_shape}",
            )
        if not np.allclose(pred_header.spacing, spacing, rtol=SPACING_RTOL, atol=0.0):
            raise NiftiError(
                pred_path,
                f"voxel spacing {_format_spacing(pred_header.spacing)} "
                f"does not match the reference {gt_path} spacing "
                f"{_format_spacing(spacing)}",
            )
    # load_labels rejects values outside {0, 1, 2}, naming the file.
    reference = load_labels(gt_path).data
    pred = np.zeros(ref_shape, dtype=np.uint8) if pred_path is None else load_labels(pred_path).data
    return case_metrics(pred, reference, spacing, rvd_convention=rvd_convention)


def evaluate_directories(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    missing: MissingPolicy | str = MissingPolicy.ERROR,
    rvd_convention: RvdConvention | str = RvdConvention.REFERENCE,
) -> dict:
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
        raise LayoutError(
            gt_dir, "no segmentation-N.nii[.gz] or test-segmentation-N.nii[.gz] files"
        )
    pred_scan = scan_segmentations(pred_dir)
    predictions = pred_scan.found
    _log_ignored(gt_dir, gt_scan.ignored)
    _log_ignored(pred_dir, pred_scan.ignored)

    cases, results, failures, scored_empty = [], [], [], []
    reference_ids = sorted(set(references) | set(gt_scan.duplicates), key=_case_sort_key)
    for case_id in reference_ids:
        duplicates = gt_scan.duplicates.get(case_id) or pred_scan.duplicates.get(case_id)
        if duplicates:
            error = (
                f"{duplicates[1]}: case {case_id} appears twice (also {duplicates[0].name}); "
                "remove one"
            )
            failures.append({"case": case_id, "path": str(duplicates[1]), "error": error})
            logger.error("case %s: %s", case_id, error)
            continue
        gt_path = references[case_id]
        pred_path = predictions.get(case_id)
        if pred_path is None and missing is MissingPolicy.ERROR:
            expected = Path(pred_dir) / _expected_name(case_id)
            failures.append(
                {
                    "case": case_id,
                    "path": str(expected),
                    "error": f"{expected}: prediction missing (no {expected.name}[.gz]); "
                    "pass --missing=empty to score it as empty",
                }
            )
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
        cases.append(
            {
                "case": case_id,
                "liver": {k: result["liver"][k] for k in LIVER_CASE_KEYS},
                "tumor": {k: result["tumor"][k] for k in TUMOR_CASE_KEYS},
                "volumes": {k: result["volumes"][k] for k in VOLUME_CASE_KEYS},
            }
        )
        logger.info(
            "case %s: liver dice %.4f, tumour dice %.4f",
            case_id,
            result["liver"]["dice"],
            result["tumor"]["dice"],
        )

    liver, tumor = aggregate(results)
    return {
        "tumor_burden": burden_scores(results),
        "cases": cases,
        "liver": liver,
        "tumor": tumor,
        "rvd_convention": rvd_convention.value,
        "missing": missing.value,
        "missing_predictions": scored_empty,
        "unmatched_predictions": [str(p) for c, p in predictions.items() if c not in references]
        + [
            str(p)
            for c, paths in pred_scan.duplicates.items()
            if c not in reference_ids
            for p in paths
        ],
        "failures": failures,
        "ignored": [str(p) for p in gt_scan.ignored + pred_scan.ignored],
    }


def evaluate_to_files(
    pred_dir: str | os.PathLike,
    gt_dir: str | os.PathLike,
    output: str | os.PathLike,
    *,
    missing: MissingPolicy | str = MissingPolicy.ERROR,
    rvd_convention: RvdConvention | str = RvdConvention.REFERENCE,
    overwrite: bool = False,
) -> dict:
    """Checks the outputs can be written, evaluates, writes JSON and CSV, and
    returns the report (its ``failures`` list says whether all cases scored)."""
    output = Path(output)
    check_output(output, overwrite)
    report = evaluate_directories(pred_dir, gt_dir, missing=missing, rvd_convention=rvd_convention)
    write_report(report, output, overwrite=overwrite)
    return report
