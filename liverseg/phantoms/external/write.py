"""Writes phantoms as LiTS files (``volume-N`` / ``segmentation-N`` with each
phantom's suffix): byte-deterministic NIfTI-1, atomic, existing cases refused
unless overwriting."""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from liverseg.errors import ConfigError, OutputError
from liverseg.phantoms.external.draws import _streams
from liverseg.phantoms.external.generate import ExternalPhantom, make_external_phantom
from liverseg.phantoms.external.storage import SUFFIXES, _draw_storage
from liverseg.utils.atomic import atomic_path, check_can_write, safe_output_path

logger = logging.getLogger(__package__)  # one logger for the whole family


def _header(phantom: ExternalPhantom, dtype, slope: float, inter: float) -> nib.Nifti1Header:
    """A NIfTI-1 header for the phantom's volume or labels (units mm, transforms as drawn)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(phantom.data.shape)
    hdr.set_data_dtype(dtype)
    xform = phantom.drawn.xform
    hdr.set_qform(phantom.affine, code=0 if xform == "sform" else 1)
    hdr.set_sform(phantom.affine, code=0 if xform == "qform" else 1)
    hdr.set_zooms(phantom.spacing)
    hdr.set_xyzt_units("mm", "sec")
    hdr["scl_slope"], hdr["scl_inter"] = slope, inter
    d = phantom.drawn
    hdr["descrip"] = (
        f"liverseg external phantom seed={d.seed} index={d.index} phase={d.phase}"
    ).encode()[:79]
    hdr["vox_offset"] = 0
    return hdr


def _write_nifti(path: Path, data: np.ndarray, hdr: nib.Nifti1Header, overwrite: bool) -> None:
    """Atomic write; gzip output has mtime 0 and no name, so it is byte-deterministic."""
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as raw:
        out = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
            if path.name.endswith(".gz")
            else raw
        )
        hdr.write_to(out)
        out.write(np.asarray(data, dtype=hdr.get_data_dtype()).tobytes(order="F"))
        if out is not raw:
            out.close()
        raw.flush()
        os.fsync(raw.fileno())


def write_phantom(
    phantom: ExternalPhantom, volume_path, segmentation_path, *, overwrite: bool = False
) -> None:
    """Writes one phantom's volume and label map (same affine, header transforms and suffix)."""
    _write_nifti(
        Path(segmentation_path), phantom.labels, _header(phantom, np.uint8, 1.0, 0.0), overwrite
    )
    _write_nifti(
        Path(volume_path),
        phantom.data,
        _header(phantom, phantom.data.dtype, phantom.scl_slope, phantom.scl_inter),
        overwrite,
    )


def _case_paths(output_dir: Path, index: int, suffix: str) -> tuple[Path, Path]:
    return (
        safe_output_path(output_dir, f"volume-{index}{suffix}"),
        safe_output_path(output_dir, f"segmentation-{index}{suffix}"),
    )


def _check_outputs(output_dir: Path, indices, suffixes, overwrite: bool) -> list[Path]:
    """Refuses existing cases unless ``overwrite``; returns the other-suffix files to remove."""
    stale = []
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(output_dir, "output directory is not a directory")
    for index, suffix in zip(indices, suffixes):
        for s in SUFFIXES:
            for path in _case_paths(output_dir, index, s):
                check_can_write(path, overwrite)
                if s != suffix and (path.exists() or path.is_symlink()):
                    stale.append(path)
    return stale


def write_external_phantoms(
    output_dir,
    num: int,
    seed: int,
    *,
    start_index: int = 0,
    size: int = 96,
    num_slices: int = 32,
    overwrite: bool = False,
    **options,
) -> list[tuple[Path, Path]]:
    """Writes phantoms ``start_index .. start_index + num - 1`` of ``seed`` in LiTS layout.

    Files are ``volume-N`` / ``segmentation-N`` with each phantom's drawn suffix.
    Existing cases (either suffix) are refused before anything is written unless
    ``overwrite``; then a case's file under the other suffix is removed, so the
    directory never holds two files for one index. ``options`` go to
    :func:`make_external_phantom`. Returns (volume, segmentation) paths.
    """
    if int(num) != num or num < 0:
        raise ConfigError(f"num must be a non-negative integer, got {num}")
    if int(start_index) != start_index or start_index < 0:
        raise ConfigError(f"start_index must be a non-negative integer, got {start_index}")
    out = Path(output_dir)
    indices = range(int(start_index), int(start_index) + int(num))
    suffixes = [
        options.get("suffix") or _draw_storage(_streams(seed, i)["storage"]).suffix for i in indices
    ]
    stale = _check_outputs(out, indices, suffixes, overwrite)
    written = []
    for index in indices:
        phantom = make_external_phantom(seed, index, size=size, num_slices=num_slices, **options)
        volume, segmentation = _case_paths(out, index, phantom.drawn.suffix)
        write_phantom(phantom, volume, segmentation, overwrite=overwrite)
        written.append((volume, segmentation))
        logger.info(
            "%s: %s phase, %s %s, %d tumour(s)",
            volume,
            phantom.drawn.phase,
            "".join(phantom.drawn.axcodes),
            phantom.drawn.dtype,
            phantom.drawn.num_tumours,
        )
    for path in stale:
        path.unlink()
        logger.info("removed %s (replaced under the other suffix)", path)
    return written
