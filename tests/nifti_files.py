"""Single-file NIfTI-1 bytes written by hand, so that any header field can be
wrong: shared by the NIfTI reader tests and the reliability battery."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np


def make_header(shape, dtype, affine, codes=(1, 1), endian="<", **fields) -> nib.Nifti1Header:
    """A NIfTI-1 header with ``affine`` as qform/sform (``codes``), mm units,
    vox_offset 352; ``fields`` override header fields (``dim`` and ``pixdim``
    set their leading entries only)."""
    hdr = nib.Nifti1Header(endianness=endian)
    hdr.set_data_dtype(dtype)
    hdr.set_data_shape(shape)
    hdr.set_qform(affine, code=codes[0])
    hdr.set_sform(affine, code=codes[1])
    hdr.set_xyzt_units("mm", "sec")
    hdr["vox_offset"] = 352
    for key, value in fields.items():
        if key == "dim":
            hdr["dim"][: len(value)] = value
        elif key == "pixdim":
            hdr["pixdim"][1 : 1 + len(value)] = value
        else:
            hdr[key] = value
    return hdr


def nifti_bytes(data, hdr: nib.Nifti1Header | None = None, *, affine, **fields) -> bytes:
    """Header, 4 empty extension bytes, data in Fortran order; without ``hdr``
    the header is ``make_header(data.shape, data.dtype, affine, **fields)``."""
    data = np.asarray(data)
    if hdr is None:
        hdr = make_header(data.shape, data.dtype, affine, **fields)
    return hdr.binaryblock + b"\x00" * 4 + data.astype(hdr.get_data_dtype()).tobytes(order="F")


def store(path: Path, payload: bytes, compress: bool | None = None) -> Path:
    """Writes ``payload``, gzip-compressed when the name ends in .gz (or ``compress``)."""
    if compress is None:
        compress = str(path).endswith(".gz")
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
    return path
