"""Connected-component clean-up of binary 3D masks.

Components use scipy's default structure (6 face neighbours), the same
definition as the LiTS lesion metrics (``liverseg.evaluation.metrics``).
Work is restricted to the mask's bounding box.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from liverseg.utils.arrays import bounding_box


def largest_component(mask: np.ndarray) -> np.ndarray:
    """``mask`` with only its largest connected component (ties: the first
    in scan order); an empty mask stays empty."""
    mask = np.asarray(mask, dtype=bool)
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask)
    if box is None:
        return out
    labels, count = ndimage.label(mask[box])
    if count <= 1:
        out[box] = labels > 0
        return out
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    out[box] = labels == int(np.argmax(sizes))
    return out


def remove_small_components(mask: np.ndarray, min_voxels: float) -> np.ndarray:
    """``mask`` without the connected components of fewer than ``min_voxels`` voxels."""
    mask = np.asarray(mask, dtype=bool)
    if min_voxels <= 1:
        return mask.copy()
    out = np.zeros(mask.shape, bool)
    box = bounding_box(mask)
    if box is None:
        return out
    labels, _ = ndimage.label(mask[box])
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    out[box] = keep[labels]
    return out


def min_voxels_for(volume_mm3: float, spacing) -> float:
    """Voxels of ``volume_mm3`` at ``spacing`` (mm per axis)."""
    return float(volume_mm3) / float(np.prod([float(s) for s in spacing]))
