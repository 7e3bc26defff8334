"""Writes phantoms as LiTS files (``volume-N.nii.gz``, ``segmentation-N.nii.gz``)
and, optionally, a PNG preview of their middle slices."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

from liverseg.data import nifti
from liverseg.errors import ConfigError
from liverseg.phantoms import preview as phantom_preview
from liverseg.phantoms.training.generate import _check_shape, _check_style, make_phantom
from liverseg.utils.atomic import check_can_write, safe_output_path


def phantom_paths(output_dir: str | os.PathLike, index: int) -> tuple[Path, Path]:
    """``(volume-{index}.nii.gz, segmentation-{index}.nii.gz)`` under ``output_dir``."""
    return (
        safe_output_path(output_dir, f"volume-{index}.nii.gz"),
        safe_output_path(output_dir, f"segmentation-{index}.nii.gz"),
    )


def write_phantoms(
    output_dir: str | os.PathLike,
    num_volumes: int,
    shape: Sequence[int] = (64, 64, 20),
    seed: int = 0,
    start_index: int = 0,
    *,
    overwrite: bool = False,
    style: str = "narrow",
    preview: str | os.PathLike | None = None,
) -> list[tuple[Path, Path]]:
    """Writes phantoms ``start_index .. start_index + num_volumes - 1`` in LiTS layout.

    All output names are checked before anything is written, so an existing
    file (without ``overwrite``) leaves the directory untouched. ``preview``:
    also a PNG grid of every phantom's middle slice there.
    """
    if num_volumes < 1:
        raise ConfigError(f"num_volumes must be at least 1, got {num_volumes}")
    if start_index < 0:
        raise ConfigError(f"start_index must be non-negative, got {start_index}")
    shape = _check_shape(shape)
    _check_style(style)
    indices = range(start_index, start_index + num_volumes)
    paths = [phantom_paths(output_dir, i) for i in indices]
    for pair in paths:
        for p in pair:
            check_can_write(p, overwrite)
    panels = []
    for i, (vol_path, seg_path) in zip(indices, paths):
        ph = make_phantom(shape, seed, i, style=style)
        nifti.save_ct(vol_path, ph.hu, ph.affine, overwrite=overwrite, compresslevel=1)
        reference = nifti.read_header(vol_path)
        nifti.save_labels(
            seg_path, ph.labels, dataclasses.replace(reference, data=ph.labels), overwrite=overwrite
        )
        if preview is not None:
            k = ph.hu.shape[2] // 2
            panels.append(
                (ph.hu[:, :, k].copy(), ph.labels[:, :, k].copy(), phantom_preview.title_of(i, ph))
            )
    if preview is not None:
        phantom_preview.write_preview(preview, panels)
    return paths
