"""DICOM CT series in: one series of axial (or any orientation) slices -> a volume.

``load_series(folder)`` reads every DICOM file of a folder (one series),
checks it is one complete, untilted CT series with one orientation and
uniform slice spacing, sorts the slices by their position along the slice
normal, applies each slice's rescale slope and intercept (HU), and returns a
:class:`~liverseg.data.nifti.NiftiVolume` whose affine maps voxels to the
scanner's RAS millimetres, as a NIfTI of the same scan would: data[x, y, z]
= (column, row, slice). The slice spacing comes from the positions, never
from SliceThickness. Compressed pixel data (JPEG 2000, JPEG lossless,
JPEG-LS, RLE) is decoded by pydicom's pixel-data plugins (pylibjpeg with its
openjpeg and libjpeg plugins, pyjpegls); a transfer syntax no installed
plugin decodes is a one-line error naming the file. Every problem raises
:class:`DicomError` naming the folder or the file.

``DicomSeries`` keeps the sorted datasets (headers only) for writing a DICOM
Segmentation that references them (``liverseg.data.dicom_seg``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from liverseg.data.nifti import NiftiVolume
from liverseg.errors import InputFileError

#: positions may disagree with a uniform grid by this share of the spacing
SPACING_TOLERANCE = 0.01
#: largest offset (mm) of a slice from the line through the first slice along the normal
TILT_TOLERANCE_MM = 0.01
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class DicomError(InputFileError):
    """A DICOM file or series cannot be used as a CT volume."""


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM Part 10 file (128-byte preamble, then ``DICM``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def dicom_files(folder: str | os.PathLike) -> list[Path]:
    """The DICOM files of one folder (not recursive; hidden entries ignored)."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.iterdir()
        if not p.name.startswith(".") and p.is_file() and is_dicom_file(p)
    )


def is_series_folder(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and any(is_dicom_file(c) for c in p.iterdir() if c.is_file())


@dataclasses.dataclass(frozen=True, eq=False)
class DicomSeries:
    volume: NiftiVolume
    #: the slices' datasets without pixel data, in volume order (z = 0 first)
    datasets: tuple
    series_uid: str


def _read(path: Path, stop_before_pixels: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as exc:
        raise DicomError(path, f"unreadable DICOM file ({exc})") from None


def _vector(ds, keyword: str, n: int, path: Path) -> np.ndarray:
    value = ds.get(keyword)
    if value is None or len(value) != n:
        raise DicomError(path, f"{keyword} is missing or malformed")
    try:
        return np.asarray([float(v) for v in value])
    except (TypeError, ValueError):
        raise DicomError(path, f"{keyword} is not numeric") from None


def _pixels(ds, path: Path) -> np.ndarray:
    try:
        return ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        syntax = ds.file_meta.get("TransferSyntaxUID")
        name = getattr(syntax, "name", str(syntax))
        raise DicomError(
            path,
            f"pixel data in transfer syntax {name} ({syntax}) cannot be decoded "
            f"({str(exc).splitlines()[0][:160]}); install pylibjpeg, pylibjpeg-openjpeg, "
            "pylibjpeg-libjpeg and pyjpegls",
        ) from None
    except Exception as exc:  # corrupt or truncated pixel data
        raise DicomError(path, f"pixel data cannot be read ({type(exc).__name__}: {exc})") from None


def load_series(
    folder: str | os.PathLike, *, files: Sequence[str | os.PathLike] | None = None
) -> DicomSeries:
    """Reads one CT series (every DICOM file of ``folder``, or ``files``)."""
    folder = Path(folder)
    paths = [Path(p) for p in files] if files is not None else dicom_files(folder)
    if len(paths) < 2:
        raise DicomError(folder, f"{len(paths)} DICOM file(s): a CT series needs at least 2")
    headers = [(p, _read(p, stop_before_pixels=True)) for p in paths]

    series = {}
    for p, ds in headers:
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(p)
    if len(series) > 1:
        counts = ", ".join(f"{uid or '(none)'}: {len(v)} files" for uid, v in series.items())
        raise DicomError(folder, f"mixed series ({counts}); give one series per folder")
    for p, ds in headers:
        modality = ds.get("Modality")
        if modality != "CT":
            raise DicomError(p, f"modality {modality!r}, not CT")
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise DicomError(p, "multi-frame images are not supported (one slice per file)")

    first_path, first = headers[0]
    orientation = _vector(first, "ImageOrientationPatient", 6, first_path)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-3):
        raise DicomError(first_path, "ImageOrientationPatient is not two orthonormal directions")
    rows, cols = int(first.Rows), int(first.Columns)
    pixel_spacing = _vector(first, "PixelSpacing", 2, first_path)
    positions = []
    for p, ds in headers:
        if not np.allclose(_vector(ds, "ImageOrientationPatient", 6, p), orientation, atol=1e-4):
            raise DicomError(p, "its orientation differs from the other slices'")
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise DicomError(p, f"{ds.Rows}x{ds.Columns} pixels, the series has {rows}x{cols}")
        if not np.allclose(_vector(ds, "PixelSpacing", 2, p), pixel_spacing, rtol=1e-4):
            raise DicomError(p, "its PixelSpacing differs from the other slices'")
        positions.append(_vector(ds, "ImagePositionPatient", 3, p))
    positions = np.asarray(positions)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    headers = [headers[i] for i in order]
    steps = np.diff(along)
    if np.any(steps <= 1e-6):
        dup = headers[int(np.argmin(steps)) + 1][0]
        raise DicomError(dup, "two slices share one position (duplicate or mixed acquisitions)")
    spacing = float(np.median(steps))
    if np.any(np.abs(steps - spacing) > SPACING_TOLERANCE * spacing):
        gaps = sorted({round(float(s), 3) for s in steps})
        raise DicomError(
            folder,
            f"non-uniform slice spacing ({', '.join(map(str, gaps[:6]))} mm): "
            "an incomplete series or mixed acquisitions",
        )
    offsets = positions - positions[0] - np.outer(along - along[0], normal)
    if np.abs(offsets).max() > TILT_TOLERANCE_MM + 1e-3 * spacing * len(along):
        raise DicomError(
            folder,
            "slices are not stacked along their normal (gantry tilt or a sheared series); "
            "resample it to an untilted grid first",
        )

    data = np.empty((cols, rows, len(headers)), np.float32)
    exact_int16 = True
    datasets = []
    for k, (p, _) in enumerate(headers):
        ds = _read(p, stop_before_pixels=False)
        pixels = _pixels(ds, p)
        if pixels.shape != (rows, cols):
            raise DicomError(p, f"pixel array of shape {pixels.shape}, expected {(rows, cols)}")
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        hu = pixels.astype(np.float64) * slope + intercept
        if not np.all(np.isfinite(hu)):
            raise DicomError(p, "non-finite values after rescaling")
        exact_int16 &= slope == int(slope) and intercept == int(intercept)
        data[:, :, k] = hu.T
        del ds.PixelData
        datasets.append(ds)

    step = (positions[-1] - positions[0]) / (len(positions) - 1)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * pixel_spacing[1]  # along a row: the column index grows
    lps[:3, 1] = col_dir * pixel_spacing[0]  # down a column: the row index grows
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    affine = LPS_TO_RAS @ lps
    if exact_int16 and data.min() >= -32768 and data.max() <= 32767:
        data = data.astype(np.int16)
    header = nib.Nifti1Header()
    header.set_data_dtype(data.dtype)
    header.set_data_shape(data.shape)
    header.set_xyzt_units("mm")
    header.set_qform(affine, code=1)
    header.set_sform(affine, code=1)
    volume = NiftiVolume(
        data=data,
        affine=affine,
        header=header,
        spacing=(float(pixel_spacing[1]), float(pixel_spacing[0]), float(np.linalg.norm(step))),
        path=str(folder),
    )
    return DicomSeries(volume, tuple(datasets), str(headers[0][1].SeriesInstanceUID))
