r"""Writes synthetic abdominal CT phantoms in LiTS layout.

Writes OUTPUT_DIR/volume-{i}.nii.gz (int16 HU) and
OUTPUT_DIR/segmentation-{i}.nii.gz (uint8: 0 background, 1 liver, 2 tumour)
for i = start_index .. start_index + num_volumes - 1; the same seed gives
byte-identical files. --style=wide draws from the wider training distribution
(contrast phases, habitus, tumour kinds, storage orientations; see
docs/PHANTOMS.md); --preview also writes a PNG of every phantom's middle slice.

Example:
  python tools/make_phantom.py --output_dir=/tmp/phantoms --num_volumes=8 \
      --shape=96,96,32 --seed=0 --style=wide --preview=/tmp/phantoms/preview.png
"""

from absl import flags

from liverseg.cli import main_entry
from liverseg.phantoms.training import STYLES

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "Directory to write the phantoms into.")
flags.DEFINE_integer("num_volumes", 1, "Number of phantoms.", lower_bound=1)
flags.DEFINE_list("shape", ["64", "64", "20"], "Volume shape X,Y,Z (voxels).")
flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0)
flags.DEFINE_integer("start_index", 0, "Index of the first phantom.", lower_bound=0)
flags.DEFINE_bool("overwrite", False, "Replace existing files.")
flags.DEFINE_enum(
    "style", "narrow", list(STYLES), "narrow: the original generator; wide: the wider distribution."
)
flags.DEFINE_string("preview", None, "Also write a PNG grid of the phantoms' middle slices here.")
flags.mark_flag_as_required("output_dir")


def main(argv):
    from liverseg.errors import ConfigError
    from liverseg.phantoms import training as phantom

    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        shape = tuple(int(d) for d in FLAGS.shape)
    except ValueError:
        raise ConfigError(
            f"--shape must be three integers X,Y,Z, got {','.join(FLAGS.shape)}"
        ) from None
    paths = phantom.write_phantoms(
        FLAGS.output_dir,
        FLAGS.num_volumes,
        shape,
        seed=FLAGS.seed,
        start_index=FLAGS.start_index,
        overwrite=FLAGS.overwrite,
        style=FLAGS.style,
        preview=FLAGS.preview,
    )
    print(
        f"wrote {len(paths)} phantoms to {FLAGS.output_dir}"
        + (f" and {FLAGS.preview}" if FLAGS.preview else "")
    )


def run() -> None:
    """Console entry point (``liverseg-make-phantom``; ``tools/make_phantom.py``)."""
    main_entry(__doc__, main, __name__)
