"""NIfTI in and out: ``reader`` (strict, validated loading), ``writer`` (atomic
outputs keeping the reference's geometry) and the ``NiftiVolume`` they share.

Everything a caller needs is importable from here (``from liverseg.data
import nifti; nifti.load_ct(path)``).
"""

from liverseg.data.nifti.reader import load_case, load_ct, load_labels, read_header
from liverseg.data.nifti.volume import DEFAULT_MAX_VOXELS, LABEL_VALUES, NiftiVolume
from liverseg.data.nifti.writer import save_ct, save_labels, save_probabilities

__all__ = [
    "DEFAULT_MAX_VOXELS",
    "LABEL_VALUES",
    "NiftiVolume",
    "load_case",
    "load_ct",
    "load_labels",
    "read_header",
    "save_ct",
    "save_labels",
    "save_probabilities",
]
