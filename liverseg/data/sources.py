"""Loading training volumes from a LiTS-layout NIfTI directory."""

from __future__ import annotations

import logging
import os
from typing import Callable, Sequence

import numpy as np

from liverseg.data.examples import VolumeRecord

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


def load_volume_records(data_dir: str | os.PathLike, *, case_ids: Sequence[str] | None = None,
                        liver_probability: Callable[[VolumeRecord], np.ndarray] | None = None,
                        max_voxels: int | None = None) -> list[VolumeRecord]:
    """Loads every labelled case of ``data_dir`` (or those in ``case_ids``).

    ``liver_probability``, when given, is called on each record to fill its
    ``liver_probability`` (the tumour stage's loss mask from a liver model).
    """
    from liverseg.data import lits, nifti

    cases = lits.discover_cases(data_dir, require_labels=True)
    if case_ids is not None:
        wanted = set(case_ids)
        cases = [c for c in cases if c.case_id in wanted]
    kwargs = {} if max_voxels is None else {"max_voxels": max_voxels}
    records = []
    for case in cases:
        volume, labels = nifti.load_case(case.volume, case.segmentation, **kwargs)
        record = VolumeRecord(case.case_id, _compact(volume.data), labels.data)
        if liver_probability is not None:
            record.liver_probability = liver_probability(record)
        records.append(record)
        log.info("loaded case %s %s", case.case_id, volume.data.shape)
    return records
