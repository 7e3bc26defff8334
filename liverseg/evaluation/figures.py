"""Side-by-side figures: CT slice, ground truth and prediction."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from liverseg.data import preprocess as pp
from liverseg.utils.atomic import atomic_path

_COLOURS = {1: (0.1, 0.8, 0.2), 2: (0.95, 0.15, 0.1)}


def comparison_slice(reference: np.ndarray) -> int:
    """The slice with the most tumour, else the most liver, else the middle."""
    tumour = np.count_nonzero(reference == 2, axis=(0, 1))
    if tumour.any():
        return int(np.argmax(tumour))
    liver = np.count_nonzero(reference >= 1, axis=(0, 1))
    return int(np.argmax(liver)) if liver.any() else reference.shape[2] // 2


def _rgb(ct: np.ndarray, labels: np.ndarray | None, alpha: float = 0.45) -> np.ndarray:
    grey = np.repeat(ct[..., None], 3, axis=-1)
    if labels is None:
        return grey
    out = grey.copy()
    for value, colour in _COLOURS.items():
        sel = labels == value
        out[sel] = (1 - alpha) * grey[sel] + alpha * np.asarray(colour)
    return out


def save_comparison(
    path: str | os.PathLike,
    hu: np.ndarray,
    reference: np.ndarray,
    prediction: np.ndarray,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    slice_index: int | None = None,
    title: str = "",
    overwrite: bool = True,
) -> Path:
    """Writes a PNG: CT | ground truth | prediction (liver green, tumour red).

    Arrays are [x, y, z] as stored; the slice is shown with x down and y
    across, at the true in-plane aspect ratio.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = comparison_slice(reference) if slice_index is None else slice_index
    lo, hi = pp.intensity_range(hu)
    ct = pp.window_and_scale(hu[:, :, k], lo, hi) / 255.0
    panels = [
        ("CT", _rgb(ct, None)),
        ("ground truth", _rgb(ct, reference[:, :, k])),
        ("prediction", _rgb(ct, prediction[:, :, k])),
    ]
    fig = Figure(figsize=(9, 3.4))
    FigureCanvasAgg(fig)
    aspect = float(spacing[0]) / float(spacing[1]) if len(spacing) > 1 else 1.0
    for i, (name, image) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.imshow(np.clip(image, 0, 1), aspect=aspect, interpolation="nearest")
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    fig.suptitle(f"{title} slice {k}".strip(), fontsize=10)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return out
