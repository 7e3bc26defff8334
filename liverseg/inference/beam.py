"""Batch inference on Apache Beam: the whole cascade per volume, on any runner.

``segment_with_beam(input_dir, output_dir, ...)`` builds and runs a pipeline
that discovers the volumes (Beam's file systems: local paths, ``gs://``,
``s3://``, ...), plans their outputs exactly as :func:`liverseg.inference.run`
does (names, twins, ``overwrite`` / ``skip_existing``), and segments each
volume with :class:`CascadeModelHandler` inside Beam's ``RunInference``: the
two networks are loaded once per worker and every volume goes through
:func:`liverseg.inference.runner.run_case`, the function ``infer.py`` uses,
so the label maps are the same files. A failing volume becomes a failed case
with its one-line reason (``failed_cases.json``) and never fails the
pipeline; every case, written, skipped or failed, is listed in
``beam_report.json``. Volumes on a remote file system are staged through a
local temporary directory and their outputs copied back under a temporary
name, then renamed into place.

Apache Beam is an optional dependency (``requirements-beam.txt``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import posixpath
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from liverseg.errors import LayoutError, OutputError
from liverseg.inference.cascade import Segmenter, SegmentOptions
from liverseg.inference.runner import (
    OPTIONS_FILE,
    CasePlan,
    CaseReport,
    CaseStatus,
    RunOptions,
    RunReport,
    auxiliary_names,
    discover_inputs,
    natural_key,
    options_record,
    output_name,
    plan_cases,
    run_case,
    select_part,
    skip_reason,
    split_nifti_name,
)
from liverseg.utils.atomic import atomic_write_text

logger = logging.getLogger(__name__)

#: files are copied as they are (Beam would gunzip a .nii.gz on the way)
_RAW = CompressionTypes.UNCOMPRESSED
REPORT_FILE = "beam_report.json"
FAILED_FILE = "failed_cases.json"


def is_local(path: str) -> bool:
    """Whether Beam reads ``path`` from the local file system."""
    return FileSystems.get_scheme(str(path)) is None


@dataclasses.dataclass(frozen=True)
class BeamCase:
    """One volume to segment: where it is and where its outputs go (paths or URLs)."""

    input: str
    output: str
    aux: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_plan(cls, plan: CasePlan) -> BeamCase:
        return cls(
            str(plan.input), str(plan.output), tuple((k, str(v)) for k, v in plan.aux.items())
        )


class CascadeModelHandler(ModelHandler):
    """RunInference handler: the liverseg cascade, loaded once per worker, one volume a batch.

    The model is a :class:`Segmenter` built from the model paths, the
    resolved ``segment_options`` and ``geometry``; each element is a
    :class:`BeamCase`, each prediction a :class:`CaseReport` as a dict.
    """

    def __init__(
        self,
        liver_model: str,
        tumor_model: str | None,
        segment_options: SegmentOptions,
        geometry,
        run_options: RunOptions,
        stage_locally: bool | None = None,
    ):
        super().__init__()
        self.liver_model = str(liver_model)
        self.tumor_model = None if tumor_model is None else str(tumor_model)
        self.segment_options = dataclasses.replace(
            segment_options, keep_probabilities=run_options.write_probabilities
        )
        self.geometry = geometry
        self.run_options = run_options
        #: None: stage remote paths only; True also stages local ones (tests)
        self.stage_locally = stage_locally

    def load_model(self) -> Segmenter:
        return Segmenter(
            self.liver_model, self.tumor_model, self.segment_options, geometry=self.geometry
        )

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 1}

    def get_metrics_namespace(self) -> str:
        return "liverseg"

    def run_inference(
        self, batch: Sequence[BeamCase], model: Segmenter, inference_args: dict | None = None
    ) -> Iterable[PredictionResult]:
        return [PredictionResult(case, self._segment(case, model)) for case in batch]

    def _segment(self, case: BeamCase, segmenter: Segmenter) -> dict:
        staged = self.stage_locally or not (is_local(case.input) and is_local(case.output))
        if not staged:
            plan = CasePlan(Path(case.input), Path(case.output), {k: Path(v) for k, v in case.aux})
            return run_case(plan, segmenter, self.run_options, Path(case.input).name).to_dict()
        return _segment_staged(case, segmenter, self.run_options)


def _segment_staged(case: BeamCase, segmenter: Segmenter, options: RunOptions) -> dict:
    """Copies the input to a local directory, segments it there, uploads the outputs atomically."""
    with tempfile.TemporaryDirectory(prefix="liverseg-beam-") as tmp:
        local_in = Path(tmp) / "in" / posixpath.basename(case.input)
        local_in.parent.mkdir()
        report = CaseReport(Path(case.input), None, CaseStatus.FAILED)
        try:
            with (
                FileSystems.open(case.input, compression_type=_RAW) as src,
                open(local_in, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
        except Exception as exc:  # an unreadable input fails its case only
            report.error = f"{case.input}: cannot read ({type(exc).__name__}: {exc})"
            logger.error("%s", report.error)
            return report.to_dict()
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        local_plan = CasePlan(
            local_in,
            out_dir / posixpath.basename(case.output),
            {k: out_dir / posixpath.basename(v) for k, v in case.aux},
        )
        local_options = dataclasses.replace(options, overwrite=True, skip_existing=False)
        local = run_case(local_plan, segmenter, local_options, posixpath.basename(case.input))
        result = local.to_dict()
        result["input"] = case.input
        if local.error:
            result["error"] = local.error.replace(str(local_in), case.input)
            return result
        remote = dict(case.aux)
        uploads = [(p, remote[k]) for k, p in local_plan.aux.items() if p in local.extra_outputs]
        uploads.append((local_plan.output, case.output))  # the label map last
        try:
            for source, target in uploads:
                _upload(source, target)
        except Exception as exc:
            result.update(status=CaseStatus.FAILED.value, output=None)
            result["error"] = f"{case.output}: cannot write ({type(exc).__name__}: {exc})"
            logger.error("%s", result["error"])
            return result
        result["output"] = case.output
        result["extra_outputs"] = [t for _, t in uploads[:-1]]
        return result


def _upload(source: Path, target: str) -> None:
    """Copies ``source`` to ``target`` under a temporary name, then renames it into place."""
    directory, name = posixpath.split(target)
    tmp = posixpath.join(directory, f".{name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    with open(source, "rb") as src, FileSystems.create(tmp, compression_type=_RAW) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    if FileSystems.exists(target):
        FileSystems.delete([target])
    FileSystems.rename([tmp], [target])


# ----------------------------------------------------------------------------
# Planning (on the launching machine, before the pipeline runs)


def plan_beam_run(
    input_dir: str, output_dir: str, options: RunOptions
) -> tuple[list[BeamCase], RunReport]:
    """The cases to segment and the report of those decided already (skipped, refused)."""
    if is_local(input_dir) and is_local(output_dir):
        paths, ignored = discover_inputs(input_dir)
        out_dir = Path(output_dir)
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputError(out_dir, "output directory path exists and is not a directory")
        out_dir.mkdir(parents=True, exist_ok=True)
        report = RunReport([], list(ignored))
        part = select_part(paths, options.num_parts, options.part_id)
        plans = plan_cases(part, out_dir, options, report, all_inputs=paths)
        return [BeamCase.from_plan(p) for p in plans], report
    return _plan_remote(input_dir, output_dir, options)


def _plan_remote(
    input_dir: str, output_dir: str, options: RunOptions
) -> tuple[list[BeamCase], RunReport]:
    """The same rules as :func:`plan_cases` on Beam's file systems (one directory level)."""
    pattern = FileSystems.join(input_dir.rstrip("/"), "*")
    found = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    inputs, ignored = [], []
    for url in sorted(found, key=lambda u: natural_key(Path(posixpath.basename(u)))):
        name = posixpath.basename(url)
        if name.startswith(".") or not name:
            continue
        reason = skip_reason(_NameOnly(name))
        (inputs.append(url) if reason is None else ignored.append((Path(name), reason)))
    if not inputs:
        raise LayoutError(input_dir, "no CT volumes (.nii or .nii.gz, other than label maps) found")
    report = RunReport([], ignored)
    stems: dict[str, list[str]] = {}
    for url in inputs:
        stems.setdefault(split_nifti_name(posixpath.basename(url))[0], []).append(url)
    cases = []
    for url in select_part(inputs, options.num_parts, options.part_id):
        name = output_name(posixpath.basename(url))
        out = FileSystems.join(output_dir.rstrip("/"), name)
        aux = tuple(
            (k, FileSystems.join(output_dir.rstrip("/"), v))
            for k, v in auxiliary_names(name).items()
        )
        twins = [u for u in stems[split_nifti_name(posixpath.basename(url))[0]] if u != url]
        error = None
        if twins:
            error = (
                f"{url}: duplicate case: {', '.join(twins)} has the same name up to its extension"
            )
        elif FileSystems.exists(out):
            if options.skip_existing:
                report.cases.append(CaseReport(Path(url), Path(out), CaseStatus.SKIPPED))
                continue
            if not options.overwrite:
                error = f"{out}: exists (pass --overwrite to replace it)"
        if error:
            report.cases.append(CaseReport(Path(url), None, CaseStatus.FAILED, error))
            logger.error("%s", error)
            continue
        cases.append(BeamCase(url, out, aux))
    return cases, report


@dataclasses.dataclass(frozen=True)
class _NameOnly:
    """A remote directory entry seen through :func:`skip_reason` (files only)."""

    name: str

    def is_dir(self) -> bool:
        return False


# ----------------------------------------------------------------------------
# The pipeline


def _write_text(path: str, text: str) -> None:
    """Atomically, on the local disk or on any of Beam's file systems."""
    if is_local(path):
        atomic_write_text(Path(path), text, overwrite=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / posixpath.basename(path)
        local.write_text(text)
        _upload(local, path)


def _write_json(path: str, cases: list[dict]) -> None:
    ordered = sorted(cases, key=lambda c: natural_key(Path(c["input"])))
    _write_text(path, json.dumps({"cases": ordered}, indent=2) + "\n")


def build_pipeline(
    pipeline: beam.Pipeline,
    cases: Sequence[BeamCase],
    decided: Sequence[CaseReport],
    output_dir: str,
    handler: CascadeModelHandler,
):
    """Adds the segmentation of ``cases`` and the two reports to ``pipeline``."""
    segmented = (
        pipeline
        | "Cases" >> beam.Create(list(cases), reshuffle=True)
        | "Segment" >> RunInference(handler)
        | "Outcome" >> beam.Map(lambda result: result.inference)
    )
    known = pipeline | "Decided" >> beam.Create([c.to_dict() for c in decided])
    outcomes = (segmented, known) | "All" >> beam.Flatten()
    failed = outcomes | "Failed" >> beam.Filter(lambda c: c["status"] == CaseStatus.FAILED.value)
    report_path = FileSystems.join(output_dir.rstrip("/"), REPORT_FILE)
    failed_path = FileSystems.join(output_dir.rstrip("/"), FAILED_FILE)
    (
        outcomes
        | "Collect" >> beam.combiners.ToList()
        | "Report" >> beam.Map(lambda cases: _write_json(report_path, cases))
    )
    (
        failed
        | "CollectFailed" >> beam.combiners.ToList()
        | "FailedReport" >> beam.Map(lambda cases: _write_json(failed_path, cases))
    )
    return outcomes


def segment_with_beam(
    input_dir: str,
    output_dir: str,
    *,
    liver_model: str,
    tumor_model: str | None,
    segment_options: SegmentOptions,
    geometry,
    run_options: RunOptions = RunOptions(),
    pipeline_args: Sequence[str] = (),
    provenance: dict[str, Any] | None = None,
    stage_locally: bool | None = None,
) -> dict:
    """Plans, runs and waits for the pipeline; returns ``{"written", "skipped", "failed"}`` counts.

    ``pipeline_args``: Beam's own options (``--runner``, ``--direct_num_workers``,
    ``--project``, ...). The options record (``inference_options.json``) is
    written beside the outputs first, as ``infer.py`` does.
    """
    cases, report = plan_beam_run(input_dir, output_dir, run_options)
    handler = CascadeModelHandler(
        liver_model, tumor_model, segment_options, geometry, run_options, stage_locally
    )
    _write_text(
        FileSystems.join(output_dir.rstrip("/"), OPTIONS_FILE),
        options_record(handler.segment_options, geometry, provenance, liver_model, tumor_model),
    )
    logger.info("beam: %d volume(s) to segment, %d decided already", len(cases), len(report.cases))
    with beam.Pipeline(options=PipelineOptions(list(pipeline_args))) as pipeline:
        build_pipeline(pipeline, cases, report.cases, output_dir, handler)
    with FileSystems.open(
        FileSystems.join(output_dir.rstrip("/"), REPORT_FILE), compression_type=_RAW
    ) as f:
        final = json.load(f)["cases"]
    counts = {status.value: 0 for status in CaseStatus}
    for case in final:
        counts[case["status"]] += 1
    return counts
