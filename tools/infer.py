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
      --liver_model=models/liver --tumor_model=models/tumor --skip_existing --no_crf --no_opening
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from absl import app, flags

from liverseg.cli import run_tool
from liverseg.postprocess.crf import DEFAULT_MAX_VOXELS

FLAGS = flags.FLAGS
flags.DEFINE_string("input_dir", None, "Directory of CT volumes (.nii / .nii.gz) or one volume.")
flags.DEFINE_string("output_dir", None, "Where the label maps go (created if missing).")
flags.DEFINE_string("liver_model", None, "Liver model: liverseg model directory or .keras file.")
flags.DEFINE_string("tumor_model", None, "Tumour model (optional: without it, liver only).")
flags.DEFINE_bool("write_probabilities", False,
                  "Also write <output>_liver_probability and _tumor_probability (float32).")
flags.DEFINE_bool("overlays", False, "Also write <output>_overlay.png per volume.")
flags.DEFINE_bool("overwrite", False, "Replace existing outputs.")
flags.DEFINE_bool("skip_existing", False, "Skip volumes whose label map already exists.")
flags.DEFINE_integer("batch_size", 0,
                     "Slice stacks per network call; 0 = automatic: 512x512 pixels per call "
                     "(1 stack at 512x512, 4 at 256x256), which bounds TensorFlow's memory on "
                     "CPU; on a GPU a larger batch (8-32) is faster.",
                     lower_bound=0)
flags.DEFINE_bool("mixed_precision", False, "Compute the networks in bfloat16 (float32 weights).")
flags.DEFINE_bool("xla", False, "Compile the networks with XLA (jit_compile).")
flags.DEFINE_enum("postprocess", "stored", ["stored", "original"],
                  "Test-time choices: 'stored' = the models' postprocessing.json (chosen on "
                  "validation after training; the original cascade for models without one), "
                  "'original' = the original cascade (middle channel, CRF and opening on both). "
                  "The flags below override single choices.")
flags.DEFINE_enum("geometry", "model", ["model", "native"],
                  "'model': bring each volume to the orientation and pixel spacing the liver "
                  "model trained at (its plans.json) and the result back; 'native': run on the "
                  "volume as stored (the original; also for models without plans.json).")
flags.DEFINE_bool("no_crf", None, "Skip the 3D dense CRF (threshold at 0.5 instead).")
flags.DEFINE_list("crf_targets", None,
                  "Comma list of the structures the CRF refines (liver, tumor); the others are "
                  "thresholded at 0.5. Empty = none, like --no_crf.")
flags.DEFINE_integer("crf_max_voxels", DEFAULT_MAX_VOXELS,
                     "Voxels of one CRF (~200 bytes each) before it runs in overlapping z slabs "
                     "(bounds its memory, slightly changes its result); 0 = no limit.",
                     lower_bound=0)
flags.DEFINE_bool("no_opening", None, "Skip the morphological opening.")
flags.DEFINE_list("opening_targets", None,
                  "Comma list of the structures the opening applies to (liver, tumor). "
                  "Empty = none, like --no_opening.")
flags.DEFINE_bool("liver_largest_component", None,
                  "Keep only the liver's largest 3D connected component.")
flags.DEFINE_float("tumor_min_volume_mm3", None,
                   "Drop tumour components smaller than this many mm^3 (0 keeps all).",
                   lower_bound=0.0)
flags.DEFINE_bool("no_liver_mask", False, "Do not remove tumour outside the liver.")
flags.DEFINE_enum("crf_spatial_scale", "reference", ["reference", "voxels"],
                  "CRF kernel widths: scaled to the in-plane size (identity at 512x512) or "
                  "the original voxel numbers at every size.")
flags.DEFINE_enum("crf_on", "roi", ["roi", "volume"],
                  "Run the CRF on the structure's bounding box plus a margin, or on the whole volume.")
flags.DEFINE_enum("crop_variant", "original", ["original", "paper"],
                  "Tumour ROI crop: 'original' drops the box's last row/column as the original code.")
flags.DEFINE_enum("slice_fusion", None, ["middle", "mean"],
                  "Each slice's probability: 'middle' channel of the stack centred on it (the "
                  "original) or the 'mean' over every stack holding it (free for the liver net).")
flags.DEFINE_list("tta_shifts", None,
                  "Test-time shifts as ROWS:COLS pixel pairs (e.g. 2:2); each adds one pass of "
                  "both networks, whose outputs are moved back and averaged with the plain one.")
flags.mark_flags_as_required(["input_dir", "output_dir", "liver_model"])


def _shifts(values):
    from liverseg.errors import ConfigError

    try:
        return tuple(tuple(int(part) for part in v.split(":")) for v in values)
    except ValueError:
        raise ConfigError(f"tta_shifts: expected ROWS:COLS integer pairs, got {','.join(values)!r}"
                          ) from None


def _overrides() -> dict:
    """The test-time choices given on the command line (None = not given)."""
    given = {"slice_fusion": FLAGS.slice_fusion,
             "tta_shifts": None if FLAGS.tta_shifts is None else _shifts(FLAGS.tta_shifts),
             "crf_targets": None if FLAGS.crf_targets is None else tuple(FLAGS.crf_targets),
             "opening_targets": (None if FLAGS.opening_targets is None
                                 else tuple(FLAGS.opening_targets)),
             "crf": None if FLAGS.no_crf is None else not FLAGS.no_crf,
             "opening": None if FLAGS.no_opening is None else not FLAGS.no_opening,
             "liver_largest_component": FLAGS.liver_largest_component,
             "tumor_min_volume_mm3": FLAGS.tumor_min_volume_mm3}
    return {k: v for k, v in given.items() if v is not None}


def main(argv):
    if len(argv) > 1:
        from liverseg.errors import ConfigError

        raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
    from liverseg.inference import RunOptions, SegmentOptions, resolve_options, run

    resolved = resolve_options(
        FLAGS.liver_model, FLAGS.tumor_model, postprocess=FLAGS.postprocess,
        geometry=FLAGS.geometry, overrides=_overrides(),
        base=SegmentOptions(
            batch_size=FLAGS.batch_size or "auto", mixed_precision=FLAGS.mixed_precision,
            jit_compile=FLAGS.xla, crf_max_voxels=FLAGS.crf_max_voxels,
            liver_mask=not FLAGS.no_liver_mask, crf_on=FLAGS.crf_on,
            crf_spatial_scale=FLAGS.crf_spatial_scale, crop_variant=FLAGS.crop_variant))
    print(f"post-processing: {resolved.choice_source}; grid: {resolved.geometry_source}")
    report = run(
        FLAGS.input_dir, FLAGS.output_dir,
        liver_model=FLAGS.liver_model, tumor_model=FLAGS.tumor_model,
        segment_options=resolved.segment_options, geometry=resolved.geometry,
        provenance={"postprocessing": {"source": resolved.choice_source},
                    "geometry": {"source": resolved.geometry_source}},
        options=RunOptions(overwrite=FLAGS.overwrite, skip_existing=FLAGS.skip_existing,
                           write_probabilities=FLAGS.write_probabilities,
                           overlays=FLAGS.overlays))
    print(f"{len(report.written)} written, {len(report.skipped)} skipped, "
          f"{len(report.failed)} failed -> {FLAGS.output_dir}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    app.run(lambda argv: run_tool(main, argv))
