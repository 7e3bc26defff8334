r"""Trains the liver or the tumour network of the cascade.

Usage:
  # liver stage, fast recipe, on phantoms or LiTS (NIfTI dir or prepare.py output)
  python tools/train.py --stage=liver --data_dir=data/train --model_dir=models/liver
  # tumour stage, loss mask from the trained liver model
  python tools/train.py --stage=tumor --data_dir=data/train --model_dir=models/tumor \
      --liver_model=models/liver
  # the original recipe from ImageNet VGG-16
  python tools/train.py --stage=liver --recipe=original --init_checkpoint=checkpoints/vgg_16.ckpt \
      --data_dir=prepared/liver --model_dir=models/liver_original

Rerunning with the same --model_dir resumes from the last checkpoint. The fast
recipe (the default) augments its examples and brings every volume to one
orientation and pixel spacing (recorded in the model's plans.json); after the
tumour stage the cascade's post-processing is chosen on the validation cases
and stored with both models (postprocessing.json), which infer.py applies.
"""

from absl import flags

from liverseg.cli import main_entry
from liverseg.training.trainer import TrainConfig
from liverseg.utils.options import define_flags, from_flags

FLAGS = flags.FLAGS
CONFIG_FLAGS = define_flags(TrainConfig, FLAGS)
flags.DEFINE_bool(
    "tune",
    True,
    "After the tumour stage (with --liver_model), choose the cascade's "
    "post-processing on the validation cases and store it with both models "
    "(tools/tune.py does the same on its own).",
)


def main(argv):
    del argv
    from liverseg.tuning import train_then_tune

    config = TrainConfig(**from_flags(TrainConfig, FLAGS, CONFIG_FLAGS))
    result = train_then_tune(config, tune=FLAGS.tune)
    print(f"trained {result['step']} updates -> {result['model_dir']}")


def run() -> None:
    """Console entry point (``liverseg-train``; ``tools/train.py``)."""
    main_entry(__doc__, main, __name__)
