"""Which cascade options a run uses: the models' stored choice, the original, overrides.

A tuned model directory holds ``postprocessing.json`` (``liverseg.postprocess.
choice``) and, when it was trained with geometry normalisation, ``plans.json``
(``liverseg.data.plans``). ``postprocess="stored"`` applies the stored choice
(the tumour model's, which was tuned with its liver model, else the liver
model's) and falls back to the original cascade for a model without one (a
converted original checkpoint, an original-recipe model); ``"original"``
always runs the original cascade. Explicit overrides win over both.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import liverseg
from liverseg.data.geometry import Geometry
from liverseg.data.plans import load_geometry
from liverseg.errors import ConfigError
from liverseg.inference.cascade import SegmentOptions
from liverseg.postprocess.choice import ORIGINAL_CHOICE, PostprocessChoice, load_choice
from liverseg.utils.options import option

POSTPROCESS_SOURCES = ("stored", "original")
GEOMETRY_SOURCES = ("model", "native")
OPTIONS_FILE = "inference_options.json"


@dataclasses.dataclass(frozen=True)
class Sources:
    """Where a run's test-time choices and grid come from."""

    postprocess: str = option(
        "stored",
        "Test-time choices: 'stored' = the models' postprocessing.json (chosen on "
        "validation cases after training; the original cascade for models without one), "
        "'original' = the original cascade (middle channel, CRF and opening on both). "
        "Single flags override single choices.",
        choices=POSTPROCESS_SOURCES,
    )
    geometry: str = option(
        "model",
        "'model': bring each volume to the orientation and pixel spacing the liver "
        "model trained at (its plans.json) and the result back; 'native': run on the volume "
        "as stored (the original; also for models without plans.json).",
        choices=GEOMETRY_SOURCES,
    )


DEFAULT_SOURCES = Sources()


@dataclasses.dataclass(frozen=True)
class ResolvedOptions:
    """The options of a run and where each part came from."""

    segment_options: SegmentOptions
    geometry: Geometry | None
    choice_source: str
    geometry_source: str

    def to_dict(self) -> dict[str, Any]:
        """What ``inference_options.json`` records beside the outputs."""
        options = dataclasses.asdict(self.segment_options)
        return {
            "liverseg_version": liverseg.__version__,
            "postprocessing": {
                "source": self.choice_source,
                "choice": self.segment_options.postprocess.to_dict(),
            },
            "geometry": {
                "source": self.geometry_source,
                "grid": None if self.geometry is None else self.geometry.to_dict(),
            },
            "segment_options": _jsonable(options),
        }


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _model_dir(model) -> Path | None:
    return Path(model) if isinstance(model, (str, os.PathLike)) and Path(model).is_dir() else None


def stored_choice(liver_model, tumor_model=None) -> tuple[PostprocessChoice | None, str]:
    """The choice stored with the models and its file (None, "" without one)."""
    for model in (tumor_model, liver_model):
        directory = _model_dir(model)
        if directory is not None:
            choice = load_choice(directory)
            if choice is not None:
                return choice, str(directory / "postprocessing.json")
    return None, ""


def resolve_options(
    liver_model,
    tumor_model=None,
    *,
    base: SegmentOptions = SegmentOptions(),
    postprocess: str = DEFAULT_SOURCES.postprocess,
    geometry: str = DEFAULT_SOURCES.geometry,
    overrides: Mapping[str, Any] | None = None,
) -> ResolvedOptions:
    """``base`` with the test-time choice ``postprocess`` names, then ``overrides``
    (a ``PostprocessChoice`` or ``SegmentOptions`` field -> value); the grid
    ``geometry`` names."""
    if postprocess not in POSTPROCESS_SOURCES:
        raise ConfigError(f"postprocess must be one of {POSTPROCESS_SOURCES}, got {postprocess!r}")
    if geometry not in GEOMETRY_SOURCES:
        raise ConfigError(f"geometry must be one of {GEOMETRY_SOURCES}, got {geometry!r}")
    choice, source = (
        (None, "") if postprocess == "original" else stored_choice(liver_model, tumor_model)
    )
    if choice is None:
        choice = ORIGINAL_CHOICE
        source = "original" if postprocess == "original" else "original (no stored choice)"
    options = base.with_choice(choice)
    if overrides:
        choice_fields = {f.name for f in dataclasses.fields(PostprocessChoice)}
        run_fields = {f.name for f in dataclasses.fields(SegmentOptions)} - {"postprocess"}
        unknown = sorted(set(overrides) - choice_fields - run_fields)
        if unknown:
            raise ConfigError(f"unknown cascade options: {unknown}")
        options = dataclasses.replace(
            options.with_choice(**{k: v for k, v in overrides.items() if k in choice_fields}),
            **{k: v for k, v in overrides.items() if k in run_fields},
        )
        source += " + overrides: " + ", ".join(sorted(overrides))
    grid, grid_source = None, "native"
    if geometry == "model":
        directory = _model_dir(liver_model)
        grid = load_geometry(directory) if directory is not None else None
        grid_source = (
            f"{directory / 'plans.json'}"
            if grid is not None
            else "native (the liver model has no plans.json)"
        )
    return ResolvedOptions(options, grid, source, grid_source)
