"""Tuning trained model directories: which cases, which models, where the choice goes."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from liverseg.data import lits
from liverseg.data.plans import load_geometry
from liverseg.errors import ConfigError, LayoutError
from liverseg.inference.cascade import SegmentOptions
from liverseg.models import load_model
from liverseg.postprocess.choice import ORIGINAL_CHOICE
from liverseg.tuning.postprocessing import TuneOptions, TuneResult, save_result, tune_postprocessing

SPLIT_FILE = "split.json"


def validation_cases(model_dir: str | os.PathLike) -> list[lits.Case]:
    """The validation cases a model directory's ``split.json`` names (cases its
    training never learned from)."""
    path = Path(model_dir) / SPLIT_FILE
    if not path.is_file():
        raise ConfigError(
            f"{model_dir}: no {SPLIT_FILE} (was it trained by liverseg?); "
            "pass --data_dir with labelled cases the models never trained on"
        )
    try:
        split = json.loads(path.read_text())
        directory, wanted = split.get("val_dir") or split["data_dir"], set(split["val_cases"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a valid split ({exc})") from None
    cases = [c for c in lits.discover_cases(directory, require_labels=True) if c.case_id in wanted]
    if not cases:
        raise LayoutError(path, "names no validation case that still exists; pass --data_dir")
    return cases


def tune_models(
    liver_model: str | os.PathLike,
    tumor_model: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    base: SegmentOptions = SegmentOptions(),
    options: TuneOptions = TuneOptions(),
    write: bool = True,
    report: Callable[[str], None] = print,
) -> TuneResult:
    """Tunes the cascade of the model directories on ``data_dir``'s labelled cases
    (default: the validation cases of the last-trained model's ``split.json``) and,
    with ``write``, stores the choice in both directories."""
    cases = (
        lits.discover_cases(data_dir, require_labels=True)
        if data_dir is not None
        else validation_cases(tumor_model or liver_model)
    )
    liver = load_model(liver_model)
    tumor = load_model(tumor_model) if tumor_model is not None else None
    report(
        f"tuning the cascade on {len(cases)} validation case(s): "
        + ", ".join(c.case_id for c in cases)
    )
    result = tune_postprocessing(
        liver,
        tumor,
        cases,
        base=base,
        geometry=load_geometry(liver_model),
        options=options,
        report=report,
    )
    if write:
        dirs = [d for d in (liver_model, tumor_model) if d is not None and Path(d).is_dir()]
        save_result(result, dirs)
    return result


def describe(result: TuneResult) -> str:
    """A few lines: the choice and its score against the original cascade's."""
    c, chosen = result.choice, result.score_of(result.choice)
    original = result.score_of(ORIGINAL_CHOICE)
    lines = [
        f"chosen: slice fusion {c.slice_fusion}, shifts {list(c.tta_shifts) or 'none'}, "
        f"CRF on {list(c.crf_targets) or 'nothing'}, opening on "
        f"{list(c.opening_targets) or 'nothing'}, largest liver component "
        f"{'yes' if c.liver_largest_component else 'no'}, minimum tumour "
        f"{c.tumor_min_volume_mm3:g} mm^3",
        f"  validation Dice per case: liver {chosen.liver_dice:.4f}, "
        f"tumour {chosen.tumor_dice:.4f}",
    ]
    if original is not None:
        lines.append(
            f"  the original cascade: liver {original.liver_dice:.4f}, "
            f"tumour {original.tumor_dice:.4f}"
        )
    return "\n".join(lines)


def train_then_tune(config, *, tune: bool = True, report: Callable[[str], None] = print) -> dict:
    """``training.train(config)``; then, for a tumour network trained with a liver
    model (the whole cascade), the post-processing tuning on the run's
    validation cases, stored in both model directories. Skipped (and said so)
    without validation cases; an original-recipe run keeps the original cascade."""
    from liverseg.training.trainer import train

    summary = train(config)
    resolved = config.resolved()
    if not tune or resolved.stage != "tumor" or not resolved.liver_model:
        return summary
    if resolved.recipe == "original":
        report(
            "post-processing: the original cascade (original recipe; tools/tune.py tunes "
            "it on request)"
        )
        return summary
    try:
        cases = validation_cases(resolved.model_dir)
    except (ConfigError, LayoutError) as exc:
        report(f"post-processing not tuned: {exc}")
        return summary
    result = tune_models(resolved.liver_model, resolved.model_dir, data_dir=None, report=report)
    report(describe(result))
    summary["postprocessing"] = result.choice.to_dict()
    summary["tuning_cases"] = [c.case_id for c in cases]
    return summary
