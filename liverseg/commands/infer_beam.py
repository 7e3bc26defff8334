r"""Segments a cohort of CT volumes with an Apache Beam pipeline (any runner).

The cascade of `infer.py`, volume by volume, inside Beam's RunInference: each
worker loads the two models once; inputs are found with Beam's file systems
(local paths, gs://, s3://, ...); outputs get the names, contents and
geometry `infer.py` gives them, written under a temporary name and renamed.
A volume that cannot be read or segmented is listed with its reason in
<output_dir>/failed_cases.json and the pipeline goes on; every case is in
<output_dir>/beam_report.json. The flags are infer.py's; Beam's own options
(runner, workers, project, ...) follow a `--`. Needs requirements-beam.txt.

Usage:
  # this machine, two worker processes
  python tools/infer_beam.py --input_dir=data/test --output_dir=runs/pred \
      --liver_model=models/liver --tumor_model=models/tumor -- \
      --runner=DirectRunner --direct_num_workers=2 --direct_running_mode=multi_processing
  # Google Cloud Dataflow (models and data on Cloud Storage; see BUILD.md)
  python tools/infer_beam.py --input_dir=gs://bucket/cohort --output_dir=gs://bucket/pred \
      --liver_model=/models/liver --tumor_model=/models/tumor -- \
      --runner=DataflowRunner --project=my-project --region=europe-west4 \
      --temp_location=gs://bucket/tmp --sdk_container_image=registry.example.org/liverseg:latest
"""

from absl import flags

from liverseg.cli import main_entry
from liverseg.commands import inference_flags

FLAGS = flags.FLAGS
INFERENCE = inference_flags.InferenceFlags(FLAGS)
flags.adopt_module_key_flags(inference_flags)


def main(argv):
    try:
        from liverseg.inference.beam import segment_with_beam
    except ImportError as exc:
        from liverseg.errors import ConfigError

        raise ConfigError(
            f"Apache Beam is not installed ({exc}): pip install -r requirements-beam.txt"
        ) from None
    counts = segment_with_beam(
        FLAGS.input_dir,
        FLAGS.output_dir,
        run_options=INFERENCE.run_options(),
        pipeline_args=argv[1:],
        **INFERENCE.segment_kwargs(),
    )
    if FLAGS.statistics or FLAGS.report_html:
        write_statistics_of_report(FLAGS.output_dir)
    print(
        f"{counts['written']} written, {counts['skipped']} skipped, "
        f"{counts['failed']} failed -> {FLAGS.output_dir}"
    )
    return 0 if counts["failed"] == 0 else 1


def write_statistics_of_report(output_dir: str) -> None:
    """--statistics / --report_html from the pipeline's report (a local output directory)."""
    import json
    from pathlib import Path

    from liverseg.errors import ConfigError
    from liverseg.inference.beam import REPORT_FILE, is_local

    if not is_local(output_dir):
        raise ConfigError(f"{output_dir}: --statistics and --report_html need a local output")
    cases = json.loads((Path(output_dir) / REPORT_FILE).read_text())["cases"]
    written = [(c["output"], c["input"]) for c in cases if c["status"] == "written"]
    inference_flags.write_extras(FLAGS, written)


def run() -> None:
    """Console entry point (``liverseg-infer-beam``; ``tools/infer_beam.py``)."""
    main_entry(__doc__, main, __name__)
