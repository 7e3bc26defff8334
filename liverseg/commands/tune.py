r"""Chooses the cascade's post-processing on validation cases and stores it with the models.

Scores every combination of slice fusion, test-time shift, CRF per structure,
opening per structure, the liver's largest component and a minimum tumour
volume on labelled cases the models never trained on (by default the
validation cases recorded in the model directory's split.json), picks the
one with the fewest steps within 0.002 of the best score (a step is kept only
where it earns its place), and writes it as postprocessing.json into both model directories; infer.py
applies it by default (--postprocess=stored).

Usage:
  python tools/tune.py --liver_model=models/liver --tumor_model=models/tumor
  # on another labelled set
  python tools/tune.py --liver_model=models/liver --tumor_model=models/tumor --data_dir=data/val
"""

from absl import flags

from liverseg.cli import main_entry

FLAGS = flags.FLAGS
flags.DEFINE_string("liver_model", None, "Liver model directory.")
flags.DEFINE_string("tumor_model", None, "Tumour model directory (optional).")
flags.DEFINE_string(
    "data_dir",
    None,
    "LiTS-layout directory of labelled validation cases (default: the "
    "validation cases in the last-trained model's split.json).",
)
flags.DEFINE_bool("dry_run", False, "Print the choice without writing it.")
flags.mark_flags_as_required(["liver_model"])


def main(argv):
    del argv
    from liverseg.tuning import describe, tune_models

    result = tune_models(
        FLAGS.liver_model, FLAGS.tumor_model, data_dir=FLAGS.data_dir, write=not FLAGS.dry_run
    )
    print(describe(result))
    if not FLAGS.dry_run:
        print(
            "written: postprocessing.json in "
            + ", ".join(d for d in (FLAGS.liver_model, FLAGS.tumor_model) if d)
        )


def run() -> None:
    """Console entry point (``liverseg-tune``; ``tools/tune.py``)."""
    main_entry(__doc__, main, __name__)
