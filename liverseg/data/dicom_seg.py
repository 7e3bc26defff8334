"""DICOM Segmentation out: a label map as a SEG object referencing its source CT series.

Two non-overlapping binary segments with their SNOMED CT codes: 1 "Liver"
(label 1: Organ / Liver) and 2 "Liver tumour" (label 2: Morphologically
Abnormal Structure / Neoplasm), one frame per source slice that holds either
(highdicom omits empty frames), geometry taken from the source images.
:func:`read_seg_labels` turns such a file back into the label map on the
series' grid. Written with highdicom, atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from liverseg.data.dicom import DicomError, DicomSeries
from liverseg.utils.atomic import atomic_path

SEGMENTS = ((1, "Liver"), (2, "Liver tumour"))


def _descriptions():
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name="liverseg DS-SFFNet cascade",
        version=_version(),
        family=codes.cid7162.ArtificialIntelligence,
    )
    kinds = {
        1: (codes.SCT.Organ, codes.SCT.Liver),
        2: (codes.SCT.MorphologicallyAbnormalStructure, codes.SCT.Neoplasm),
    }
    return [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label,
            segmented_property_category=kinds[number][0],
            segmented_property_type=kinds[number][1],
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for number, label in SEGMENTS
    ]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("liverseg")
    except Exception:  # running from a checkout
        return "0.1.0"


def write_seg(
    path: str | os.PathLike, labels: np.ndarray, series: DicomSeries, *, overwrite: bool = False
) -> Path:
    """Writes ``labels`` ([x, y, z] on the series' grid, values 0/1/2) as a DICOM SEG."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    labels = np.asarray(labels)
    if labels.shape != series.volume.shape:
        raise ValueError(f"labels {labels.shape} differ from the series {series.volume.shape}")
    frames = np.ascontiguousarray(np.transpose(labels, (2, 1, 0)).astype(np.uint8))
    seg = hd.seg.Segmentation(
        source_images=list(series.datasets),
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_descriptions(),
        series_instance_uid=generate_uid(),
        series_number=int(series.datasets[0].get("SeriesNumber", 0) or 0) + 1000,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="liverseg",
        manufacturer_model_name="DS-SFFNet cascade",
        software_versions=_version(),
        device_serial_number="none",
        content_label="LIVERSEG",
        content_description="Liver and liver tumour segmentation",
    )
    final = Path(path)
    with atomic_path(final, overwrite=overwrite) as tmp:
        seg.save_as(tmp)
    return final


def read_seg_labels(path: str | os.PathLike, series: DicomSeries) -> np.ndarray:
    """The label map ([x, y, z], uint8) a SEG file holds, on ``series``' grid."""
    import highdicom as hd

    try:
        seg = hd.seg.segread(path)
    except Exception as exc:
        raise DicomError(path, f"not a readable DICOM Segmentation ({exc})") from None
    uids = [ds.SOPInstanceUID for ds in series.datasets]
    frames = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids,
        segment_numbers=[n for n, _ in SEGMENTS],
        combine_segments=True,
        skip_overlap_checks=False,
        ignore_spatial_locations=True,
    )
    return np.ascontiguousarray(np.transpose(frames, (2, 1, 0))).astype(np.uint8)
