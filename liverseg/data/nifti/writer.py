"""NIfTI writing: label maps, probability maps and CT volumes, atomically.

Outputs keep the reference volume's affine and header (data type and scaling
set for what is written); gzip output is byte-deterministic (mtime 0); a file
is written to a temporary name and renamed into place, never over an existing
output unless asked to.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np

from liverseg.data.nifti.checks import fixed_header
from liverseg.data.nifti.volume import LABEL_VALUES, NiftiVolume, _slabs
from liverseg.errors import OutputError
from liverseg.utils.atomic import atomic_path


def _output_is_gzip(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return True
    if name.endswith(".nii"):
        return False
    raise OutputError(path, "output name must end in .nii or .nii.gz")


def _prepare_header(
    header: nib.Nifti1Header | None,
    affine: np.ndarray,
    shape: tuple,
    dtype: np.dtype,
    path: str | os.PathLike,
) -> nib.Nifti1Header:
    if header is None:
        hdr = nib.Nifti1Header()
        hdr.set_xyzt_units("mm", "sec")
        hdr.set_qform(affine, code="scanner")
        hdr.set_sform(affine, code="scanner")
    else:
        hdr = fixed_header(header, path)
        if not np.allclose(hdr.get_best_affine(), affine, rtol=0.0, atol=1e-6):
            hdr.set_sform(affine, code=int(hdr["sform_code"]) or "scanner")
            hdr.set_qform(affine, code=int(hdr["qform_code"]) or "scanner")
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr["scl_slope"] = 1.0
    hdr["scl_inter"] = 0.0
    hdr["cal_min"] = 0.0
    hdr["cal_max"] = 0.0
    hdr["vox_offset"] = 0  # recomputed by write_to from the extensions
    return hdr


def _write(
    path: str | os.PathLike,
    data: np.ndarray,
    hdr: nib.Nifti1Header,
    overwrite: bool,
    compresslevel: int,
) -> Path:
    """Writes header and data atomically; gzip output is byte-deterministic.

    A full disk, a read-only directory or any other OS error is an
    ``OutputError`` naming the file; the temporary file is removed and
    nothing appears under the final name.
    """
    final = Path(path)
    try:
        return _write_atomically(final, data, hdr, overwrite, compresslevel)
    except OSError as exc:
        raise OutputError(final, f"cannot write ({exc.strerror or exc}); nothing written") from None


def _write_atomically(
    final: Path, data: np.ndarray, hdr: nib.Nifti1Header, overwrite: bool, compresslevel: int
) -> Path:
    is_gzip = _output_is_gzip(final)
    stored = hdr.get_data_dtype()  # carries the header's byte order
    with atomic_path(final, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as raw:
            out = (
                gzip.GzipFile(
                    filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel
                )
                if is_gzip
                else raw
            )
            hdr.write_to(out)
            for sl in _slabs(data.shape):
                out.write(np.asarray(data[:, :, sl], dtype=stored).tobytes(order="F"))
            if is_gzip:
                out.close()
            raw.flush()
            os.fsync(raw.fileno())
        _check_reopens(tmp, final, data.shape)
    return final


@contextlib.contextmanager
def _nibabel_quiet() -> Iterator[None]:
    """nibabel's header-check messages dropped for the block (its own
    ``LoggingOutputSuppressor`` loses nibabel's handler for good, after which
    every later message reaches the root logger without a file name)."""
    log = nib.imageglobals.logger
    was = log.disabled
    log.disabled = True
    try:
        yield
    finally:
        log.disabled = was


def _check_reopens(tmp: Path, final: Path, shape: tuple[int, ...]) -> None:
    """nibabel (and so every reader downstream) opens the written file with its shape.

    Run on the temporary file, so a file that would not reopen is never renamed into place.
    """
    try:
        with _nibabel_quiet():
            image = nib.load(tmp)
        reopened = tuple(image.shape)
    except Exception as exc:  # nibabel raises many types for a header it refuses
        raise OutputError(
            final, f"written file would not reopen ({exc}); nothing written"
        ) from None
    if reopened[:3] != tuple(shape) or any(d != 1 for d in reopened[3:]):
        raise OutputError(
            final,
            f"written file reopens with shape {reopened}, not {tuple(shape)}; nothing written",
        )


def _check_shape(data: np.ndarray, reference: NiftiVolume, what: str) -> None:
    if data.ndim != 3 or tuple(data.shape) != tuple(reference.data.shape):
        raise ValueError(
            f"{what} shape {data.shape} does not match the reference "
            f"{reference.path} shape {reference.data.shape}"
        )


def save_labels(
    path: str | os.PathLike,
    labels: np.ndarray,
    reference: NiftiVolume,
    *,
    overwrite: bool = False,
    compresslevel: int = 6,
) -> Path:
    """Writes a uint8 label map (values 0, 1, 2) with the reference's affine and header.

    The reference header is kept (orientation codes, units, description,
    extensions); only data type, shape, scaling (1, 0) and the display range
    are reset. Written atomically; an existing file is replaced only with
    ``overwrite=True``.
    """
    labels = np.asarray(labels)
    _check_shape(labels, reference, "labels")
    if labels.dtype.kind not in "biuf":
        raise ValueError(f"labels must be numeric, got {labels.dtype}")
    if labels.dtype != np.uint8:
        if not np.all(np.isin(labels, LABEL_VALUES)):
            raise ValueError("labels must only contain the values 0, 1 and 2")
        labels = labels.astype(np.uint8)
    elif labels.size and int(labels.max()) > max(LABEL_VALUES):
        raise ValueError("labels must only contain the values 0, 1 and 2")
    hdr = _prepare_header(
        reference.header, reference.affine, labels.shape, np.dtype(np.uint8), path
    )
    return _write(path, labels, hdr, overwrite, compresslevel)


def save_probabilities(
    path: str | os.PathLike,
    prob: np.ndarray,
    reference: NiftiVolume,
    *,
    overwrite: bool = False,
    compresslevel: int = 6,
) -> Path:
    """Writes a float32 probability map (finite values) with the reference's affine and header."""
    prob = np.asarray(prob)
    _check_shape(prob, reference, "probabilities")
    if prob.dtype.kind not in "biuf" or not np.all(np.isfinite(prob)):
        raise ValueError("probabilities must be finite numbers")
    hdr = _prepare_header(
        reference.header, reference.affine, prob.shape, np.dtype(np.float32), path
    )
    return _write(path, prob, hdr, overwrite, compresslevel)


def save_ct(
    path: str | os.PathLike,
    data: np.ndarray,
    affine: np.ndarray,
    *,
    header: nib.Nifti1Header | None = None,
    overwrite: bool = False,
    compresslevel: int = 6,
) -> Path:
    """Writes a CT volume (int16 or float32 HU, no scaling) with ``affine``.

    Without ``header`` a fresh one is made with both qform and sform set to
    ``affine`` (code "scanner") and units mm.
    """
    data = np.asarray(data)
    if data.ndim != 3:
        raise ValueError(f"CT data must be 3D, got shape {data.shape}")
    if data.dtype not in (np.int16, np.float32):
        raise ValueError(f"CT data must be int16 or float32, got {data.dtype}")
    hdr = _prepare_header(
        header, np.asarray(affine, dtype=np.float64), data.shape, data.dtype, path
    )
    return _write(path, data, hdr, overwrite, compresslevel)
