"""Per-case LiTS metrics: structure definitions, overlap conventions, lesion detection."""

import math

import numpy as np
import pytest

from liverseg.evaluation.metrics import (
    Overlap,
    RvdConvention,
    case_metrics,
    check_labels,
    detect_lesions,
)

SPACING = (0.8, 0.8, 2.5)


def box(labels, lo, hi, value):
    labels[tuple(slice(a, b) for a, b in zip(lo, hi))] = value


def test_overlap_values():
    o = Overlap(intersection=48, pred=64, ref=80)
    assert o.dice() == pytest.approx(96 / 144)
    assert o.voe() == pytest.approx(1 - 48 / 96)
    assert o.rvd() == pytest.approx((64 - 80) / 80)
    assert o.rvd("scoring_program") == pytest.approx((80 - 64) / 64)
    assert o.rvd(RvdConvention.SCORING_PROGRAM) == o.rvd("scoring_program")


def test_overlap_empty_conventions():
    both_empty = Overlap(0, 0, 0)
    assert both_empty.dice() == 1.0 and both_empty.voe() == 0.0 and both_empty.rvd() == 0.0
    missed = Overlap(0, 0, 10)
    assert missed.dice() == 0.0 and missed.voe() == 1.0
    assert missed.rvd() == -1.0 and missed.rvd("scoring_program") is None
    with pytest.raises(ValueError):
        missed.rvd("absolute")


def test_liver_includes_tumour_and_tumour_is_label_2():
    ref = np.zeros((12, 12, 8), np.uint8)
    box(ref, (2, 2, 2), (10, 10, 6), 1)
    box(ref, (4, 4, 3), (6, 6, 5), 2)
    pred = ref.copy()
    pred[pred == 2] = 1  # tumour called liver: liver perfect, tumour missed
    m = case_metrics(pred, ref, SPACING)
    assert m["liver"]["dice"] == 1.0 and m["liver"]["assd"] == 0.0
    assert m["tumor"] == {
        "dice": 0.0,
        "num_reference_lesions": 1,
        "num_predicted_lesions": 0,
        "num_detected": 0,
    }
    assert m["overlap"]["tumor"] == Overlap(0, 0, 8)


def test_tumour_free_case_scores_one():
    ref = np.zeros((10, 10, 6), np.uint8)
    box(ref, (2, 2, 1), (8, 8, 5), 1)
    m = case_metrics(ref, ref, SPACING)
    assert m["tumor"]["dice"] == 1.0
    assert m["tumor"]["num_reference_lesions"] == m["tumor"]["num_predicted_lesions"] == 0
    assert m["lesions"] == []


def test_empty_liver_prediction_is_9001():
    ref = np.zeros((10, 10, 6), np.uint8)
    box(ref, (2, 2, 1), (8, 8, 5), 1)
    m = case_metrics(np.zeros_like(ref), ref, SPACING)
    assert m["liver"] == {
        "dice": 0.0,
        "voe": 1.0,
        "rvd": -1.0,
        "assd": 9001.0,
        "msd": 9001.0,
        "rmsd": 9001.0,
    }


def test_shifted_liver_case_values():
    ref = np.zeros((8, 8, 8), np.uint8)
    pred = np.zeros_like(ref)
    box(ref, (2, 2, 2), (6, 6, 6), 1)
    box(pred, (2, 2, 1), (6, 6, 5), 1)
    m = case_metrics(pred, ref, (1.0, 1.0, 2.5))["liver"]
    assert m["dice"] == 0.75 and m["voe"] == pytest.approx(0.4) and m["rvd"] == 0.0
    assert m["msd"] == 2.5 and m["assd"] == pytest.approx(88 / 112)
    assert m["rmsd"] == pytest.approx(math.sqrt(208 / 112))


def lesion_scene():
    """Two reference lesions; lesion A predicted exactly, lesion B hit with
    IoU 1/3, plus one false-positive blob."""
    ref = np.zeros((40, 20, 10), np.uint8)
    box(ref, (1, 1, 1), (39, 19, 9), 1)
    pred = ref.copy()
    box(ref, (4, 4, 2), (8, 8, 6), 2)  # A: 64 voxels
    box(ref, (20, 4, 2), (24, 8, 6), 2)  # B: 64 voxels
    box(pred, (4, 4, 2), (8, 8, 6), 2)  # A exactly
    box(pred, (20, 4, 4), (24, 8, 8), 2)  # B shifted by 2 slices: 32 common, union 96
    box(pred, (30, 12, 3), (32, 14, 5), 2)  # false positive
    return pred, ref


def test_two_lesions_one_detected():
    pred, ref = lesion_scene()
    m = case_metrics(pred, ref, SPACING)
    assert m["tumor"]["num_reference_lesions"] == 2
    assert m["tumor"]["num_predicted_lesions"] == 3
    assert m["tumor"]["num_detected"] == 1
    assert m["tumor"]["dice"] == pytest.approx(2 * (64 + 32) / (64 + 64 + 64 + 64 + 8))
    (lesion,) = m["lesions"]
    assert lesion["iou"] == 1.0 and lesion["dice"] == 1.0 and lesion["assd"] == 0.0
    det = detect_lesions(pred == 2, ref == 2)
    assert det.false_positives == 2 and det.false_negatives == 1


def test_detection_needs_iou_strictly_above_half():
    ref = np.zeros((10, 10, 10), np.uint8)
    pred = np.zeros_like(ref)
    box(ref, (2, 2, 2), (4, 4, 4), 2)  # 8 voxels
    box(pred, (2, 2, 2), (4, 4, 3), 2)  # 4 of them: IoU exactly 0.5
    assert detect_lesions(pred == 2, ref == 2).num_detected == 0
    box(pred, (2, 2, 3), (3, 3, 4), 2)  # 5 of 8: IoU 0.625
    det = detect_lesions(pred == 2, ref == 2)
    assert det.num_detected == 1 and det.matches[0][2] == pytest.approx(5 / 8)


def test_lesions_are_6_connected():
    ref = np.zeros((10, 10, 10), np.uint8)
    box(ref, (2, 2, 2), (4, 4, 4), 2)
    box(ref, (4, 4, 2), (6, 6, 4), 2)  # touches the first along an edge only
    det = detect_lesions(ref == 2, ref == 2)
    assert det.num_reference == det.num_predicted == det.num_detected == 2


def test_prediction_covering_two_lesions_detects_at_most_one():
    ref = np.zeros((20, 10, 10), np.uint8)
    box(ref, (2, 2, 2), (8, 6, 6), 2)  # 96 voxels
    box(ref, (9, 2, 2), (11, 6, 6), 2)  # 32 voxels
    pred = np.zeros_like(ref)
    box(pred, (2, 2, 2), (11, 6, 6), 2)  # one blob over both: IoU 96/144 and 32/144
    det = detect_lesions(pred == 2, ref == 2)
    assert det.num_predicted == 1 and det.num_detected == 1
    assert det.matches[0][:2] == (1, 1)


def test_check_labels_rejects_unknown_values():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[0, 0, 0] = 3
    with pytest.raises(ValueError, match=r"outside \{0, 1, 2\}.*3"):
        check_labels(labels)
    with pytest.raises(ValueError, match="3D"):
        check_labels(np.zeros((4, 4), np.uint8))
    assert check_labels(np.array([[[0, 1, 2]]], dtype=np.int16)).shape == (1, 1, 3)


def test_case_metrics_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        case_metrics(np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 5), np.uint8), SPACING)
