"""PNG previews of phantoms: middle slices as stored (``make_phantom.py --preview``) and
slices through the liver of written files, reoriented (``make_external_phantoms.py``)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import nibabel as nib
import numpy as np

from liverseg.data import nifti
from liverseg.utils.atomic import atomic_path

WINDOW = (-160.0, 240.0)  # abdomen: level 40, width 400


def title_of(index: int, ph) -> str:
    """Two lines naming what was drawn for phantom ``index``."""
    return (
        f"{index}: {ph.phase}, {ph.habitus}, {ph.liver_shape}\n"
        f"{''.join(ph.storage)}, {ph.spacing[0]:.2f}x{ph.spacing[2]:.2f} mm, "
        f"noise {ph.noise_sd:.0f} HU, {ph.num_tumours} tumours"
    )


def write_preview(
    path: str | os.PathLike, panels: Sequence[tuple[np.ndarray, np.ndarray, str]]
) -> None:
    """``panels``: (HU slice, label slice, title) each, as stored; CT window
    -150..250 HU, liver and tumour outlined. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.55 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (hu, labels, title) in zip(axes.flat, panels):
        ax.imshow(hu.T, cmap="gray", vmin=-150, vmax=250, interpolation="nearest")
        for level, colour in ((0.5, "lime"), (1.5, "red")):
            if (labels > level).any():
                ax.contour(level < labels.T, levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _canonical(volume, labels):
    """Arrays reordered to RAS with nibabel, from the affine read back from the file."""
    ornt = nib.orientations.io_orientation(volume.affine)
    spacing = nib.affines.voxel_sizes(volume.affine)[ornt[:, 0].astype(int)]
    return (
        nib.orientations.apply_orientation(volume.data, ornt),
        nib.orientations.apply_orientation(labels.data, ornt),
        spacing,
    )


def _display(plane, spacing):
    """A canonical (x, y) or (x, z) plane as an image: patient right on the left, up on top."""
    return plane.T[::-1, ::-1], (0, plane.shape[0] * spacing[0], 0, plane.shape[1] * spacing[1])


def _panel(ax, image, labels, extent, title):
    """One windowed slice with the liver (green) and tumour (red) label contours."""
    ax.imshow(
        image, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], extent=extent, interpolation="nearest"
    )
    for level, colour in ((0.5, "lime"), (1.5, "red")):
        mask = (labels > level).astype(float)
        if mask.any():
            ax.contour(
                mask, levels=[0.5], colors=colour, linewidths=0.7, extent=extent, origin="upper"
            )
    ax.set_title(title, fontsize=7)
    ax.axis("off")


def _phase(header) -> str:
    """The contrast phase recorded in the header description, if any."""
    text = bytes(header["descrip"]).rstrip(b"\x00").decode("ascii", "replace")
    return text.rpartition("phase=")[2] if "phase=" in text else ""


def write_file_preview(cases, path, overwrite: bool) -> None:
    """Axial (top) and coronal (bottom) slices through the liver of up to 8 written
    ``(volume, segmentation)`` files, read back and reoriented to RAS."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = cases[:8]
    cols = min(4, len(cases))
    pairs = (len(cases) + cols - 1) // cols
    fig, axes = plt.subplots(
        2 * pairs,
        cols,
        figsize=(2.7 * cols, 3.9 * pairs),
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 1.6] * pairs},
    )
    for ax in axes.ravel():
        ax.axis("off")
    for i, (vol_path, seg_path) in enumerate(cases):
        volume, labels = nifti.load_case(vol_path, seg_path)
        hu, lab, spacing = _canonical(volume, labels)
        per_slice = (lab > 0).sum(axis=(0, 1))
        k = int(per_slice.argmax()) if per_slice.any() else hu.shape[2] // 2
        per_row = (lab > 0).sum(axis=(0, 2))
        j = int(per_row.argmax()) if per_row.any() else hu.shape[1] // 2
        codes = "".join(nib.aff2axcodes(volume.affine))
        r, c = 2 * (i // cols), i % cols
        img, ext = _display(hu[:, :, k], spacing[[0, 1]])
        _panel(
            axes[r, c],
            img,
            _display(lab[:, :, k], spacing[[0, 1]])[0],
            ext,
            f"{os.path.basename(vol_path)} {_phase(volume.header)}\n{codes} "
            f"{volume.header.get_data_dtype()} {spacing[0]:.2f}x{spacing[2]:.2f} mm",
        )
        img, ext = _display(hu[:, j, :], spacing[[0, 2]])
        _panel(axes[r + 1, c], img, _display(lab[:, j, :], spacing[[0, 2]])[0], ext, "")
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)
