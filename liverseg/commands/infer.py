"""Segments CT volumes into LiTS label maps (0 background, 1 liver, 2 tumour).

Runs the full cascade on every NIfTI volume of --input_dir (or on one file):
liver net, liver ROI, tumour net on the ROI, masking with the liver, 3D
dense CRF and opening. `volume-N.nii[.gz]` gives `segmentation-N.nii[.gz]`
(`test-volume-N` gives `test-segmentation-N`), other names
`<stem>_segmentation.nii[.gz]`, with the input's shape, affine and header.
Label maps (`segmentation-*`) and non-NIfTI files in --input_dir are skipped
and listed. Without --tumor_model the output holds the liver only (labels 0
and 1). Each file is independent: a bad file is reported on one line and the
run goes on; the exit status is 1 if any file failed.

By default the models decide: the post-processing stored with them
(postprocessing.json, chosen on validation cases after training; the
original cascade for a model without one) and the grid they trained on
(plans.json: each volume is reoriented and resampled to it and the result
brought back, so the labels keep the input's geometry). --postprocess=original
and --geometry=native give the original pipeline; single flags override
single choices. The options used are written to
<output_dir>/inference_options.json.

Usage:
  python tools/infer.py --input_dir=data/test --output_dir=runs/pred \
      --liver_model=models/liver --tumor_model=models/tumor
  # one file, with probability maps and an overlay PNG, replacing old outputs
  python tools/infer.py --input_dir=data/test/volume-7.nii.gz --output_dir=runs/pred \
      --liver_model=models/liver --tumor_model=models/tumor \
      --write_probabilities --overlays --overwrite
  # the original cascade on volumes as stored, whatever the models store
  python tools/infer.py --input_dir=data/test --output_dir=runs/pred \
      --liver_model=models/liver --tumor_model=models/tumor \
      --postprocess=original --geometry=native
  # resume an interrupted run; no CRF or opening
  python tools/infer.py --input_dir=data/test --output_dir=runs/pred \
      --liver_model=models/liver --tumor_model=models/tumor --skip_existing \
      --crf_targets= --opening_targets=
"""

from absl import flags

from liverseg.cli import main_entry
from liverseg.inference.cascade import SegmentOptions
from liverseg.inference.resolve import Sources
from liverseg.inference.runner import RunOptions
from liverseg.postprocess.choice import PostprocessChoice
from liverseg.utils.options import define_flags, from_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("input_dir", None, "Directory of CT volumes (.nii / .nii.gz) or one volume.")
flags.DEFINE_string("output_dir", None, "Where the label maps go (created if missing).")
flags.DEFINE_string("liver_model", None, "Liver model: liverseg model directory or .keras file.")
flags.DEFINE_string("tumor_model", None, "Tumour model (optional: without it, liver only).")
RUN_FLAGS = define_flags(RunOptions, FLAGS)
SOURCE_FLAGS = define_flags(Sources, FLAGS)
CASCADE_FLAGS = define_flags(SegmentOptions, FLAGS)
# Not given = the models' stored choice (or the original's): see --postprocess.
CHOICE_FLAGS = define_flags(
    PostprocessChoice,
    FLAGS,
    unset_defaults=list(PostprocessChoice.__dataclass_fields__),
    unset_help="Default: as --postprocess says.",
)
flags.mark_flags_as_required(["input_dir", "output_dir", "liver_model"])


def main(argv):
    if len(argv) > 1:
        from liverseg.errors import ConfigError

        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    from liverseg.inference import resolve_options, run

    resolved = resolve_options(
        FLAGS.liver_model,
        FLAGS.tumor_model,
        **from_flags(Sources, FLAGS, SOURCE_FLAGS),
        overrides=from_flags(PostprocessChoice, FLAGS, CHOICE_FLAGS, given_only=True),
        base=SegmentOptions(**from_flags(SegmentOptions, FLAGS, CASCADE_FLAGS)),
    )
    print(f"post-processing: {resolved.choice_source}; grid: {resolved.geometry_source}")
    report = run(
        FLAGS.input_dir,
        FLAGS.output_dir,
        liver_model=FLAGS.liver_model,
        tumor_model=FLAGS.tumor_model,
        segment_options=resolved.segment_options,
        geometry=resolved.geometry,
        provenance={
            "postprocessing": {"source": resolved.choice_source},
            "geometry": {"source": resolved.geometry_source},
        },
        options=RunOptions(**from_flags(RunOptions, FLAGS, RUN_FLAGS)),
    )
    print(
        f"{len(report.written)} written, {len(report.skipped)} skipped, "
        f"{len(report.failed)} failed -> {FLAGS.output_dir}"
    )
    return 0 if report.ok else 1


def run() -> None:
    """Console entry point (``liverseg-infer``; ``tools/infer.py``)."""
    main_entry(__doc__, main, __name__)
