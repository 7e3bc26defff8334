"""Training examples of both stages, as numpy, from loaded volumes.

One example is a stack of ``number_slices`` consecutive slices (channels):

- ``liver``: the whole slices; label = segmentation > 0.5 (liver and tumour);
  loss mask = ones.
- ``tumor``: the slices cropped to the volume's liver ROI box (from the
  ground-truth liver, docs/ORIGINAL.md section 2), for the stacks whose middle slice
  has more liver than :func:`~liverseg.data.preprocess.min_liver_pixels`;
  label = segmentation == 2; loss mask = the ground-truth liver or a liver
  model's probability on the crop.

Images stay in HU (compact dtype) with the volume's intensity range ``lo``,
``hi``, so that windowing and scaling happen in the tf.data pipeline and the
same records serve NIfTI directories and TFRecords alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from liverseg.data import preprocess as pp

STAGES = ("liver", "tumor")


@dataclasses.dataclass
class VolumeRecord:
    """A loaded training volume with what both stages need."""

    case_id: str
    hu: np.ndarray  # [x, y, z], int16 or float32
    labels: np.ndarray  # [x, y, z], uint8 0/1/2
    liver_probability: np.ndarray | None = None  # [x, y, z] float32, tumour loss mask

    @property
    def intensity_range(self) -> tuple[float, float]:
        return pp.intensity_range(self.hu)


@dataclasses.dataclass(frozen=True)
class Example:
    case_id: str
    start: int
    hu: np.ndarray  # [h, w, c]
    lo: float
    hi: float
    label: np.ndarray  # [h, w, c] uint8 0/1
    mask: np.ndarray  # [h, w, c] float32


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    return stage


def tumor_starts(labels: np.ndarray, number_slices: int = pp.NUMBER_SLICES) -> np.ndarray:
    """Stack starts used for tumour training: middle slice passes the liver rule."""
    roi = pp.roi_slice_mask(labels >= 1)
    half = number_slices // 2
    starts = pp.triplet_indices(labels.shape[2], number_slices)
    return starts[roi[starts + half]] if starts.size else starts


def iter_examples(
    record: VolumeRecord,
    stage: str,
    number_slices: int = pp.NUMBER_SLICES,
    crop_variant: pp.CropVariant = "original",
    mask_source: str = "gt",
) -> Iterator[Example]:
    """Yields the examples of one volume for ``stage``.

    ``mask_source`` is ``"gt"`` (ground-truth liver) or ``"model"`` (the
    record's ``liver_probability``) and only matters for the tumour stage.
    """
    check_stage(stage)
    lo, hi = record.intensity_range
    if stage == "liver":
        ones = None
        for k in pp.triplet_indices(record.hu.shape[2], number_slices):
            sl = slice(k, k + number_slices)
            label = (record.labels[:, :, sl] > 0.5).astype(np.uint8)
            if ones is None:
                ones = np.ones(label.shape, np.float32)
            yield Example(
                record.case_id,
                int(k),
                np.ascontiguousarray(record.hu[:, :, sl]),
                lo,
                hi,
                label,
                ones,
            )
        return
    liver = record.labels >= 1
    box = pp.liver_roi_box(liver)
    if box is None:
        return
    if mask_source == "gt":
        mask_volume = liver
    elif mask_source == "model":
        if record.liver_probability is None:
            raise ValueError(
                f"case {record.case_id}: no liver probabilities for mask_source='model'"
            )
        mask_volume = record.liver_probability
    else:
        raise ValueError(f"unknown mask source {mask_source!r}; expected 'gt' or 'model'")
    rows, cols = box.slices(crop_variant)
    for k in tumor_starts(record.labels, number_slices):
        sl = slice(k, k + number_slices)
        yield Example(
            record.case_id,
            int(k),
            np.ascontiguousarray(record.hu[rows, cols, sl]),
            lo,
            hi,
            (record.labels[rows, cols, sl] == 2).astype(np.uint8),
            np.ascontiguousarray(mask_volume[rows, cols, sl], dtype=np.float32),
        )
