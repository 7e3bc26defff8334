"""The flags ``infer.py`` and ``infer_beam.py`` share, and the options they resolve to."""

from __future__ import annotations

from absl import flags

from liverseg.inference.cascade import SegmentOptions
from liverseg.inference.resolve import ResolvedOptions, Sources
from liverseg.inference.runner import RunOptions
from liverseg.postprocess.choice import PostprocessChoice
from liverseg.utils.options import define_flags, from_flags


class InferenceFlags:
    """Defines the input, output, model, run, source and cascade flags on ``FLAGS``."""

    def __init__(self, FLAGS: flags.FlagValues):
        self.FLAGS = FLAGS
        flags.DEFINE_string(
            "input_dir", None, "Directory of CT volumes (.nii / .nii.gz) or one volume.", FLAGS
        )
        flags.DEFINE_string(
            "output_dir", None, "Where the label maps go (created if missing).", FLAGS
        )
        flags.DEFINE_string(
            "liver_model", None, "Liver model: liverseg model directory or .keras file.", FLAGS
        )
        flags.DEFINE_string(
            "tumor_model", None, "Tumour model (optional: without it, liver only).", FLAGS
        )
        flags.DEFINE_bool(
            "statistics",
            False,
            "Also write per case <output stem>_statistics.json (liver volume, tumour burden, "
            "lesions with RECIST-style diameters and HU) and statistics.json / statistics.csv "
            "over the output directory (a local one, for infer_beam).",
            FLAGS,
        )
        flags.DEFINE_bool(
            "report_html",
            False,
            "Also write <output_dir>/report.html: one self-contained page (images embedded) "
            "with a slice scroller of each segmented CT, its statistics and the options used.",
            FLAGS,
        )
        self.run_flags = define_flags(RunOptions, FLAGS)
        self.source_flags = define_flags(Sources, FLAGS)
        self.cascade_flags = define_flags(SegmentOptions, FLAGS)
        # Not given = the models' stored choice (or the original's): see --postprocess.
        self.choice_flags = define_flags(
            PostprocessChoice,
            FLAGS,
            unset_defaults=list(PostprocessChoice.__dataclass_fields__),
            unset_help="Default: as --postprocess says.",
        )
        flags.mark_flags_as_required(["input_dir", "output_dir", "liver_model"], FLAGS)

    def resolve(self) -> ResolvedOptions:
        """The cascade options: the models' stored choices, then the flags given."""
        from liverseg.inference import resolve_options

        FLAGS = self.FLAGS
        resolved = resolve_options(
            FLAGS.liver_model,
            FLAGS.tumor_model,
            **from_flags(Sources, FLAGS, self.source_flags),
            overrides=from_flags(PostprocessChoice, FLAGS, self.choice_flags, given_only=True),
            base=SegmentOptions(**from_flags(SegmentOptions, FLAGS, self.cascade_flags)),
        )
        print(f"post-processing: {resolved.choice_source}; grid: {resolved.geometry_source}")
        return resolved

    def run_options(self) -> RunOptions:
        return RunOptions(**from_flags(RunOptions, self.FLAGS, self.run_flags))

    def segment_kwargs(self) -> dict:
        """What ``inference.run`` and ``segment_with_beam`` take besides the paths."""
        resolved = self.resolve()
        return {
            "liver_model": self.FLAGS.liver_model,
            "tumor_model": self.FLAGS.tumor_model,
            "segment_options": resolved.segment_options,
            "geometry": resolved.geometry,
            "provenance": {
                "postprocessing": {"source": resolved.choice_source},
                "geometry": {"source": resolved.geometry_source},
            },
        }


def write_extras(FLAGS: flags.FlagValues, written: list[tuple[str, str]]) -> None:
    """--statistics and --report_html for the ``(label map, CT)`` pairs a run wrote."""
    if not (FLAGS.statistics or FLAGS.report_html):
        return
    from pathlib import Path

    from liverseg.evaluation.html_report import RunPage, write_run_report

    output_dir = Path(FLAGS.output_dir)
    page = RunPage() if FLAGS.report_html else None
    if FLAGS.statistics:
        from liverseg.evaluation.statistics import write_run_statistics

        each = page.add if page is not None else None
        json_path, _ = write_run_statistics(written, output_dir, each=each)
        print(f"statistics: {json_path} and {json_path.with_suffix('.csv').name}")
    if page is not None:
        import json

        from liverseg.inference.resolve import OPTIONS_FILE

        options_path = output_dir / OPTIONS_FILE
        options = json.loads(options_path.read_text()) if options_path.is_file() else None
        if FLAGS.statistics:
            path = page.write(output_dir / "report.html", options)
        else:
            path = write_run_report(output_dir / "report.html", written, options)
        print(f"results page: {path}")
