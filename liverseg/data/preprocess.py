"""Preprocessing exactly as the original pipeline (docs/ORIGINAL.md section 2).

Arrays are indexed as stored in the NIfTI file: ``volume[x, y, z]``, slices
are taken along the third axis, rows are axis 0 and columns axis 1. Nothing
here makes a float64 copy of a volume; scaling works on any slab of slices
given the volume's intensity range, so inference can scale batch by batch.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from liverseg.errors import ConfigError

HU_WINDOW = (-150.0, 250.0)
NUMBER_SLICES = 3
MIN_NET_SIZE = 16
"""Smallest in-plane size the networks accept (four 2x2 poolings)."""
#: The original's ">500 liver pixels" rule, defined at 512x512.
REFERENCE_MIN_LIVER_PIXELS = 500
REFERENCE_AREA = 512 * 512

CropVariant = Literal["original", "paper"]
CROP_VARIANTS = ("original", "paper")


def intensity_range(hu: np.ndarray, window: tuple[float, float] = HU_WINDOW) -> tuple[float, float]:
    """Min and max of the HU-clipped volume.

    ``min(clip(x)) == clip(min(x))``, so no clipped copy is made.
    """
    lo_w, hi_w = window
    lo = float(np.clip(np.min(hu), lo_w, hi_w))
    hi = float(np.clip(np.max(hu), lo_w, hi_w))
    return lo, hi


def window_and_scale(
    hu: np.ndarray,
    lo: float | None = None,
    hi: float | None = None,
    window: tuple[float, float] = HU_WINDOW,
) -> np.ndarray:
    """Clips HU to ``window`` and maps ``[lo, hi]`` to ``[0, 255]`` (float32).

    ``lo``/``hi`` default to the range of ``hu`` itself; pass the whole
    volume's range when scaling a slab of it. A constant volume maps to 0.
    """
    if lo is None or hi is None:
        lo, hi = intensity_range(hu, window)
    # Cast, then clip in place: the same values as clipping first (the window's
    # bounds are exact in float32 and rounding is monotonic), without the float64
    # temporary that clipping an integer array with float bounds makes.
    out = np.asarray(hu).astype(np.float32)
    np.clip(out, window[0], window[1], out=out)
    if hi <= lo:
        out[...] = 0.0
        return out
    out -= np.float32(lo)
    out *= np.float32(255.0) / np.float32(hi - lo)
    return out


def num_triplets(num_slices: int, number_slices: int = NUMBER_SLICES) -> int:
    """Number of consecutive-slice stacks along z (``num_slices - 2`` for triplets)."""
    return max(num_slices - number_slices + 1, 0)


def triplet_indices(num_slices: int, number_slices: int = NUMBER_SLICES) -> np.ndarray:
    """Start slice of every training stack: ``0 .. num_slices - number_slices``."""
    return np.arange(num_triplets(num_slices, number_slices), dtype=np.int64)


def slice_channel(k: int, num_slices: int, number_slices: int = NUMBER_SLICES) -> tuple[int, int]:
    """Which stack and channel give slice ``k`` its test-time prediction.

    Slice k takes the middle channel of the stack centred on it; the first and
    last slices take channel 0 of the first and the last channel of the last
    stack (docs/ORIGINAL.md section 2).
    """
    if num_slices < number_slices:
        raise ValueError(f"need at least {number_slices} slices, got {num_slices}")
    if not 0 <= k < num_slices:
        raise IndexError(f"slice {k} outside 0..{num_slices - 1}")
    half = number_slices // 2
    last = num_slices - number_slices
    start = min(max(k - half, 0), last)
    return start, k - start


SLICE_FUSIONS = ("middle", "mean")
"""How a slice's test-time probability comes from the stacks holding it:
``middle`` (the original): the one stack and channel of :func:`slice_channel`;
``mean``: the average over every stack that contains the slice (up to
``number_slices`` predictions from different neighbourhoods, all of which the
liver stage computes anyway)."""


def slice_stacks(
    k: int, num_slices: int, number_slices: int = NUMBER_SLICES
) -> list[tuple[int, int]]:
    """(stack start, channel) of every stack of consecutive slices that holds slice ``k``."""
    if num_slices < number_slices:
        raise ValueError(f"need at least {number_slices} slices, got {num_slices}")
    if not 0 <= k < num_slices:
        raise IndexError(f"slice {k} outside 0..{num_slices - 1}")
    first = max(k - number_slices + 1, 0)
    last = min(k, num_slices - number_slices)
    return [(s, k - s) for s in range(first, last + 1)]


def binarise(labels: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Labels > threshold as float32 0/1."""
    return (labels > threshold).astype(np.float32)


def min_liver_pixels(height: int, width: int) -> float:
    """The ">500 liver pixels at 512x512" rule scaled by in-plane area."""
    return REFERENCE_MIN_LIVER_PIXELS * (height * width) / REFERENCE_AREA


def roi_slice_mask(liver_mask: np.ndarray, min_pixels: float | None = None) -> np.ndarray:
    """bool[z]: slices whose liver (mask > 0.5) has more than ``min_pixels`` pixels."""
    if min_pixels is None:
        min_pixels = min_liver_pixels(liver_mask.shape[0], liver_mask.shape[1])
    counts = np.count_nonzero(liver_mask > 0.5, axis=(0, 1))
    return counts > min_pixels


@dataclasses.dataclass(frozen=True)
class RoiBox:
    """Inclusive in-plane bounds of the liver over all slices of a volume."""

    row_min: int
    row_max: int
    col_min: int
    col_max: int

    def slices(self, variant: CropVariant = "original") -> tuple[slice, slice]:
        """Row and column slices of the crop.

        ``original`` crops ``[min:max)`` as the original code does (dropping
        the last row and column of the box); ``paper`` crops the whole box.
        """
        if variant not in CROP_VARIANTS:
            raise ValueError(f"unknown crop variant {variant!r}; expected one of {CROP_VARIANTS}")
        extra = 1 if variant == "paper" else 0
        return (
            slice(self.row_min, self.row_max + extra),
            slice(self.col_min, self.col_max + extra),
        )

    def crop_shape(self, variant: CropVariant = "original") -> tuple[int, int]:
        rows, cols = self.slices(variant)
        return rows.stop - rows.start, cols.stop - cols.start

    def to_list(self) -> list[int]:
        return [self.row_min, self.row_max, self.col_min, self.col_max]


def liver_roi_box(liver_mask: np.ndarray) -> RoiBox | None:
    """2D bounding box of ``liver_mask > 0.5`` over all slices; None if empty."""
    mask = liver_mask > 0.5
    rows = np.flatnonzero(mask.any(axis=(1, 2)) if mask.ndim == 3 else mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=(0, 2)) if mask.ndim == 3 else mask.any(axis=0))
    if rows.size == 0:
        return None
    return RoiBox(int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1]))


def crop(array: np.ndarray, box: RoiBox, variant: CropVariant = "original") -> np.ndarray:
    """In-plane crop (axes 0 and 1) of ``array`` to ``box`` (a view)."""
    rows, cols = box.slices(variant)
    return array[rows, cols]


def paste_back(
    cropped: np.ndarray,
    box: RoiBox,
    full_shape: tuple[int, ...],
    variant: CropVariant = "original",
    fill: float = 0,
) -> np.ndarray:
    """Inverse of :func:`crop`: a ``full_shape`` array, ``fill`` outside the box."""
    out = np.full(full_shape, fill, dtype=cropped.dtype)
    rows, cols = box.slices(variant)
    expected = (rows.stop - rows.start, cols.stop - cols.start)
    if cropped.shape[:2] != expected:
        raise ValueError(f"crop has in-plane shape {cropped.shape[:2]}, box expects {expected}")
    out[rows, cols] = cropped
    return out


def check_slice_fusion(fusion: str) -> None:
    """ConfigError unless ``fusion`` is one of ``SLICE_FUSIONS``."""
    if fusion not in SLICE_FUSIONS:
        raise ConfigError(f"slice_fusion must be one of {SLICE_FUSIONS}, got {fusion!r}")


def check_shifts(shifts) -> tuple[tuple[int, int], ...]:
    """``shifts`` as a tuple of distinct non-zero (rows, cols) integer pairs
    (ConfigError otherwise)."""
    out = []
    for shift in shifts:
        if (
            not isinstance(shift, (tuple, list))
            or len(shift) != 2
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shift)
        ):
            raise ConfigError(
                f"tta_shifts: each shift is a (rows, cols) pair of integers, got {shift!r}"
            )
        pair = (int(shift[0]), int(shift[1]))
        if pair == (0, 0) or max(abs(pair[0]), abs(pair[1])) >= MIN_NET_SIZE:
            raise ConfigError(
                f"tta_shifts: {pair} must be non-zero and under {MIN_NET_SIZE} pixels"
            )
        if pair not in out:
            out.append(pair)
    return tuple(out)
