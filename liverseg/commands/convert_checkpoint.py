r"""Converts an original TF1 DS-SFFNet / liverseg checkpoint into a native model.

Reads the authors' name-based checkpoint (variables ``seg_liver/...`` for the
liver net, ``seg_lesion/...`` for the tumour net), checks every variable and
shape, and writes a model directory (``model_config.json`` +
``model.weights.h5``) that training, inference and export load.

Usage:
  python tools/convert_checkpoint.py --tf1_checkpoint=models/seg_liver.ckpt-50000 \\
      --stage=liver --output=models/liver [--variant=original] [--overwrite]
"""

from absl import flags

from liverseg.cli import main_entry

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "tf1_checkpoint", None, "TF1 checkpoint prefix (or one of its files, or its directory)."
)
flags.DEFINE_enum("stage", None, ["liver", "tumor"], "Which network the checkpoint holds.")
flags.DEFINE_enum(
    "variant",
    "original",
    ["original", "paper", "liverseg2017"],
    "Network variant: 'original' code (DS-SFFNet), 'paper' (README), "
    "'liverseg2017' (parent network).",
)
flags.DEFINE_integer("number_slices", None, "Slices per input; default: read from the checkpoint.")
flags.DEFINE_string("output", None, "Model directory to write.")
flags.DEFINE_bool("overwrite", False, "Replace an existing model in --output.")
flags.mark_flags_as_required(["tf1_checkpoint", "stage", "output"])


def main(argv):
    del argv
    from liverseg.models.converter import convert_tf1_checkpoint

    out = convert_tf1_checkpoint(
        FLAGS.tf1_checkpoint,
        FLAGS.output,
        FLAGS.stage,
        variant=FLAGS.variant,
        number_slices=FLAGS.number_slices,
        overwrite=FLAGS.overwrite,
    )
    print(f"{FLAGS.stage} network ({FLAGS.variant}) from {FLAGS.tf1_checkpoint} -> {out}")


def run() -> None:
    """Console entry point (``liverseg-convert-checkpoint``; ``tools/convert_checkpoint.py``)."""
    main_entry(__doc__, main, __name__)
