"""Per-case LiTS metrics: liver overlap and surface scores, tumour Dice and
lesion detection (definitions of docs/ORIGINAL.md section 7).

Structures: liver = label >= 1 (tumour is inside the liver), tumour = label == 2.

Overlap conventions:
- Dice of two empty masks is 1 (the LiTS benchmark paper's convention for
  tumour-free cases); VOE = 1 - Jaccard, so two empty masks give 0.
- RVD has two conventions (``RvdConvention``): ``reference`` (default) is
  (|P| - |G|) / |G|; ``scoring_program`` is what the LiTS scoring program
  actually computes, having passed the arguments the other way round:
  (|G| - |P|) / |P| (sign flipped, divided by the prediction). A zero
  denominator gives 0 when both volumes are 0 and None (undefined) otherwise.

Lesion detection: lesions are the connected components of each tumour mask
under scipy's default 6-neighbour structure. Each reference lesion is matched
to the predicted component with which it shares the most voxels (ties go to
the lower component label) and counts as detected when their IoU is > 0.5.
IoU > 0.5 means more than half of each lies inside the other, so at most one
predicted component can pass for a given reference lesion and vice versa: the
matching is one-to-one, and "the best-overlapping component has IoU > 0.5"
is the same as "some component has IoU > 0.5". Detected reference lesions are
true positives, undetected ones false negatives, and predicted components not
matched to a detected lesion false positives. Per-lesion Dice, VOE, RVD and
surface distances compare a detected reference lesion with its matched
predicted component, using the reference spacing.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from liverseg.evaluation.surface import bounding_box, surface_distances

LESION_STRUCTURE = ndimage.generate_binary_structure(3, 1)
"""scipy's default (6-neighbour) connectivity, used to split tumour into lesions."""

DETECTION_IOU = 0.5
"""A reference lesion is detected when its matched prediction has IoU above this."""

VALID_LABELS = (0, 1, 2)


class RvdConvention(str, enum.Enum):
    """Which relative volume difference is reported (see module docstring)."""

    REFERENCE = "reference"
    SCORING_PROGRAM = "scoring_program"


@dataclass(frozen=True)
class Overlap:
    """Voxel counts of one structure in one case; enough for every overlap metric."""

    intersection: int
    pred: int
    ref: int

    @classmethod
    def of(cls, pred: np.ndarray, ref: np.ndarray) -> Overlap:
        return cls(
            int(np.count_nonzero(pred & ref)),
            int(np.count_nonzero(pred)),
            int(np.count_nonzero(ref)),
        )

    def dice(self) -> float:
        total = self.pred + self.ref
        return 1.0 if total == 0 else 2.0 * self.intersection / total

    def jaccard(self) -> float:
        union = self.pred + self.ref - self.intersection
        return 1.0 if union == 0 else self.intersection / union

    def voe(self) -> float:
        return 1.0 - self.jaccard()

    def rvd(self, convention: RvdConvention | str = RvdConvention.REFERENCE) -> float | None:
        convention = RvdConvention(convention)
        if convention is RvdConvention.REFERENCE:
            num, den = self.pred - self.ref, self.ref
        else:
            num, den = self.ref - self.pred, self.pred
        if den == 0:
            return 0.0 if num == 0 else None
        return num / den


def check_labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Returns ``labels`` if it is a 3D map with values in {0, 1, 2}; raises ValueError."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"{name}: expected a 3D label map, got shape {labels.shape}")
    if labels.dtype == np.uint8:
        bad = labels.max(initial=0) > 2
    else:
        bad = not np.isin(labels, VALID_LABELS).all()
    if bad:
        found = np.unique(labels)
        extra = [v.item() for v in found if v not in VALID_LABELS][:5]
        raise ValueError(f"{name}: labels outside {{0, 1, 2}} found: {extra}")
    return labels


def segmentation_scores(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float],
    rvd_convention: RvdConvention | str = RvdConvention.REFERENCE,
    overlap: Overlap | None = None,
) -> dict:
    """Dice, VOE, RVD and ASSD/MSD/RMSD (mm) of two binary masks
    (``overlap``: their voxel counts, if already known)."""
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if overlap is None:
        overlap = Overlap.of(pred, ref)
    scores = {"dice": overlap.dice(), "voe": overlap.voe(), "rvd": overlap.rvd(rvd_convention)}
    scores.update(surface_distances(pred, ref, spacing).as_dict())
    return scores


@dataclass(frozen=True)
class LesionDetection:
    """Result of matching reference lesions to predicted components.

    ``matches`` holds one ``(reference_label, predicted_label, iou)`` per
    detected reference lesion; labels refer to ``ref_lesions`` and
    ``pred_lesions``, the component maps of the cropped tumour masks.
    """

    num_reference: int
    num_predicted: int
    matches: tuple[tuple[int, int, float], ...]
    ref_lesions: np.ndarray
    pred_lesions: np.ndarray

    @property
    def num_detected(self) -> int:
        return len(self.matches)

    @property
    def false_positives(self) -> int:
        return self.num_predicted - self.num_detected

    @property
    def false_negatives(self) -> int:
        return self.num_reference - self.num_detected


def detect_lesions(pred_tumor: np.ndarray, ref_tumor: np.ndarray) -> LesionDetection:
    """Labels the lesions of both tumour masks and finds the detected ones.

    Work is restricted to the bounding box of both masks; the returned
    component maps cover that box only.
    """
    pred_tumor = np.asarray(pred_tumor, dtype=bool)
    ref_tumor = np.asarray(ref_tumor, dtype=bool)
    box = bounding_box(pred_tumor | ref_tumor)
    if box is None:
        empty = np.zeros((0, 0, 0), dtype=np.int32)
        return LesionDetection(0, 0, (), empty, empty)
    ref_lesions, n_ref = ndimage.label(ref_tumor[box], structure=LESION_STRUCTURE)
    pred_lesions, n_pred = ndimage.label(pred_tumor[box], structure=LESION_STRUCTURE)
    matches = []
    if n_ref and n_pred:
        ref_size = np.bincount(ref_lesions.ravel(), minlength=n_ref + 1)
        pred_size = np.bincount(pred_lesions.ravel(), minlength=n_pred + 1)
        both = (ref_lesions > 0) & (pred_lesions > 0)
        pair = ref_lesions[both].astype(np.int64) * (n_pred + 1) + pred_lesions[both]
        inter = np.bincount(pair, minlength=(n_ref + 1) * (n_pred + 1)).reshape(
            n_ref + 1, n_pred + 1
        )
        for r in range(1, n_ref + 1):
            p = int(np.argmax(inter[r, 1:])) + 1
            common = int(inter[r, p])
            if common == 0:
                continue
            iou = common / (ref_size[r] + pred_size[p] - common)
            if iou > DETECTION_IOU:
                matches.append((r, p, float(iou)))
    return LesionDetection(n_ref, n_pred, tuple(matches), ref_lesions, pred_lesions)


def lesion_scores(
    detection: LesionDetection,
    spacing: Sequence[float],
    rvd_convention: RvdConvention | str = RvdConvention.REFERENCE,
) -> list[dict]:
    """Segmentation scores of every detected lesion against its matched prediction."""
    out = []
    if not detection.matches:
        return out
    ref_boxes = ndimage.find_objects(detection.ref_lesions)
    pred_boxes = ndimage.find_objects(detection.pred_lesions)
    for r, p, iou in detection.matches:
        rb, pb = ref_boxes[r - 1], pred_boxes[p - 1]
        box = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(rb, pb))
        scores = segmentation_scores(
            detection.pred_lesions[box] == p,
            detection.ref_lesions[box] == r,
            spacing,
            rvd_convention,
        )
        out.append({"reference_lesion": r, "predicted_lesion": p, "iou": iou, **scores})
    return out


def volume_scores(liver: Overlap, tumor: Overlap, spacing: Sequence[float]) -> dict:
    """Liver volumes (ml) and tumour burdens (tumour / liver volume) of a case, both sides.

    The liver is labels 1 and 2 (the whole organ), as in the LiTS
    tumour-burden task; a case without liver has burden 0.
    """
    voxel_ml = float(np.prod(spacing)) / 1000.0

    def burden(tumour: int, liver: int) -> float:
        return tumour / liver if liver else 0.0

    return {
        "liver_ml": liver.pred * voxel_ml,
        "reference_liver_ml": liver.ref * voxel_ml,
        "liver_volume_error_ml": (liver.pred - liver.ref) * voxel_ml,
        "tumor_burden": burden(tumor.pred, liver.pred),
        "reference_tumor_burden": burden(tumor.ref, liver.ref),
    }


def case_metrics(
    pred_labels: np.ndarray,
    ref_labels: np.ndarray,
    spacing: Sequence[float],
    *,
    rvd_convention: RvdConvention | str = RvdConvention.REFERENCE,
) -> dict:
    """All LiTS metrics of one case.

    ``spacing`` is the reference's voxel size in mm along the three array
    axes. Returns a dict with the report's per-case entries
    ``liver`` (dice, voe, rvd, assd, msd, rmsd) and ``tumor`` (dice,
    num_reference_lesions, num_predicted_lesions, num_detected), plus what
    aggregation needs: ``overlap`` (voxel counts per structure, for global
    Dice) and ``lesions`` (scores of each detected lesion).
    """
    pred_labels = check_labels(pred_labels, "prediction")
    ref_labels = check_labels(ref_labels, "reference")
    if pred_labels.shape != ref_labels.shape:
        raise ValueError(
            f"prediction shape {pred_labels.shape} != reference shape {ref_labels.shape}"
        )
    rvd_convention = RvdConvention(rvd_convention)

    pred_liver, ref_liver = pred_labels >= 1, ref_labels >= 1
    liver_overlap = Overlap.of(pred_liver, ref_liver)
    liver = segmentation_scores(pred_liver, ref_liver, spacing, rvd_convention, liver_overlap)
    del pred_liver, ref_liver

    pred_tumor, ref_tumor = pred_labels == 2, ref_labels == 2
    tumor_overlap = Overlap.of(pred_tumor, ref_tumor)
    detection = detect_lesions(pred_tumor, ref_tumor)
    return {
        "volumes": volume_scores(liver_overlap, tumor_overlap, spacing),
        "liver": liver,
        "tumor": {
            "dice": tumor_overlap.dice(),
            "num_reference_lesions": detection.num_reference,
            "num_predicted_lesions": detection.num_predicted,
            "num_detected": detection.num_detected,
        },
        "overlap": {"liver": liver_overlap, "tumor": tumor_overlap},
        "lesions": lesion_scores(detection, spacing, rvd_convention),
    }
