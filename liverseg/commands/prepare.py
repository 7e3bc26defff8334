r"""Writes sharded TFRecords of one stage's training examples.

Usage:
  python tools/prepare.py --data_dir=LiTS/train --output_dir=prepared/liver --stage=liver
  python tools/prepare.py --data_dir=LiTS/train --output_dir=prepared/tumor --stage=tumor \
      --liver_model=models/liver

OUT/summary.json records num_examples, the cases and the shards.
"""

from absl import flags

from liverseg.cli import main_entry

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "LiTS-layout directory (volume-N / segmentation-N).")
flags.DEFINE_string("output_dir", None, "Where shards and summary.json go.")
flags.DEFINE_enum("stage", None, ["liver", "tumor"], "Which stage's examples to write.")
flags.DEFINE_string(
    "liver_model",
    None,
    "Tumour stage: liver model for the loss mask (default: ground-truth liver).",
)
flags.DEFINE_enum("crop_variant", "original", ["original", "paper"], "Tumour ROI crop variant.")
flags.DEFINE_integer("examples_per_shard", 512, "Examples per TFRecord shard.")
flags.DEFINE_bool("overwrite", False, "Replace an existing prepared directory.")
flags.mark_flags_as_required(["data_dir", "output_dir", "stage"])


def main(argv):
    del argv
    from liverseg.training.prepare import prepare

    summary = prepare(
        FLAGS.data_dir,
        FLAGS.output_dir,
        FLAGS.stage,
        liver_model=FLAGS.liver_model,
        crop_variant=FLAGS.crop_variant,
        examples_per_shard=FLAGS.examples_per_shard,
        overwrite=FLAGS.overwrite,
    )
    print(
        f"{summary['num_examples']} {FLAGS.stage} examples from {summary['num_cases']} cases "
        f"in {len(summary['shards'])} shard(s) -> {FLAGS.output_dir}"
    )


def run() -> None:
    """Console entry point (``liverseg-prepare``; ``tools/prepare.py``)."""
    main_entry(__doc__, main, __name__)
