r"""Segments CT volumes into LiTS label maps (0 background, 1 liver, 2 tumour).

Runs the full cascade on every NIfTI volume and every DICOM CT series folder
(`<folder>_segmentation.nii.gz`; --dicom_seg adds a DICOM SEG) of --input_dir
(or on one file or series folder):
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
  # DICOM series folders in, statistics, a results page and DICOM SEG out
  python tools/infer.py --input_dir=patients --output_dir=runs/pred \
      --liver_model=models/liver --tumor_model=models/tumor \
      --statistics --report_html --dicom_seg
  # part 3 of 16 of a cohort (a SLURM array task; see BUILD.md)
  python tools/infer.py --input_dir=cohort --output_dir=runs/pred \
      --liver_model=models/liver --tumor_model=models/tumor --num_parts=16 --part_id=3
  # resume an interrupted run; no CRF or opening
  python tools/infer.py --input_dir=data/test --output_dir=runs/pred \
      --liver_model=models/liver --tumor_model=models/tumor --skip_existing \
      --crf_targets= --opening_targets=
"""

from absl import flags

from liverseg.cli import main_entry
from liverseg.commands import inference_flags

FLAGS = flags.FLAGS
INFERENCE = inference_flags.InferenceFlags(FLAGS)
flags.adopt_module_key_flags(inference_flags)


def main(argv):
    if len(argv) > 1:
        from liverseg.errors import ConfigError

        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    from liverseg.inference import run

    report = run(
        FLAGS.input_dir,
        FLAGS.output_dir,
        options=INFERENCE.run_options(),
        **INFERENCE.segment_kwargs(),
    )
    inference_flags.write_extras(FLAGS, [(c.output, c.input) for c in report.written])
    print(
        f"{len(report.written)} written, {len(report.skipped)} skipped, "
        f"{len(report.failed)} failed -> {FLAGS.output_dir}"
    )
    return 0 if report.ok else 1


def run() -> None:
    """Console entry point (``liverseg-infer``; ``tools/infer.py``)."""
    main_entry(__doc__, main, __name__)
