r"""Exports a trained liver or tumour network as a SavedModel for TF Serving.

Writes EXPORT_DIR/VERSION/ (a TF Serving model base path and version), with
the signature ``serving_default`` (input ``ct_slices``: float32
[batch, H, W, 3] in Hounsfield units; outputs ``probabilities`` and
``logits``) and ``scaled`` (input ``scaled_slices`` already in 0..255).
See docs/SERVING.md.

Usage:
  python tools/export.py --model=models/liver --stage=liver --export_dir=serving/liver
  python tools/export.py --model=models/tumor --stage=tumor --export_dir=serving/tumor \\
      --version=2 [--overwrite]
"""

from absl import flags

from liverseg.cli import main_entry

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "liverseg model directory (save_model) or .keras file.")
flags.DEFINE_enum("stage", None, ["liver", "tumor"], "Stage the model must be (checked).")
flags.DEFINE_string(
    "export_dir", None, "TF Serving model base path; the export goes to EXPORT_DIR/VERSION."
)
flags.DEFINE_integer("version", 1, "Version directory (a positive integer).")
flags.DEFINE_bool("overwrite", False, "Replace an existing export of this version.")
flags.mark_flags_as_required(["model", "stage", "export_dir"])


def main(argv):
    del argv
    from liverseg.export import export_model_file

    path = export_model_file(
        FLAGS.model,
        FLAGS.export_dir,
        stage=FLAGS.stage,
        version=FLAGS.version,
        overwrite=FLAGS.overwrite,
    )
    print(f"exported {FLAGS.stage} model {FLAGS.model} -> {path}")


def run() -> None:
    """Console entry point (``liverseg-export``; ``tools/export.py``)."""
    main_entry(__doc__, main, __name__)
