"""Trains the liver or the tumour network of the cascade.

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

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app, flags

from liverseg.cli import run_tool

FLAGS = flags.FLAGS
flags.DEFINE_enum("stage", None, ["liver", "tumor"], "Which network to train.")
flags.DEFINE_string("data_dir", None, "LiTS-layout NIfTI directory or a prepare.py output.")
flags.DEFINE_string("model_dir", None, "Where checkpoints, logs and the final model go.")
flags.DEFINE_enum("recipe", "fast", ["original", "fast"], "Training recipe (see docs).")
flags.DEFINE_enum("variant", None, ["original", "paper", "liverseg2017"],
                  "Network variant (default: original; for the tumour network trained from "
                  "scratch with the fast recipe: paper, as the original's head ReLUs die there).")
flags.DEFINE_integer("max_steps", None, "Updates (default: the recipe's); schedules scale.")
flags.DEFINE_integer("batch_size", None, "Global batch size (default: the recipe's).")
flags.DEFINE_float("learning_rate", None, "Base learning rate (default: the recipe's).")
flags.DEFINE_integer("image_size", None, "Resize examples to this square size (a deviation).")
flags.DEFINE_string("init_checkpoint", None,
                    "ImageNet VGG-16 (TF-slim vgg_16.ckpt or Keras .h5) or an earlier model.")
flags.DEFINE_string("liver_model", None, "Tumour stage: liver model giving the loss mask.")
flags.DEFINE_enum("loss_mask", None, ["gt", "liver_model"],
                  "Tumour stage loss mask source (default: liver_model if given, else gt).")
flags.DEFINE_enum("distribution", "none", ["none", "mirrored", "multi_worker"],
                  "tf.distribute strategy.")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into N logical devices.")
flags.DEFINE_bool("mixed_precision", False, "Train with the mixed_bfloat16 policy.")
flags.DEFINE_integer("val_every", 50, "Validate every N updates (0: never).")
flags.DEFINE_string("val_dir", None, "Validation data (default: a fraction of data_dir).")
flags.DEFINE_float("val_fraction", 0.1, "Fraction of cases held out for validation.")
flags.DEFINE_integer("save_every", 200, "Checkpoint every N updates.")
flags.DEFINE_integer("log_every", 10, "Print a progress line every N updates.")
flags.DEFINE_integer("seed", 0, "Random seed.")
flags.DEFINE_enum("crop_variant", "original", ["original", "paper"], "Tumour ROI crop variant.")
flags.DEFINE_enum("variable_selection", None, ["original", "all"],
                  "Variables each update moves: 'original' reproduces the original, whose "
                  "last (supervision 'none') phase leaves score-dsn_5 and upscore-fuse "
                  "frozen; 'all' trains every variable. Default: the recipe's "
                  "(original recipe: original; fast: all).")
flags.DEFINE_bool("augment", None,
                  "Augment training examples on the fly (rotation, scaling, elastic, intensity, "
                  "noise, blur, low resolution, gamma). Default: the recipe's (fast: on, "
                  "original: off). --noaugment switches it off.")
flags.DEFINE_enum("geometry", None, ["normalize", "native"],
                  "'normalize': bring every training volume to one orientation and in-plane "
                  "pixel spacing (the majority orientation and median spacing of the training "
                  "volumes, or the liver model's), recorded in the model's plans.json so that "
                  "inference does the same; 'native': volumes as stored (the original). "
                  "Default: the recipe's (fast: normalize, original: native).")
flags.DEFINE_integer("patch_size", None,
                     "Side of the augmented training patches (default: from the examples: "
                     "the median slice size for the liver, the 90th percentile crop for the "
                     "tumour).", lower_bound=16)
flags.DEFINE_bool("tune", True,
                  "After the tumour stage (with --liver_model), choose the cascade's "
                  "post-processing on the validation cases and store it with both models "
                  "(tools/tune.py does the same on its own).")
flags.mark_flags_as_required(["stage", "data_dir", "model_dir"])


def main(argv):
    del argv
    from liverseg.training.trainer import TrainConfig
    from liverseg.tuning import train_then_tune

    config = TrainConfig(
        stage=FLAGS.stage, data_dir=FLAGS.data_dir, model_dir=FLAGS.model_dir,
        recipe=FLAGS.recipe, variant=FLAGS.variant, max_steps=FLAGS.max_steps,
        batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
        image_size=FLAGS.image_size, init_checkpoint=FLAGS.init_checkpoint,
        liver_model=FLAGS.liver_model, loss_mask=FLAGS.loss_mask,
        distribution=FLAGS.distribution, cpu_devices=FLAGS.cpu_devices,
        mixed_precision=FLAGS.mixed_precision, val_every=FLAGS.val_every,
        val_dir=FLAGS.val_dir, val_fraction=FLAGS.val_fraction, save_every=FLAGS.save_every,
        log_every=FLAGS.log_every, seed=FLAGS.seed, crop_variant=FLAGS.crop_variant,
        variable_selection=FLAGS.variable_selection, augment=FLAGS.augment,
        geometry=FLAGS.geometry, patch_size=FLAGS.patch_size)
    result = train_then_tune(config, tune=FLAGS.tune)
    print(f"trained {result['step']} updates -> {result['model_dir']}")


if __name__ == "__main__":
    app.run(lambda argv: run_tool(main, argv))
