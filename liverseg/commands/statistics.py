r"""Clinical statistics of label maps: liver volume, tumour burden, lesions.

For every label map (`*.nii`, `*.nii.gz`) of --labels_dir (reference
segmentations or earlier outputs): liver volume (ml, labels 1 and 2), tumour
volume and burden (tumour ml / liver ml), and per lesion (3D connected
component of label 2, the evaluation's definition) its volume, longest axial
diameter and the diameter perpendicular to it on the same slice (mm,
RECIST-style), centroid in scanner millimetres, and with --ct_dir the mean and
standard deviation of its HU. Sizes come from each file's affine. Writes
--output (JSON) and a CSV beside it (one row per case); a file that cannot be
read is listed with the reason and the others are measured.

Usage:
  python tools/statistics.py --labels_dir=LiTS/train-labels --output=stats.json
  python tools/statistics.py --labels_dir=results --ct_dir=LiTS/test --output=results/stats.json
"""

from absl import flags

from liverseg.cli import main_entry

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "labels_dir", None, "Directory of label maps (0 background, 1 liver, 2 tumour)."
)
flags.DEFINE_string("output", None, "JSON file to write (the CSV goes beside it).")
flags.DEFINE_string("ct_dir", None, "Optional: the CT volumes, for each lesion's HU.")
flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
flags.mark_flags_as_required(["labels_dir", "output"])


def main(argv):
    if len(argv) > 1:
        from liverseg.errors import ConfigError

        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    from liverseg.evaluation.statistics import statistics_of_directory, write_statistics

    cases, failures = statistics_of_directory(FLAGS.labels_dir, FLAGS.ct_dir)
    json_path, csv_path = write_statistics(
        cases, FLAGS.output, failures=failures, overwrite=FLAGS.overwrite
    )
    for case in cases:
        print(
            f"{case['case']}: liver {case['liver_volume_ml']:.1f} ml, "
            f"tumour {case['tumor_volume_ml']:.2f} ml (burden {case['tumor_burden']:.4f}), "
            f"{case['lesion_count']} lesion(s)"
        )
    print(f"{len(cases)} measured, {len(failures)} failed -> {json_path}, {csv_path}")
    return 0 if not failures else 1


def run() -> None:
    """Console entry point (``liverseg-statistics``; ``tools/statistics.py``)."""
    main_entry(__doc__, main, __name__)
