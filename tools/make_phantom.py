"""Writes synthetic abdominal CT phantoms in LiTS layout.

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

import math

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
_STYLE = flags.DEFINE_enum("style", "narrow", list(phantom.STYLES),
                           "narrow: the original generator; wide: the wider distribution.")
_PREVIEW = flags.DEFINE_string("preview", None,
                               "Also write a PNG grid of the phantoms' middle slices here.")
flags.mark_flag_as_required("output_dir")


def write_preview(path, phantoms, titles) -> None:
    """A grid of middle slices as stored (CT window -150..250 HU), liver and tumour outlined."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(phantoms))
    rows = math.ceil(len(phantoms) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.55 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, ph, title in zip(axes.flat, phantoms, titles):
        k = ph.hu.shape[2] // 2
        ax.imshow(ph.hu[:, :, k].T, cmap="gray", vmin=-150, vmax=250, interpolation="nearest")
        for level, colour in ((0.5, "lime"), (1.5, "red")):
            if (ph.labels[:, :, k] > level).any():
                ax.contour(ph.labels[:, :, k].T > level, levels=[0.5], colors=colour,
                           linewidths=0.8)
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _title(index: int, ph) -> str:
    return (f"{index}: {ph.phase}, {ph.habitus}, {ph.liver_shape}\n"
            f"{''.join(ph.storage)}, {ph.spacing[0]:.2f}x{ph.spacing[2]:.2f} mm, "
            f"noise {ph.noise_sd:.0f} HU, {ph.num_tumours} tumours")


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
                                       overwrite=_OVERWRITE.value, style=_STYLE.value)
    except LiverSegError as e:
        raise SystemExit(f"make_phantom: error: {e}")
    print(f"wrote {len(paths)} phantoms to {_OUTPUT_DIR.value}")
    if _PREVIEW.value:
        indices = range(_START_INDEX.value, _START_INDEX.value + _NUM_VOLUMES.value)
        phantoms = [phantom.make_phantom(shape, _SEED.value, i, style=_STYLE.value)
                    for i in indices]
        write_preview(_PREVIEW.value, phantoms, [_title(i, p) for i, p in zip(indices, phantoms)])
        print(f"wrote {_PREVIEW.value}")


if __name__ == "__main__":
    app.run(main)
