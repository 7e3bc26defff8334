"""The loaded-volume type and what reading and writing share."""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np

DEFAULT_MAX_VOXELS = 2**30
"""Largest declared voxel count accepted on read (about 2 GiB of int16)."""

LABEL_VALUES = (0, 1, 2)
"""Background, liver, tumour."""

_SLAB_VOXELS = 2**22  # voxels converted at a time (32 MiB of float64 scratch)


@dataclasses.dataclass(frozen=True, eq=False)
class NiftiVolume:
    """A validated 3D volume: data (x, y, z as stored), affine, header, spacing."""

    data: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header
    spacing: tuple[float, float, float]
    path: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)


def _slabs(shape: tuple[int, int, int]):
    step = max(1, _SLAB_VOXELS // max(1, shape[0] * shape[1]))
    for z0 in range(0, shape[2], step):
        yield slice(z0, min(z0 + step, shape[2]))
