r"""Scores a directory of LiTS label maps against the references.

Pairs ``segmentation-N.nii[.gz]`` (or ``test-segmentation-N``) files by case
id, computes the LiTS metrics with the reference voxel spacing, prints a
table and writes a JSON report plus a per-case CSV beside it. Exits with
status 1 if any case could not be scored (the report still lists the others
and the failures).

Usage:
  python tools/evaluate.py --pred_dir=runs/pred --gt_dir=data/LiTS \\
      --output=runs/report.json [--missing=empty] [--rvd_convention=scoring_program] [--overwrite]
"""

from absl import flags

from liverseg.cli import main_entry
from liverseg.errors import LiverSegError
from liverseg.evaluation import report as report_lib
from liverseg.evaluation.metrics import RvdConvention

FLAGS = flags.FLAGS
flags.DEFINE_string("pred_dir", None, "Directory of predicted segmentation-N.nii[.gz] files.")
flags.DEFINE_string("gt_dir", None, "Directory of reference segmentation-N.nii[.gz] files.")
flags.DEFINE_string("output", None, "JSON report path; the CSV is written beside it (.csv).")
flags.DEFINE_enum(
    "missing",
    report_lib.MissingPolicy.ERROR.value,
    [m.value for m in report_lib.MissingPolicy],
    "A reference without prediction: 'error' (case fails) or 'empty' (scored as empty).",
)
flags.DEFINE_enum(
    "rvd_convention",
    RvdConvention.REFERENCE.value,
    [c.value for c in RvdConvention],
    "'reference': (|P|-|G|)/|G|; 'scoring_program': (|G|-|P|)/|P| as the LiTS program.",
)
flags.DEFINE_bool("overwrite", False, "Replace existing report files.")
flags.mark_flags_as_required(["pred_dir", "gt_dir", "output"])


def main(argv):
    del argv
    report = report_lib.evaluate_to_files(
        FLAGS.pred_dir,
        FLAGS.gt_dir,
        FLAGS.output,
        missing=FLAGS.missing,
        rvd_convention=FLAGS.rvd_convention,
        overwrite=FLAGS.overwrite,
    )
    print(report_lib.format_table(report))
    if report["failures"]:
        raise LiverSegError(
            f"{len(report['failures'])} case(s) could not be scored; see {FLAGS.output}"
        )


def run() -> None:
    """Console entry point (``liverseg-evaluate``; ``tools/evaluate.py``)."""
    main_entry(__doc__, main, __name__)
