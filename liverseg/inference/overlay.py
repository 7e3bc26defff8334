"""Overlay PNG of a segmentation: CT slices with the liver and tumour contours.

Two axial slices side by side: the slice with the most predicted liver and
the slice with the most predicted tumour (the middle slice when there is
none). Each shows the CT windowed to [-150, 250] HU with the liver outline
(label >= 1) in green and the tumour outline (label 2) in red. Slices are
drawn as ``data[:, :, k].T`` (array axis 0 left to right, axis 1 top to
bottom: the radiological view for LiTS-oriented volumes) with the pixel
aspect from the voxel spacing. Rendered with matplotlib's Agg canvas (no
global pyplot state) and written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from liverseg.data import preprocess as pp
from liverseg.utils.atomic import atomic_path

LIVER_COLOUR = "#33dd33"
TUMOUR_COLOUR = "#ff3030"


def overlay_slices(labels: np.ndarray) -> list[int]:
    """Slice indices shown: most liver, then most tumour (middle slice without tumour)."""
    liver = np.count_nonzero(labels >= 1, axis=(0, 1))
    tumour = np.count_nonzero(labels == 2, axis=(0, 1))
    first = int(np.argmax(liver)) if liver.any() else labels.shape[2] // 2
    second = int(np.argmax(tumour)) if tumour.any() else labels.shape[2] // 2
    return [first] if second == first else [first, second]


def save_overlay(
    path: str | os.PathLike,
    hu: np.ndarray,
    labels: np.ndarray,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    intensity_range: tuple[float, float] | None = None,
    title: str = "",
    overwrite: bool = False,
) -> Path:
    """Writes the overlay PNG of ``labels`` on ``hu`` (both [x, y, z]) to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if hu.shape != labels.shape:
        raise ValueError(f"image shape {hu.shape} and label shape {labels.shape} differ")
    if intensity_range is None:
        intensity_range = pp.intensity_range(hu)
    slices = overlay_slices(labels)
    aspect = float(spacing[1]) / float(spacing[0])
    fig = Figure(figsize=(5.0 * len(slices), 5.4), dpi=100)
    FigureCanvasAgg(fig)
    for i, k in enumerate(slices):
        ax = fig.add_subplot(1, len(slices), i + 1)
        image = pp.window_and_scale(hu[:, :, k], *intensity_range)
        ax.imshow(image.T, cmap="gray", vmin=0, vmax=255, aspect=aspect, interpolation="nearest")
        for mask, colour in (
            (labels[:, :, k] >= 1, LIVER_COLOUR),
            (labels[:, :, k] == 2, TUMOUR_COLOUR),
        ):
            if mask.any() and not mask.all():
                ax.contour(mask.T.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.0)
        liver = int(np.count_nonzero(labels[:, :, k] >= 1))
        tumour = int(np.count_nonzero(labels[:, :, k] == 2))
        ax.set_title(f"slice {k}: liver {liver} px, tumour {tumour} px", fontsize=9)
        ax.set_axis_off()
    if title:
        fig.suptitle(f"{title} (green: liver, red: tumour)", fontsize=10)
    fig.tight_layout()
    final = Path(path)
    with atomic_path(final, overwrite=overwrite, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return final
