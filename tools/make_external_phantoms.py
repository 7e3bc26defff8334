"""Writes the external-validation phantom family in LiTS layout (evaluation only).

These phantoms come from a generator written independently of the training
phantoms (liverseg/data/external_phantom.py): use them to measure
generalisation, never to train or tune. Phantom N of a seed depends only on
(seed, N, size, num_slices), so a set can be regenerated or extended
(--start_index) byte for byte. Existing cases are refused unless --overwrite.
With --preview_png, the written files are read back with liverseg.data.nifti
and a grid of axial and coronal slices through the liver of up to 8 of them
(reoriented to RAS, shown in radiological convention, abdomen window, liver
and tumour contours) is saved.

Usage:
  python tools/make_external_phantoms.py --output_dir=data/external --num_volumes=20
  # larger images, a second seed, appended after the first 20, with a preview
  python tools/make_external_phantoms.py --output_dir=data/external --seed=1 \
      --num_volumes=8 --start_index=20 --size=128 --num_slices=48 \
      --preview_png=data/external/preview.png
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import nibabel as nib
from absl import app, flags

from liverseg.cli import run_tool

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Directory of the LiTS-layout output (created if missing).")
flags.DEFINE_integer("num_volumes", 8, "Number of phantoms to write.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Family seed.", lower_bound=0)
flags.DEFINE_integer("size", 96, "Largest in-plane size in pixels (16..1024).")
flags.DEFINE_integer("num_slices", 32, "Slices per volume (2..1024).")
flags.DEFINE_integer("start_index", 0, "Index of the first phantom (file volume-N).",
                     lower_bound=0)
flags.DEFINE_bool("overwrite", False, "Replace existing cases of the same indices.")
flags.DEFINE_string("preview_png", None, "Also write a preview grid of up to 8 written cases.")
flags.mark_flags_as_required(["output_dir"])

WINDOW = (-160.0, 240.0)  # abdomen: level 40, width 400


def _canonical(volume, labels):
    """Arrays reordered to RAS with nibabel, from the affine read back from the file."""
    ornt = nib.orientations.io_orientation(volume.affine)
    spacing = nib.affines.voxel_sizes(volume.affine)[ornt[:, 0].astype(int)]
    return (nib.orientations.apply_orientation(volume.data, ornt),
            nib.orientations.apply_orientation(labels.data, ornt), spacing)


def _display(plane, spacing):
    """A canonical (x, y) or (x, z) plane as an image: patient right on the left, up on top."""
    return plane.T[::-1, ::-1], (0, plane.shape[0] * spacing[0], 0, plane.shape[1] * spacing[1])


def _panel(ax, image, labels, extent, title):
    """One windowed slice with the liver (green) and tumour (red) label contours."""
    ax.imshow(image, cmap="gray", vmin=WINDOW[0], vmax=WINDOW[1], extent=extent,
              interpolation="nearest")
    for level, colour in ((0.5, "lime"), (1.5, "red")):
        mask = (labels > level).astype(float)
        if mask.any():
            ax.contour(mask, levels=[0.5], colors=colour, linewidths=0.7, extent=extent,
                       origin="upper")
    ax.set_title(title, fontsize=7)
    ax.axis("off")


def _phase(header) -> str:
    """The contrast phase recorded in the header description, if any."""
    text = bytes(header["descrip"]).rstrip(b"\x00").decode("ascii", "replace")
    return text.rpartition("phase=")[2] if "phase=" in text else ""


def write_preview(cases, path, overwrite: bool) -> None:
    """Axial (top) and coronal (bottom) slices through the liver of up to 8 cases."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from liverseg.data import nifti
    from liverseg.utils.atomic import atomic_path

    cases = cases[:8]
    cols = min(4, len(cases))
    pairs = (len(cases) + cols - 1) // cols
    fig, axes = plt.subplots(2 * pairs, cols, figsize=(2.7 * cols, 3.9 * pairs), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1.6] * pairs})
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
        _panel(axes[r, c], img, _display(lab[:, :, k], spacing[[0, 1]])[0], ext,
               f"{os.path.basename(vol_path)} {_phase(volume.header)}\n{codes} "
               f"{volume.header.get_data_dtype()} {spacing[0]:.2f}x{spacing[2]:.2f} mm")
        img, ext = _display(hu[:, j, :], spacing[[0, 2]])
        _panel(axes[r + 1, c], img, _display(lab[:, j, :], spacing[[0, 2]])[0], ext, "")
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    plt.close(fig)


def main(argv):
    from liverseg.errors import ConfigError

    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    from liverseg.data.external_phantom import write_external_phantoms
    from liverseg.utils.atomic import check_can_write

    if FLAGS.preview_png:
        check_can_write(FLAGS.preview_png, FLAGS.overwrite)  # before minutes of work
    written = write_external_phantoms(
        FLAGS.output_dir, FLAGS.num_volumes, FLAGS.seed, start_index=FLAGS.start_index,
        size=FLAGS.size, num_slices=FLAGS.num_slices, overwrite=FLAGS.overwrite)
    if FLAGS.preview_png and written:
        write_preview(written, FLAGS.preview_png, FLAGS.overwrite)
    print(f"{len(written)} external phantoms written -> {FLAGS.output_dir}")
    return 0


if __name__ == "__main__":
    app.run(lambda argv: run_tool(main, argv))
