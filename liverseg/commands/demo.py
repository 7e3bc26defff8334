r"""Runs the whole system end to end on built-in CT phantoms.

Usage:
  python tools/demo.py                      # about 16 minutes on 2 CPU cores
  python tools/demo.py --quick              # about 4 minutes, smaller phantoms
  python tools/demo.py --work_dir=/tmp/demo

Installs missing requirements first. Generates training and held-out
phantoms, trains the liver then the tumour network (fast recipe), segments
the held-out phantoms through the full cascade, evaluates them and writes
WORK_DIR/report.json, WORK_DIR/overlays/*.png, WORK_DIR/training_curves.png
and the models in WORK_DIR/models/{liver,tumor}. Rerunning resumes.
"""

from absl import flags

from liverseg.cli import main_entry

FLAGS = flags.FLAGS
flags.DEFINE_string("work_dir", "demo_work", "Where phantoms, models and results go.")
flags.DEFINE_bool("quick", False, "Smaller phantoms and fewer updates (about 4 minutes).")


def main(argv):
    del argv
    from liverseg.demo import run_demo

    run_demo(FLAGS.work_dir, quick=FLAGS.quick)


def run() -> None:
    """Console entry point (``liverseg-demo``; ``tools/demo.py``)."""
    main_entry(__doc__, main, __name__)
