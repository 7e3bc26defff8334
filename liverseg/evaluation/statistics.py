"""Clinical figures of a label map: liver volume, tumour burden, lesions (RECIST-style).

All sizes come from the affine (voxel volume = |det| of its 3x3 part; points
in scanner millimetres), so any storage order, flip or anisotropic spacing
gives the same figures. Lesions are the 3D connected components of the
tumour label with the evaluation's connectivity
(:data:`liverseg.evaluation.metrics.LESION_STRUCTURE`). The liver volume is
that of labels 1 and 2 (the whole organ, tumours included), so the tumour
burden (tumour ml / liver ml) is the LiTS challenge's.

Diameters are measured in the axial plane (the voxel plane closest to
perpendicular to the scanner's S axis), slice by slice, between voxel
centres: the longest over the lesion's slices, and on that slice the extent
perpendicular to it (RECIST's short axis). Voxel centres make them about one
voxel shorter than the physical extent of a sampled sphere.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from liverseg.data.dicom import load_series
from liverseg.data.nifti import NiftiVolume, load_ct, load_labels
from liverseg.errors import ConfigError, LayoutError, LiverSegError, NiftiError
from liverseg.evaluation.metrics import LESION_STRUCTURE
from liverseg.evaluation.pairing import case_id_from_name
from liverseg.utils.atomic import atomic_write_text, check_can_write

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LesionStatistics:
    volume_ml: float
    longest_diameter_mm: float
    perpendicular_diameter_mm: float
    centroid_mm: tuple[float, float, float]
    voxels: int
    mean_hu: float | None = None
    std_hu: float | None = None

    def to_dict(self) -> dict:
        out = {
            "volume_ml": round(self.volume_ml, 6),
            "longest_diameter_mm": round(self.longest_diameter_mm, 2),
            "perpendicular_diameter_mm": round(self.perpendicular_diameter_mm, 2),
            "centroid_mm": [round(v, 2) for v in self.centroid_mm],
            "voxels": self.voxels,
        }
        if self.mean_hu is not None:
            out.update(mean_hu=round(self.mean_hu, 2), std_hu=round(self.std_hu, 2))
        return out


@dataclasses.dataclass(frozen=True)
class CaseStatistics:
    case: str
    liver_volume_ml: float
    tumor_volume_ml: float
    lesions: tuple[LesionStatistics, ...]

    @property
    def tumor_burden(self) -> float:
        """Tumour volume over liver volume (0 without liver)."""
        return self.tumor_volume_ml / self.liver_volume_ml if self.liver_volume_ml > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "case": self.case,
            "liver_volume_ml": round(self.liver_volume_ml, 4),
            "tumor_volume_ml": round(self.tumor_volume_ml, 6),
            "tumor_burden": round(self.tumor_burden, 6),
            "lesion_count": len(self.lesions),
            "lesions": [lesion.to_dict() for lesion in self.lesions],
        }


CSV_FIELDS = (
    "case",
    "liver_volume_ml",
    "tumor_volume_ml",
    "tumor_burden",
    "lesion_count",
    "largest_lesion_diameter_mm",
)


def axial_axis(affine: np.ndarray) -> int:
    """The voxel axis closest to the scanner's S axis (slices across it are axial)."""
    ornt = nib.orientations.io_orientation(np.asarray(affine, float))
    return int(np.flatnonzero(ornt[:, 0] == 2)[0])


def _in_plane_diameters(points_mm: np.ndarray) -> tuple[float, float]:
    """Longest distance between points and their extent perpendicular to it (2D, mm)."""
    if len(points_mm) < 2:
        return 0.0, 0.0
    candidates = points_mm
    if len(points_mm) > 3:
        try:
            candidates = points_mm[ConvexHull(points_mm).vertices]
        except QhullError:  # collinear points: every point is a candidate
            candidates = points_mm
    diff = candidates[:, None, :] - candidates[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    i, j = np.unravel_index(int(np.argmax(dist)), dist.shape)
    longest = float(dist[i, j])
    if longest == 0:
        return 0.0, 0.0
    axis = (candidates[j] - candidates[i]) / longest
    normal = np.array([-axis[1], axis[0]])
    across = points_mm @ normal
    return longest, float(across.max() - across.min())


def lesion_statistics(
    idx: np.ndarray, affine: np.ndarray, hu_values: np.ndarray | None = None
) -> LesionStatistics:
    """Figures of one lesion: its voxel indices ``[n, 3]`` and, optionally, their HU."""
    affine = np.asarray(affine, float)
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    centroid = affine[:3, :3] @ idx.mean(axis=0) + affine[:3, 3]
    z = axial_axis(affine)
    plane = [a for a in range(3) if a != z]
    # in-plane coordinates in mm: the two in-plane voxel axes' columns of the affine,
    # expressed in an orthonormal basis of the plane they span
    columns = affine[:3, plane]
    basis, _ = np.linalg.qr(columns)
    to_plane = basis.T @ columns  # 2x2: voxel offsets -> in-plane mm
    best = (0.0, 0.0)
    for k in np.unique(idx[:, z]):
        pts = idx[idx[:, z] == k][:, plane] @ to_plane.T
        longest, across = _in_plane_diameters(pts)
        if longest > best[0]:
            best = (longest, across)
    values = None if hu_values is None else np.asarray(hu_values, np.float64)
    return LesionStatistics(
        volume_ml=float(len(idx) * voxel_ml),
        longest_diameter_mm=best[0],
        perpendicular_diameter_mm=best[1],
        centroid_mm=tuple(float(v) for v in centroid),
        voxels=len(idx),
        mean_hu=None if values is None else float(values.mean()),
        std_hu=None if values is None else float(values.std()),
    )


def case_statistics(
    case: str, labels: np.ndarray, affine: np.ndarray, hu: np.ndarray | None = None
) -> CaseStatistics:
    """Liver and tumour volumes and every lesion of a LiTS label map (0, 1, 2)."""
    labels = np.asarray(labels)
    if hu is not None and np.shape(hu) != labels.shape:
        raise ValueError(f"CT shape {np.shape(hu)} differs from the labels' {labels.shape}")
    voxel_ml = abs(np.linalg.det(np.asarray(affine, float)[:3, :3])) / 1000.0
    tumour = labels == 2
    components, n = ndimage.label(tumour, structure=LESION_STRUCTURE)
    lesions = []
    for index, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        inside = components[box] == index
        idx = np.argwhere(inside) + [s.start for s in box]
        values = None if hu is None else np.asarray(hu)[box][inside]
        lesions.append(lesion_statistics(idx, affine, values))
    lesions.sort(key=lambda x: -x.volume_ml)
    return CaseStatistics(
        case=case,
        liver_volume_ml=float(np.count_nonzero(labels >= 1) * voxel_ml),
        tumor_volume_ml=float(np.count_nonzero(tumour) * voxel_ml),
        lesions=tuple(lesions),
    )


# ----------------------------------------------------------------------------
# Files


def case_name(label_path: str | os.PathLike) -> str:
    """``"7"`` for segmentation-7.nii.gz, ``"test-7"`` for test-segmentation-7, else the stem."""
    name = Path(label_path).name
    case_id = case_id_from_name(name)
    if case_id is not None:
        return case_id
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[: -len("_segmentation")] if name.endswith("_segmentation") else name


def ct_name_candidates(label_name: str) -> list[str]:
    """Names the CT of a label map may have (``infer.py``'s naming, reversed)."""
    stem = label_name
    for suffix in (".nii.gz", ".nii"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if stem.endswith("_segmentation"):
        stems = [stem[: -len("_segmentation")]]
    else:
        stems = [stem.replace("segmentation", "volume")]
    return [s + ext for s in stems for ext in (".nii.gz", ".nii")]


def load_case(
    label_path: str | os.PathLike, ct_path: str | os.PathLike
) -> tuple[NiftiVolume, NiftiVolume]:
    """A label map and its CT (a NIfTI file or a DICOM series folder), checked to share a grid."""
    labels = load_labels(label_path)
    ct = load_series(ct_path).volume if Path(ct_path).is_dir() else load_ct(ct_path)
    if ct.shape != labels.shape or not np.allclose(ct.affine, labels.affine, atol=1e-3):
        raise NiftiError(
            ct_path, f"shape or affine differs from that of the label map {label_path}"
        )
    return labels, ct


def loaded_case_statistics(
    label_path: str | os.PathLike, ct_path: str | os.PathLike
) -> tuple[NiftiVolume, NiftiVolume, CaseStatistics]:
    """A label map, its CT and their statistics, each volume read once (the results page
    draws the same volumes the statistics are taken from)."""
    labels, ct = load_case(label_path, ct_path)
    return labels, ct, case_statistics(case_name(label_path), labels.data, labels.affine, ct.data)


def statistics_of_files(
    label_path: str | os.PathLike, ct_path: str | os.PathLike | None = None
) -> CaseStatistics:
    """Statistics of one label map file (HU from ``ct_path``, a NIfTI or a DICOM series folder)."""
    if ct_path is not None:
        return loaded_case_statistics(label_path, ct_path)[2]
    labels = load_labels(label_path)
    return case_statistics(case_name(label_path), labels.data, labels.affine, None)


def statistics_csv(cases: Sequence[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for case in cases:
        largest = max((x["longest_diameter_mm"] for x in case["lesions"]), default=0.0)
        writer.writerow({**case, "largest_lesion_diameter_mm": largest})
    return buf.getvalue()


def write_statistics(
    cases: Sequence[dict],
    output: str | os.PathLike,
    *,
    failures: Sequence[dict] = (),
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """``output`` (JSON: ``{"cases": [...], "failures": [...]}``) and the CSV beside it."""
    output = Path(output)
    if output.suffix.lower() == ".csv":
        raise ConfigError(f"{output}: give a .json name; the CSV is written beside it")
    csv_path = output.with_suffix(".csv")
    for path in (output, csv_path):
        check_can_write(path, overwrite)
    atomic_write_text(csv_path, statistics_csv(cases), overwrite=overwrite)
    text = json.dumps({"cases": list(cases), "failures": list(failures)}, indent=2) + "\n"
    atomic_write_text(output, text, overwrite=overwrite)
    return output, csv_path


def _is_label_map_name(name: str) -> bool:
    stem = re.sub(r"\.nii(\.gz)?$", "", name, flags=re.IGNORECASE)
    return case_id_from_name(name) is not None or stem.endswith("_segmentation")


def statistics_of_directory(
    labels_dir: str | os.PathLike, ct_dir: str | os.PathLike | None = None
) -> tuple[list[dict], list[dict]]:
    """Statistics of every label map of a directory.

    Label maps are the files named like them (``segmentation-N``,
    ``test-segmentation-N``, ``<stem>_segmentation``) when there are any, so
    a LiTS directory's volumes are left out; otherwise every ``*.nii`` /
    ``*.nii.gz``.

    Returns ``(cases, failures)``; a file that cannot be read is a failure
    naming it and the others are still measured.
    """
    directory = Path(labels_dir)
    if not directory.is_dir():
        raise LayoutError(directory, "labels directory does not exist")
    paths = sorted(
        (
            p
            for p in directory.iterdir()
            if p.name.lower().endswith((".nii", ".nii.gz"))
            and not p.name.startswith(".")
            and "_probability" not in p.name
        ),
        key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)],
    )
    named = [p for p in paths if _is_label_map_name(p.name)]
    paths = named or paths  # a LiTS directory also holds the volumes
    if not paths:
        raise LayoutError(directory, "no label maps (.nii or .nii.gz) found")
    cases, failures = [], []
    for path in paths:
        ct = None
        if ct_dir is not None:
            found = [Path(ct_dir) / n for n in ct_name_candidates(path.name)]
            ct = next((p for p in found if p.exists()), None)
            if ct is None:
                failures.append(
                    {"case": case_name(path), "path": str(path), "error": f"{found[0]}: no CT"}
                )
                logger.error("%s: no CT volume in %s", path, ct_dir)
                continue
        try:
            cases.append(statistics_of_files(path, ct).to_dict())
        except (LiverSegError, ValueError) as exc:
            failures.append({"case": case_name(path), "path": str(path), "error": str(exc)})
            logger.error("%s", exc)
    return cases, failures


def case_statistics_path(label_path: str | os.PathLike) -> Path:
    """``<label map stem>_statistics.json`` beside the label map."""
    path = Path(label_path)
    stem = re.sub(r"\.nii(\.gz)?$", "", path.name, flags=re.IGNORECASE)
    return path.with_name(stem + "_statistics.json")


def write_run_statistics(
    cases: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    output_dir: str | os.PathLike,
    each: Callable[[Path, Path, NiftiVolume, NiftiVolume, dict], None] | None = None,
) -> tuple[Path, Path]:
    """Per case ``<label stem>_statistics.json``; then ``statistics.json`` / ``.csv``.

    ``cases``: (label map, CT) pairs just written. The run's files list
    every case of ``output_dir`` with a statistics file (so runs split in
    parts, or resumed, add up); each is rewritten atomically. ``each(label
    path, CT path, labels, CT, statistics)`` is called with every case loaded
    (the results page uses it, so no volume is read twice).
    """
    failures = []
    for label_path, ct_path in cases:
        try:
            labels, ct, found = loaded_case_statistics(label_path, ct_path)
            stats = found.to_dict()
            if each is not None:
                each(Path(label_path), Path(ct_path), labels, ct, stats)
        except (LiverSegError, ValueError) as exc:
            failures.append(
                {"case": case_name(label_path), "path": str(label_path), "error": str(exc)}
            )
            logger.error("%s", exc)
            continue
        atomic_write_text(
            case_statistics_path(label_path), json.dumps(stats, indent=2) + "\n", overwrite=True
        )
    output_dir = Path(output_dir)
    collected = []
    for path in sorted(output_dir.glob("*_statistics.json")):
        try:
            collected.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            logger.error("%s: unreadable statistics file (%s); left out", path, exc)
    collected.sort(
        key=lambda c: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", c["case"])]
    )
    return write_statistics(
        collected, output_dir / "statistics.json", failures=failures, overwrite=True
    )
