"""Loading training volumes from a LiTS-layout NIfTI directory.

With a ``Geometry`` every volume is brought to the model's grid on loading
(reoriented, resampled in-plane: CT linearly and rounded to integer HU,
labels by nearest neighbour), as nnU-Net's preprocessing brings its training
data to the target spacing; without one volumes stay as stored (the original).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

import numpy as np

from liverseg.data.examples import VolumeRecord
from liverseg.data.geometry import Geometry, GridTransform

log = logging.getLogger(__name__)


def _compact(hu: np.ndarray) -> np.ndarray:
    """int16 when the HU values are exactly integral and fit, else float32."""
    if hu.dtype == np.int16:
        return hu
    if hu.size and np.all(np.isfinite(hu)):
        lo, hi = float(hu.min()), float(hu.max())
        if lo >= -32768 and hi <= 32767:
            as_int = hu.astype(np.int16)
            if np.array_equal(as_int, hu):
                return as_int
    return hu.astype(np.float32, copy=False)


def _on_grid(volume, labels, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """CT (int16 HU where it fits) and labels of a case on ``geometry``'s grid."""
    grid = GridTransform.for_nifti(volume, geometry)
    hu = grid.forward(volume.data, order=1)
    if hu is not volume.data and hu.dtype != volume.data.dtype:
        hu = np.rint(hu)
    return _compact(hu), np.ascontiguousarray(grid.forward(labels.data, order=0))


def volume_headers(
    data_dir: str | os.PathLike, case_ids: Sequence[str] | None = None
) -> list[tuple[np.ndarray, tuple[int, ...], tuple[float, ...]]]:
    """``(affine, shape, spacing)`` of every labelled case's volume, from the headers only."""
    from liverseg.data import nifti

    return [
        (h.affine, h.shape, h.spacing)
        for h in (nifti.read_header(c.volume) for c in _cases(data_dir, case_ids))
    ]


def _cases(data_dir, case_ids):
    from liverseg.data import lits

    cases = lits.discover_cases(data_dir, require_labels=True)
    if case_ids is not None:
        wanted = set(case_ids)
        cases = [c for c in cases if c.case_id in wanted]
    return cases


def load_volume_records(
    data_dir: str | os.PathLike,
    *,
    case_ids: Sequence[str] | None = None,
    liver_probability: Callable[[VolumeRecord], np.ndarray] | None = None,
    max_voxels: int | None = None,
    geometry: Geometry | None = None,
) -> list[VolumeRecord]:
    """Loads every labelled case of ``data_dir`` (or those in ``case_ids``).

    ``liver_probability``, when given, is called on each record to fill its
    ``liver_probability`` (the tumour stage's loss mask from a liver model).
    ``geometry``: the grid the records are brought to (None: as stored).
    """
    from liverseg.data import nifti

    kwargs = {} if max_voxels is None else {"max_voxels": max_voxels}
    records = []
    for case in _cases(data_dir, case_ids):
        volume, labels = nifti.load_case(case.volume, case.segmentation, **kwargs)
        if geometry is None:
            hu, label_data = _compact(volume.data), labels.data
        else:
            hu, label_data = _on_grid(volume, labels, geometry)
        record = VolumeRecord(case.case_id, hu, label_data)
        if liver_probability is not None:
            record.liver_probability = liver_probability(record)
        records.append(record)
        log.info(
            "loaded case %s %s%s",
            case.case_id,
            volume.data.shape,
            "" if geometry is None else f" -> {hu.shape} on the model grid",
        )
    return records
