"""Aggregating per-case LiTS scores over a set of cases.

Aggregates (docs/ORIGINAL.md section 7): liver ``dice_per_case`` and the liver
VOE/RVD/ASSD/MSD/RMSD are means over cases (9001 values included, as in the
scoring program; undefined RVDs left out); ``dice_global`` is
2 * sum(intersections) / sum(sizes) over all cases. Tumour ``precision`` and
``recall`` pool lesion TP/FP/FN over cases; tumour VOE/RVD/ASSD/MSD/RMSD
(and the extra ``dice_per_lesion``) are means over all detected lesions.
A metric with nothing to average is None (JSON null).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from liverseg.evaluation.metrics import Overlap

LIVER_CASE_KEYS = ("dice", "voe", "rvd", "assd", "msd", "rmsd")
TUMOR_CASE_KEYS = ("dice", "num_reference_lesions", "num_predicted_lesions", "num_detected")
LESION_MEAN_KEYS = ("voe", "rvd", "assd", "msd", "rmsd")
VOLUME_CASE_KEYS = (
    "liver_ml",
    "reference_liver_ml",
    "liver_volume_error_ml",
    "tumor_burden",
    "reference_tumor_burden",
)


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _global_dice(overlaps: Sequence[Overlap]) -> float | None:
    if not overlaps:
        return None
    total = Overlap(
        sum(o.intersection for o in overlaps),
        sum(o.pred for o in overlaps),
        sum(o.ref for o in overlaps),
    )
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
    tumor.update(
        {
            "dice_per_lesion": _mean(lesion["dice"] for lesion in lesions),
            "num_reference_lesions": n_ref,
            "num_predicted_lesions": n_pred,
            "num_detected": tp,
            "false_positives": n_pred - tp,
            "false_negatives": n_ref - tp,
        }
    )
    return liver, tumor


def burden_scores(results: Sequence[dict]) -> dict:
    """The LiTS tumour-burden score: RMSE and largest absolute error of the burden over cases."""
    errors = [
        r["volumes"]["tumor_burden"] - r["volumes"]["reference_tumor_burden"] for r in results
    ]
    if not errors:
        return {"rmse": None, "max_error": None}
    errors = np.asarray(errors, np.float64)
    return {
        "rmse": float(np.sqrt(np.mean(errors**2))),
        "max_error": float(np.max(np.abs(errors))),
    }
