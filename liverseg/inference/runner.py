"""Segments every CT volume of a directory (or one file) into LiTS label maps.

Discovery (one directory level, natural order, hidden entries ignored):
``*.nii`` / ``*.nii.gz`` are inputs, except label maps (``segmentation-*``,
``test-segmentation-*``) and this tool's own outputs (stems ending in
``_segmentation``, ``_liver_probability``, ``_tumor_probability``); those,
sub-directories and other files are skipped and listed.

Naming: the input's name with ``volume`` replaced by ``segmentation``
(``test-volume-7.nii`` -> ``test-segmentation-7.nii``), otherwise
``<stem>_segmentation``; always the input's extension. Beside it, on
request, ``<output stem>_liver_probability<ext>``,
``<output stem>_tumor_probability<ext>`` (float32) and
``<output stem>_overlay.png``.

Robustness: every case is independent; a failing case logs one line
naming its file and the run goes on. All files are written atomically
(temporary file, then rename; an existing symlink is replaced, its target
never written). The label map is written last and marks a finished case:
an existing label map is refused (``overwrite``) or skipped
(``skip_existing``); the auxiliary files of a case without label map are
leftovers of an interrupted run and are replaced, so a rerun after a crash
redoes exactly the unfinished cases.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from liverseg.data import dicom, nifti
from liverseg.data.preprocess import intensity_range
from liverseg.errors import (
    ConfigError,
    LayoutError,
    LiverSegError,
    OutputError,
    OutputExistsError,
)
from liverseg.inference.cascade import STAGES, Segmenter, SegmentOptions
from liverseg.inference.resolve import OPTIONS_FILE, ResolvedOptions
from liverseg.utils.atomic import atomic_write_text, check_can_write, safe_output_path
from liverseg.utils.options import option
from liverseg.utils.progress import Progress, format_seconds

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii.gz", ".nii")
LABEL_MAP = re.compile(r"^(test-)?segmentation-", re.IGNORECASE)
OUTPUT_STEM_ENDINGS = ("_segmentation", "_liver_probability", "_tumor_probability")
_MAX_LISTED = 20


class CaseStatus(str, enum.Enum):
    WRITTEN = "written"
    SKIPPED = "skipped"  # label map exists and skip_existing is on
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """What the runner writes and how it treats existing outputs."""

    overwrite: bool = option(False, "Replace existing outputs.")
    skip_existing: bool = option(
        False, "Skip volumes whose label map already exists (resumes an interrupted run)."
    )
    write_probabilities: bool = option(
        False, "Also write <output>_liver_probability and _tumor_probability (float32)."
    )
    overlays: bool = option(False, "Also write <output>_overlay.png per volume.")
    dicom_seg: bool = option(
        False,
        "Also write <output>_seg.dcm, a DICOM Segmentation referencing the source series "
        "(DICOM inputs only; NIfTI inputs get a warning).",
    )
    num_parts: int = option(
        1,
        "Split the discovered volumes into this many parts and segment one of them "
        "(--part_id): N processes with part ids 0..N-1 cover every volume exactly once.",
        lower_bound=1,
    )
    part_id: int = option(0, "Which part this process segments (0 .. num_parts-1).", lower_bound=0)

    def __post_init__(self):
        if self.overwrite and self.skip_existing:
            raise ConfigError("overwrite and skip_existing exclude each other")
        if self.num_parts < 1 or not 0 <= self.part_id < self.num_parts:
            raise ConfigError(
                f"part_id must lie in 0..num_parts-1 (got part_id={self.part_id}, "
                f"num_parts={self.num_parts})"
            )


def select_part(paths: Sequence[Path], num_parts: int, part_id: int) -> list[Path]:
    """Part ``part_id`` of ``num_parts`` of the discovered inputs (nnU-Net's convention).

    Every ``num_parts``-th input of the natural-order list, starting at
    ``part_id``: deterministic given the same directory listing, disjoint
    across part ids and covering every input once. Parts differ in size by
    at most one volume.
    """
    return list(paths[part_id::num_parts])


@dataclasses.dataclass
class CaseReport:
    input: Path
    output: Path | None
    status: CaseStatus
    error: str | None = None
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    extra_outputs: list[Path] = dataclasses.field(default_factory=list)
    voxels: dict[str, int] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "input": str(self.input),
            "output": None if self.output is None else str(self.output),
            "status": self.status.value,
            "error": self.error,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "extra_outputs": [str(p) for p in self.extra_outputs],
            "voxels": self.voxels,
        }


@dataclasses.dataclass
class RunReport:
    cases: list[CaseReport]
    ignored: list[tuple[Path, str]]

    def _with(self, status: CaseStatus) -> list[CaseReport]:
        return [c for c in self.cases if c.status == status]

    @property
    def written(self) -> list[CaseReport]:
        return self._with(CaseStatus.WRITTEN)

    @property
    def skipped(self) -> list[CaseReport]:
        return self._with(CaseStatus.SKIPPED)

    @property
    def failed(self) -> list[CaseReport]:
        return self._with(CaseStatus.FAILED)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return {
            "cases": [c.to_dict() for c in self.cases],
            "ignored": [{"path": str(p), "reason": r} for p, r in self.ignored],
            "written": len(self.written),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
        }


# ----------------------------------------------------------------------------
# Discovery and naming


def split_nifti_name(name: str) -> tuple[str, str] | None:
    """``(stem, extension)`` of a ``.nii`` / ``.nii.gz`` name (extension as written), else None."""
    lower = name.lower()
    for suffix in NIFTI_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], name[-len(suffix) :]
    return None


def output_name(input_name: str) -> str:
    """Label map name for an input: ``volume`` -> ``segmentation``, else ``<stem>_segmentation``."""
    parts = split_nifti_name(input_name)
    if parts is None:
        raise ValueError(f"{input_name!r} is not a .nii or .nii.gz name")
    stem, ext = parts
    stem = stem.replace("volume", "segmentation") if "volume" in stem else f"{stem}_segmentation"
    return stem + ext


def output_name_for(path: Path) -> str:
    """:func:`output_name` of a NIfTI input; ``<folder>_segmentation.nii.gz`` for a DICOM series."""
    return f"{path.name}_segmentation.nii.gz" if path.is_dir() else output_name(path.name)


def auxiliary_names(label_name: str) -> dict[str, str]:
    """Names of the probability maps and the overlay written beside a label map."""
    stem, ext = split_nifti_name(label_name)
    return {
        "liver_probability": f"{stem}_liver_probability{ext}",
        "tumor_probability": f"{stem}_tumor_probability{ext}",
        "overlay": f"{stem}_overlay.png",
        "dicom_seg": f"{stem}_seg.dcm",
    }


def skip_reason(entry: Path) -> str | None:
    """Why a directory entry is not an input, or None for a CT volume or DICOM series folder."""
    if entry.is_dir():
        return None if dicom.is_series_folder(entry) else "directory"
    if entry.name == OPTIONS_FILE:
        return "output of this tool"
    parts = split_nifti_name(entry.name)
    if parts is None:
        return "not a NIfTI file"
    if LABEL_MAP.match(entry.name):
        return "label map"
    if parts[0].endswith(OUTPUT_STEM_ENDINGS):
        return "output of this tool"
    return None


def natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def discover_inputs(input_path: str | os.PathLike) -> tuple[list[Path], list[tuple[Path, str]]]:
    """CT volumes to segment and the skipped entries ``(path, reason)``.

    ``input_path`` is a directory (one level, hidden entries ignored: NIfTI
    volumes and folders holding one DICOM series each), one DICOM series
    folder, or one NIfTI file. Raises LayoutError when there is nothing to
    segment.
    """
    p = Path(input_path)
    if p.is_dir() and dicom.is_series_folder(p):
        return [p], []
    if p.is_dir():
        inputs, ignored = [], []
        for entry in sorted(p.iterdir(), key=natural_key):
            if entry.name.startswith("."):
                continue
            reason = skip_reason(entry)
            if reason is None:
                inputs.append(entry)
            else:
                ignored.append((entry, reason))
        if not inputs:
            raise LayoutError(
                p,
                "no CT volumes (.nii or .nii.gz, other than label maps, or folders of "
                "DICOM series) found",
            )
        return inputs, ignored
    if not p.exists() and not p.is_symlink():
        raise LayoutError(p, "input does not exist")
    if split_nifti_name(p.name) is None:
        raise LayoutError(p, "input file name must end in .nii or .nii.gz")
    if LABEL_MAP.match(p.name):
        raise LayoutError(p, "is a label map (segmentation-*), not a CT volume")
    return [p], []


def _format_ignored(ignored: Sequence[tuple[Path, str]]) -> str:
    shown = [f"{p.name}{'/' if r == 'directory' else ''} ({r})" for p, r in ignored[:_MAX_LISTED]]
    more = len(ignored) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


# ----------------------------------------------------------------------------
# Running


@dataclasses.dataclass
class CasePlan:
    """One case of a run: its input, label map and auxiliary output paths."""

    input: Path
    output: Path
    aux: dict[str, Path]


def plan_cases(
    inputs: Iterable[Path],
    output_dir: Path,
    options: RunOptions,
    report: RunReport,
    all_inputs: Iterable[Path] | None = None,
) -> list[CasePlan]:
    """Output paths per input; existing / colliding outputs become skipped or failed cases.

    Inputs that differ only by extension (``volume-3.nii`` and
    ``volume-3.nii.gz``) are one case id twice: each fails, naming the other,
    whichever parts of a split run (``all_inputs``) they fall into.
    """
    plans, seen = [], {}
    inputs = list(inputs)
    by_stem: dict[str, list[Path]] = {}
    for path in inputs if all_inputs is None else all_inputs:
        parts = split_nifti_name(path.name)
        by_stem.setdefault(parts[0] if parts else path.name, []).append(path)
    for path in inputs:
        try:
            parts = split_nifti_name(path.name)
            twins = [p for p in by_stem[parts[0] if parts else path.name] if p != path]
            if twins:
                raise LayoutError(
                    path,
                    "duplicate case: "
                    + ", ".join(str(t) for t in twins)
                    + " has the same name up to its extension",
                )
            name = output_name_for(path)
            out = safe_output_path(output_dir, name)
            aux = {k: safe_output_path(output_dir, v) for k, v in auxiliary_names(name).items()}
            if out in seen:
                raise OutputError(out, f"output name collides with that of {seen[out]}")
            seen[out] = path
            if options.skip_existing and (out.exists() or out.is_symlink()) and not out.is_dir():
                report.cases.append(CaseReport(path, out, CaseStatus.SKIPPED))
                logger.info("%s: skipped, %s exists", path, out.name)
                continue
            check_can_write(out, options.overwrite)
        except LiverSegError as exc:
            report.cases.append(CaseReport(path, None, CaseStatus.FAILED, str(exc)))
            logger.error("%s", exc)
            continue
        plans.append(CasePlan(path, out, aux))
    return plans


def _progress_printer(label: str, interval: float = 10.0):
    """``progress(stage, done, total)`` logging a rate/ETA line every ``interval`` s of a stage."""
    bars: dict[str, list] = {}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if stage not in bars:
            bars[stage] = [
                Progress(total, label=f"{label} {stage}", unit="stacks", start=done),
                now,
            ]
            return
        bar, last = bars[stage]
        if now - last >= interval or (done >= total and now - bar.start_time >= interval):
            logger.info("%s", bar.line(done))
            bars[stage][1] = now

    return progress


def _write_case(plan: CasePlan, volume, result, options: RunOptions, series=None) -> list[Path]:
    """Auxiliary outputs first, the label map last (it marks a finished case)."""
    extra = []
    aux_overwrite = True  # no label map yet: these are leftovers of an unfinished run
    if options.dicom_seg:
        if series is None:
            logger.warning("%s: not a DICOM series; no DICOM SEG written", plan.input)
        else:
            from liverseg.data.dicom_seg import write_seg

            write_seg(plan.aux["dicom_seg"], result.labels, series, overwrite=aux_overwrite)
            extra.append(plan.aux["dicom_seg"])
    if options.write_probabilities:
        nifti.save_probabilities(
            plan.aux["liver_probability"], result.liver_probability, volume, overwrite=aux_overwrite
        )
        extra.append(plan.aux["liver_probability"])
        tumour = result.tumor_probability
        if tumour is not None:
            nifti.save_probabilities(
                plan.aux["tumor_probability"], tumour, volume, overwrite=aux_overwrite
            )
            extra.append(plan.aux["tumor_probability"])
            del tumour
    if options.overlays:
        from liverseg.inference.overlay import save_overlay

        save_overlay(
            plan.aux["overlay"],
            volume.data,
            result.labels,
            spacing=volume.spacing,
            intensity_range=intensity_range(volume.data),
            title=plan.input.name,
            overwrite=aux_overwrite,
        )
        extra.append(plan.aux["overlay"])
    nifti.save_labels(plan.output, result.labels, volume, overwrite=options.overwrite)
    return extra


def run(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    segmenter: Segmenter | None = None,
    options: RunOptions = RunOptions(),
    *,
    liver_model=None,
    tumor_model=None,
    segment_options: SegmentOptions = SegmentOptions(),
    geometry=None,
    provenance: Mapping[str, Any] | None = None,
) -> RunReport:
    """Segments ``inputs`` (a directory, one file, or a list of files) into ``output_dir``.

    Give a ready ``segmenter`` or the models (paths or Keras models),
    ``segment_options`` and ``geometry`` (``Segmenter``'s); models are loaded
    only if some case needs them. The options used are written to
    ``output_dir/inference_options.json`` (with ``provenance``: where they
    came from) before the first case.
    Returns the per-case report; a case's failure is logged and recorded,
    never raised. Raises LayoutError / OutputError / ConfigError /
    CheckpointError for problems of the whole run (no inputs, unusable
    output directory, bad options, unloadable model).
    """
    if segmenter is None and liver_model is None:
        raise ConfigError("run() needs a segmenter or a liver model")
    if isinstance(inputs, (str, os.PathLike)):
        paths, ignored = discover_inputs(inputs)
    else:
        paths, ignored = [Path(p) for p in inputs], []
        if not paths:
            raise LayoutError(None, "no input volumes given")
    out_dir = Path(output_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(out_dir, "output directory path exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            out_dir, f"cannot create the output directory ({exc.strerror or exc})"
        ) from None

    report = RunReport([], list(ignored))
    if ignored:
        logger.info(
            "skipping %d entr%s that are not CT volumes: %s",
            len(ignored),
            "y" if len(ignored) == 1 else "ies",
            _format_ignored(ignored),
        )
    part = select_part(paths, options.num_parts, options.part_id)
    if options.num_parts > 1:
        logger.info(
            "part %d of %d: %d of %d volumes",
            options.part_id,
            options.num_parts,
            len(part),
            len(paths),
        )
    plans = plan_cases(part, out_dir, options, report, all_inputs=paths)
    if not plans:
        return report
    if segmenter is None:
        keep = options.write_probabilities
        segmenter = Segmenter(
            liver_model,
            tumor_model,
            dataclasses.replace(segment_options, keep_probabilities=keep),
            geometry=geometry,
        )
    elif options.write_probabilities and not segmenter.options.keep_probabilities:
        raise ConfigError("write_probabilities needs a segmenter with keep_probabilities=True")
    record = options_record(
        segmenter.options, segmenter.geometry, provenance, liver_model, tumor_model
    )
    try:
        atomic_write_text(out_dir / OPTIONS_FILE, record, overwrite=True)
    except OSError as exc:  # a read-only or full output directory stops the run here
        raise OutputError(
            out_dir / OPTIONS_FILE, f"cannot write ({exc.strerror or exc}); nothing written"
        ) from None

    progress = Progress(len(plans), label="volume", unit="volumes")
    run_start = time.perf_counter()
    for i, plan in enumerate(plans, start=1):
        report.cases.append(run_case(plan, segmenter, options, f"{i}/{len(plans)}"))
        progress.update(i, failed=len(report.failed))
    logger.info(
        "done in %s: %d written, %d skipped, %d failed",
        format_seconds(time.perf_counter() - run_start),
        len(report.written),
        len(report.skipped),
        len(report.failed),
    )
    return report


def options_record(options: SegmentOptions, geometry, provenance, liver_model, tumor_model) -> str:
    """The text of ``inference_options.json``: what produced the label maps beside it."""
    record = ResolvedOptions(options, geometry, "given", "given").to_dict()
    for key, value in (provenance or {}).items():
        if isinstance(value, Mapping) and isinstance(record.get(key), dict):
            record[key].update(value)
        else:
            record[key] = value
    record["models"] = {
        name: str(m) if isinstance(m, (str, os.PathLike)) else getattr(m, "name", type(m).__name__)
        for name, m in (("liver", liver_model), ("tumor", tumor_model))
        if m is not None
    }
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def _written_meanwhile(plan: CasePlan) -> bool:
    """Whether another run (a second process on the same output directory) wrote the label map."""
    if plan.output.is_file():
        logger.info(
            "%s: skipped, %s was written by another run meanwhile", plan.input, plan.output.name
        )
        return True
    return False


def run_case(plan: CasePlan, segmenter: Segmenter, options: RunOptions, label: str) -> CaseReport:
    """Loads, segments and writes one case; a failure is logged and reported, never raised."""
    case = CaseReport(plan.input, plan.output, CaseStatus.FAILED)
    if options.skip_existing and _written_meanwhile(plan):
        case.status = CaseStatus.SKIPPED
        return case
    try:
        t = time.perf_counter()
        series = None
        if plan.input.is_dir():
            series = dicom.load_series(plan.input)
            volume = series.volume
        else:
            volume = nifti.load_ct(plan.input, dtype=None)
        load_time = time.perf_counter() - t
        result = segmenter.segment(volume, progress=_progress_printer(label))
        t = time.perf_counter()
        case.extra_outputs = _write_case(plan, volume, result, options, series)
        write_time = time.perf_counter() - t
    except LiverSegError as exc:
        if (
            isinstance(exc, OutputExistsError)
            and options.skip_existing
            and _written_meanwhile(plan)
        ):
            case.status = CaseStatus.SKIPPED
            return case
        case.error = str(exc)
        logger.error("%s", exc)
        return case
    except MemoryError:
        case.error = f"{plan.input}: out of memory"
        logger.error("%s", case.error)
        return case
    except Exception as exc:  # one bad case must not stop the others
        case.error = f"{plan.input}: unexpected {type(exc).__name__}: {exc}"
        logger.error("%s", case.error)
        logger.debug("traceback", exc_info=True)
        return case
    case.status = CaseStatus.WRITTEN
    case.timings = {"load": load_time, **result.timings, "write": write_time}
    case.timings["total"] = load_time + result.timings["total"] + write_time
    case.voxels = result.voxel_counts()
    stage_text = " ".join(f"{k} {case.timings[k]:.2f}s" for k in STAGES)
    logger.info(
        "%s %s -> %s: %d x %d x %d, liver %d vox, tumour %d vox, %d ROI slices; %s; total %.2fs",
        label,
        plan.input.name,
        plan.output.name,
        *volume.shape,
        case.voxels["liver"],
        case.voxels["tumor"],
        len(result.roi_slices),
        stage_text,
        case.timings["total"],
    )
    return case
