r"""Writes the external-validation phantom family in LiTS layout (evaluation only).

These phantoms come from a generator written independently of the training
phantoms (liverseg/phantoms/external/): use them to measure
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

from absl import flags

from liverseg.cli import main_entry

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Directory of the LiTS-layout output (created if missing).")
flags.DEFINE_integer("num_volumes", 8, "Number of phantoms to write.", lower_bound=0)
flags.DEFINE_integer("seed", 0, "Family seed.", lower_bound=0)
flags.DEFINE_integer("size", 96, "Largest in-plane size in pixels (16..1024).")
flags.DEFINE_integer("num_slices", 32, "Slices per volume (2..1024).")
flags.DEFINE_integer("start_index", 0, "Index of the first phantom (file volume-N).", lower_bound=0)
flags.DEFINE_bool("overwrite", False, "Replace existing cases of the same indices.")
flags.DEFINE_string("preview_png", None, "Also write a preview grid of up to 8 written cases.")
flags.mark_flags_as_required(["output_dir"])


def main(argv):
    from liverseg.errors import ConfigError

    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    from liverseg.phantoms.external import write_external_phantoms
    from liverseg.phantoms.preview import write_file_preview
    from liverseg.utils.atomic import check_can_write

    if FLAGS.preview_png:
        check_can_write(FLAGS.preview_png, FLAGS.overwrite)  # before minutes of work
    written = write_external_phantoms(
        FLAGS.output_dir,
        FLAGS.num_volumes,
        FLAGS.seed,
        start_index=FLAGS.start_index,
        size=FLAGS.size,
        num_slices=FLAGS.num_slices,
        overwrite=FLAGS.overwrite,
    )
    if FLAGS.preview_png and written:
        write_file_preview(written, FLAGS.preview_png, FLAGS.overwrite)
    print(f"{len(written)} external phantoms written -> {FLAGS.output_dir}")
    return 0


def run() -> None:
    """Console entry point (``liverseg-make-external-phantoms``; ``tools/make_external_phantoms.py``)."""
    main_entry(__doc__, main, __name__)
