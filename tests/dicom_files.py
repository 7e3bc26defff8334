"""DICOM CT series written by the tests from arrays (pydicom), any orientation or encoding."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters)."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.8g}"


def write_series(
    folder,
    hu: np.ndarray,
    affine: np.ndarray,
    *,
    transfer_syntax=None,
    slope: float = 1.0,
    intercept: float = -1024.0,
    modality: str = "CT",
    order=None,
    series_uid: str | None = None,
    tilt_mm: float = 0.0,
    skip_slices=(),
) -> list:
    """Writes ``hu`` ([x, y, z], with the NIfTI-style RAS ``affine``) as one file per slice.

    ``order``: the order the files are named in (default reversed, so sorting
    by name is wrong); ``tilt_mm``: shifts slice k by k * tilt_mm along the
    rows (a gantry tilt); ``skip_slices``: slices left out (an incomplete series).
    """
    folder.mkdir(parents=True, exist_ok=True)
    lps = LPS_TO_RAS @ np.asarray(affine, float)
    row_step, col_step, slice_step = lps[:3, 0], lps[:3, 1], lps[:3, 2]
    row_dir, col_dir = row_step / np.linalg.norm(row_step), col_step / np.linalg.norm(col_step)
    study, frame = generate_uid(), generate_uid()
    series_uid = series_uid or generate_uid()
    stored = np.round((np.asarray(hu, np.float64) - intercept) / slope)
    signed = stored.min() < 0
    stored = stored.astype(np.int16 if signed else np.uint16)
    n = hu.shape[2]
    order = list(order) if order is not None else list(range(n))[::-1]
    paths = []
    for file_index, k in enumerate(order):
        if k in skip_slices:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series_uid, frame
        ds.Modality = modality
        ds.PatientName, ds.PatientID, ds.PatientSex, ds.PatientBirthDate = (
            "Phantom^Liver",
            "P1",
            "O",
            "",
        )
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20261201", "120000", "1", ""
        ds.ReferringPhysicianName, ds.Manufacturer = "", "liverseg tests"
        ds.SeriesNumber, ds.InstanceNumber = 3, k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[0]
        ds.PixelSpacing = [_ds(np.linalg.norm(col_step)), _ds(np.linalg.norm(row_step))]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_dir, *col_dir)]
        position = lps[:3, 3] + k * slice_step + k * tilt_mm * row_dir
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.SliceThickness = _ds(np.linalg.norm(slice_step))
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = _ds(slope), _ds(intercept), "HU"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if signed else 0
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        if transfer_syntax is not None:
            ds.compress(transfer_syntax)
        path = folder / f"IM{file_index:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
