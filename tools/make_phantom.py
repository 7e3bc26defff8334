"""Writes synthetic abdominal CT phantoms in LiTS layout.

Writes OUTPUT_DIR/volume-{i}.nii.gz (int16 HU) and
OUTPUT_DIR/segmentation-{i}.nii.gz (uint8: 0 background, 1 liver, 2 tumour)
for i = start_index .. start_index + num_volumes - 1; the same seed gives
byte-identical files.

Example:
  python tools/make_phantom.py --output_dir=/tmp/phantoms --num_volumes=4 \
      --shape=64,64,20 --seed=0
"""

from absl import app, flags

from liverseg.data import phantom
from liverseg.errors import LiverSegError

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Directory to write the phantoms into.")
_NUM_VOLUMES = flags.DEFINE_integer("num_volumes", 1, "Number of phantoms.", lower_bound=1)
_SHAPE = flags.DEFINE_list("shape", ["64", "64", "20"], "Volume shape X,Y,Z (voxels).")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0)
_START_INDEX = flags.DEFINE_integer("start_index", 0, "Index of the first phantom.",
                                    lower_bound=0)
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace existing files.")
flags.mark_flag_as_required("output_dir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        shape = tuple(int(d) for d in _SHAPE.value)
    except ValueError:
        raise app.UsageError(f"--shape must be three integers X,Y,Z, got {','.join(_SHAPE.value)}")
    try:
        paths = phantom.write_phantoms(_OUTPUT_DIR.value, _NUM_VOLUMES.value, shape,
                                       seed=_SEED.value, start_index=_START_INDEX.value,
                                       overwrite=_OVERWRITE.value)
    except LiverSegError as e:
        raise SystemExit(f"make_phantom: error: {e}")
    print(f"wrote {len(paths)} phantoms to {_OUTPUT_DIR.value}")


if __name__ == "__main__":
    app.run(main)
