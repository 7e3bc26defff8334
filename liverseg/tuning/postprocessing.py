"""Choosing the cascade's test-time options on validation cases (nnU-Net's
``determine_postprocessing`` is the anchor).

For every network setting (slice fusion x test-time shifts) the networks run
once per validation case; every post-processing combination (CRF per
structure, opening per structure, the liver's largest component, a minimum
tumour volume) is then applied to those probabilities
(``liverseg.postprocess.finalize``: each structure's CRF is computed once and
reused) and scored by the mean liver Dice plus the mean tumour Dice per case
(a case without tumour and without predicted tumour scores 1, as LiTS
counts it). Among the candidates within ``min_gain`` of the best score the
one doing the least wins (fewest operations: CRF and opening per structure,
component clean-ups, shifted network passes), as nnU-Net keeps a
post-processing step only when it improves the validation score: each step
must earn its place, and a step that is neutral on the validation cases is
a risk on others (the liver CRF erased a faintly predicted liver on a
held-out phantom while changing the validation mean by 0.002). The choice is
written to both model directories as ``postprocessing.json`` with the scores.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from liverseg.data import lits, nifti
from liverseg.data import preprocess as pp
from liverseg.data.geometry import Geometry
from liverseg.errors import ConfigError
from liverseg.evaluation.metrics import Overlap
from liverseg.inference.cascade import Segmenter, SegmentOptions
from liverseg.postprocess.choice import ORIGINAL_CHOICE, PostprocessChoice, save_choice
from liverseg.postprocess.finalize import FinalizeOptions, Masks, binarize, masks_to_labels

log = logging.getLogger(__name__)

STRUCTURE_SETS = ((), ("liver",), ("tumor",), ("liver", "tumor"))


@dataclasses.dataclass(frozen=True)
class TuneOptions:
    """The candidates scored and how the winner is picked."""

    slice_fusions: tuple[str, ...] = pp.SLICE_FUSIONS
    tta_shift_sets: tuple[tuple[tuple[int, int], ...], ...] = ((), ((2, 2),))
    crf_target_sets: tuple[tuple[str, ...], ...] = STRUCTURE_SETS
    opening_target_sets: tuple[tuple[str, ...], ...] = STRUCTURE_SETS
    largest_component: tuple[bool, ...] = (False, True)
    tumor_min_volumes_mm3: tuple[float, ...] = (0.0, 25.0, 100.0, 250.0)
    #: a candidate further from the original must beat the best of the closer
    #: ones by this much (sum of the two mean Dice scores)
    min_gain: float = 0.002

    def network_settings(self) -> list[tuple[str, tuple]]:
        return list(itertools.product(self.slice_fusions, self.tta_shift_sets))


@dataclasses.dataclass(frozen=True)
class Score:
    choice: PostprocessChoice
    liver_dice: float
    tumor_dice: float

    @property
    def total(self) -> float:
        return self.liver_dice + self.tumor_dice

    def to_dict(self) -> dict:
        return {
            "choice": self.choice.to_dict(),
            "liver_dice": round(self.liver_dice, 5),
            "tumor_dice": round(self.tumor_dice, 5),
        }


@dataclasses.dataclass
class TuneResult:
    choice: PostprocessChoice
    scores: list[Score]  # best first
    cases: list[str]
    seconds: float

    def score_of(self, choice: PostprocessChoice) -> Score | None:
        return next((s for s in self.scores if s.choice == choice), None)

    def details(self, top: int = 10) -> dict:
        """What ``postprocessing.json`` records beside the choice."""
        original = self.score_of(ORIGINAL_CHOICE)
        chosen = self.score_of(self.choice)
        return {
            "method": "mean liver Dice + mean tumour Dice per validation case",
            "cases": self.cases,
            "candidates": len(self.scores),
            "chosen": chosen.to_dict() if chosen else None,
            "original": original.to_dict() if original else None,
            "best": [s.to_dict() for s in self.scores[:top]],
            "seconds": round(self.seconds, 1),
        }


def operations(choice: PostprocessChoice) -> int:
    """How many steps a choice runs beyond thresholding the networks' output:
    each CRF and each opening, each component clean-up and each shifted
    network pass (averaging the stacks a slice is in costs nothing)."""
    return (
        len(choice.crf_targets)
        + len(choice.opening_targets)
        + len(choice.tta_shifts)
        + int(choice.liver_largest_component)
        + int(choice.tumor_min_volume_mm3 > 0)
    )


def pick(scores: Sequence[Score], min_gain: float) -> Score:
    """The candidate with the fewest ``operations`` whose score is within ``min_gain``
    of the best one (ties: the higher score)."""
    best = max(s.total for s in scores)
    eligible = [s for s in scores if s.total >= best - min_gain]
    return min(eligible, key=lambda s: (operations(s.choice), -s.total))


def _dice(pred: np.ndarray, ref: np.ndarray) -> float:
    return Overlap.of(pred, ref).dice()


def _score_case(
    hu,
    intensity,
    probs,
    ref,
    spacing,
    base: FinalizeOptions,
    options: TuneOptions,
    fusion: str,
    shifts,
) -> dict[PostprocessChoice, tuple]:
    """(liver Dice, tumour Dice) of every post-processing candidate on one case."""
    with_crf = binarize(
        hu, intensity, probs, dataclasses.replace(base, crf_targets=("liver", "tumor"))
    )
    without = binarize(hu, intensity, probs, dataclasses.replace(base, crf_targets=()))
    ref_liver, ref_tumor = ref >= 1, ref == 2
    out = {}
    for crf_targets in options.crf_target_sets:
        liver = (with_crf if "liver" in crf_targets else without).liver
        tumor_source = with_crf if "tumor" in crf_targets else without
        for opening, largest, min_volume in itertools.product(
            options.opening_target_sets, options.largest_component, options.tumor_min_volumes_mm3
        ):
            choice = PostprocessChoice(
                slice_fusion=fusion,
                tta_shifts=shifts,
                crf_targets=crf_targets,
                opening_targets=opening,
                liver_largest_component=largest,
                tumor_min_volume_mm3=min_volume,
            )
            masks = Masks(liver, tumor_source.tumor, tumor_source.tumor_box)
            labels = masks_to_labels(
                masks,
                spacing,
                FinalizeOptions.from_choice(
                    choice,
                    threshold=base.threshold,
                    liver_mask=base.liver_mask,
                    tumor_in_final_liver=base.tumor_in_final_liver,
                ),
            )
            out[choice] = (_dice(labels >= 1, ref_liver), _dice(labels == 2, ref_tumor))
    return out


def tune_postprocessing(
    liver_model,
    tumor_model,
    cases: Sequence[lits.Case],
    *,
    base: SegmentOptions = SegmentOptions(),
    geometry: Geometry | None = None,
    options: TuneOptions = TuneOptions(),
    report: Callable[[str], None] = print,
) -> TuneResult:
    """Scores every candidate on ``cases`` (labelled) and picks one (module docstring).

    ``liver_model`` / ``tumor_model``: Keras models (loaded once by the
    caller); ``geometry``: the grid the networks run on (the models' plans).
    """
    if not cases:
        raise ConfigError("post-processing tuning needs at least one labelled validation case")
    start = time.perf_counter()
    totals: dict[PostprocessChoice, np.ndarray] = {}
    finalize_base = base.finalize_options()
    settings = options.network_settings()
    for n, (fusion, shifts) in enumerate(settings, start=1):
        t = time.perf_counter()
        segmenter = Segmenter(
            liver_model,
            tumor_model,
            base.with_choice(slice_fusion=fusion, tta_shifts=shifts),
            geometry=geometry,
        )
        for case in cases:
            volume = nifti.load_ct(case.volume, dtype=None)
            ref = nifti.load_labels(case.segmentation).data
            probs, _, _ = segmenter.probabilities(volume)
            scores = _score_case(
                volume.data,
                pp.intensity_range(volume.data),
                probs,
                ref,
                volume.spacing,
                finalize_base,
                options,
                fusion,
                shifts,
            )
            for choice, pair in scores.items():
                totals[choice] = totals.get(choice, np.zeros(2)) + np.asarray(pair)
        report(
            f"tuning {n}/{len(settings)}: slice fusion {fusion}, shifts "
            f"{list(shifts) or 'none'}: {len(cases)} case(s) in {time.perf_counter() - t:.1f}s"
        )
    scores = sorted(
        (Score(c, *(v / len(cases))) for c, v in totals.items()), key=lambda s: -s.total
    )
    chosen = pick(scores, options.min_gain)
    return TuneResult(
        chosen.choice, scores, [c.case_id for c in cases], time.perf_counter() - start
    )


def save_result(result: TuneResult, model_dirs: Sequence[str | Path]) -> list[Path]:
    """Writes the choice with its details into every model directory given."""
    return [save_choice(d, result.choice, details=result.details()) for d in model_dirs]
