"""Scores a directory of LiTS label maps against the references.

Pairs ``segmentation-N.nii[.gz]`` (or ``test-segmentation-N``) files by case
id, computes the LiTS metrics with the reference voxel spacing, prints a
table and writes a JSON report plus a per-case CSV beside it. Exits with
status 1 if any case could not be scored (the report still lists the others
and the failures).

Usage:
  python tools/evaluate.py --pred_dir=runs/pred --gt_dir=data/LiTS \\
      --output=runs/report.json [--missing=empty] [--rvd_convention=scoring_program] [--overwrite]
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app, flags

from liverseg.cli import run_tool
from liverseg.errors import LiverSegError
from liverseg.evaluation import report as report_lib
from liverseg.evaluation.metrics import RvdConvention

FLAGS = flags.FLAGS
flags.DEFINE_string("pred_dir", None, "Directory of predicted segmentation-N.nii[.gz] files.")
flags.DEFINE_string("gt_dir", None, "Directory of reference segmentation-N.nii[.gz] files.")
flags.DEFINE_string("output", None, "JSON report path; the CSV is written beside it (.csv).")
flags.DEFINE_enum("missing", report_lib.MissingPolicy.ERROR.value,
                  [m.value for m in report_lib.MissingPolicy],
                  "A reference without prediction: 'error' (case fails) or 'empty' (scored as empty).")
flags.DEFINE_enum("rvd_convention", RvdConvention.REFERENCE.value, [c.value for c in RvdConvention],
                  "'reference': (|P|-|G|)/|G|; 'scoring_program': (|G|-|P|)/|P| as the LiTS program.")
flags.DEFINE_bool("overwrite", False, "Replace existing report files.")
flags.mark_flags_as_required(["pred_dir", "gt_dir", "output"])


def main(argv):
    del argv
    report = report_lib.evaluate_to_files(
        FLAGS.pred_dir, FLAGS.gt_dir, FLAGS.output, missing=FLAGS.missing,
        rvd_convention=FLAGS.rvd_convention, overwrite=FLAGS.overwrite)
    print(report_lib.format_table(report))
    if report["failures"]:
        raise LiverSegError(f"{len(report['failures'])} case(s) could not be scored; "
                            f"see {FLAGS.output}")


if __name__ == "__main__":
    app.run(lambda argv: run_tool(main, argv))
