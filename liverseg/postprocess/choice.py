"""The cascade's test-time choices, chosen on validation and stored with a model.

As nnU-Net's ``postprocessing`` file: after training, the cascade's options
are scored on validation cases (``liverseg.tuning``) and the winning
``PostprocessChoice`` is written into the model directory as
``postprocessing.json``; inference applies it unless told otherwise. A model
without the file (a converted original checkpoint, an original-recipe model)
runs the original cascade, ``ORIGINAL_CHOICE``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from liverseg.data.preprocess import SLICE_FUSIONS, check_shifts, check_slice_fusion
from liverseg.errors import ConfigError
from liverseg.utils.atomic import atomic_write_text
from liverseg.utils.options import option

STRUCTURES = ("liver", "tumor")
CHOICE_FILE = "postprocessing.json"
FORMAT_VERSION = 1


def checked_structures(name: str, targets) -> tuple[str, ...]:
    """``targets`` as a duplicate-free tuple of ``STRUCTURES`` names (ConfigError otherwise)."""
    if isinstance(targets, str) or not all(isinstance(t, str) for t in targets):
        raise ConfigError(f"{name} must be a tuple of names from {STRUCTURES}, got {targets!r}")
    targets = tuple(dict.fromkeys(targets))
    unknown = [t for t in targets if t not in STRUCTURES]
    if unknown:
        raise ConfigError(
            f"{name}: unknown structure(s) {', '.join(map(repr, unknown))}; "
            f"choose from {STRUCTURES}"
        )
    return targets


@dataclasses.dataclass(frozen=True)
class PostprocessChoice:
    """Test-time options of the cascade; the defaults are the original's.

    ``slice_fusion`` and ``tta_shifts`` say how the networks' stacks become a
    probability per slice; the rest turns probabilities into labels: the 3D
    dense CRF and the 6-neighbour opening per structure, keeping only the
    liver's largest connected component, and dropping tumour components
    smaller than ``tumor_min_volume_mm3``.
    """

    slice_fusion: str = option(
        "middle",
        "Each slice's probability: the 'middle' channel of the stack centred on it "
        "(the original) or the 'mean' over every stack holding it (free for the liver net).",
        choices=SLICE_FUSIONS,
    )
    tta_shifts: tuple[tuple[int, int], ...] = option(
        (),
        "Test-time shifts as ROWS:COLS pixel pairs (e.g. 2:2); each adds one pass of both "
        "networks, whose outputs are moved back and averaged with the plain one.",
        kind="pairs",
    )
    crf_targets: tuple[str, ...] = option(
        STRUCTURES,
        "Structures the 3D dense CRF refines; the others are thresholded at 0.5 (empty: no CRF).",
        choices=STRUCTURES,
    )
    opening_targets: tuple[str, ...] = option(
        STRUCTURES,
        "Structures the 6-neighbour binary opening applies to (empty: none).",
        choices=STRUCTURES,
    )
    liver_largest_component: bool = option(
        False, "Keep only the liver's largest 3D connected component."
    )
    tumor_min_volume_mm3: float = option(
        0.0, "Drop tumour components smaller than this many mm^3 (0 keeps all).", lower_bound=0.0
    )

    def __post_init__(self):
        check_slice_fusion(self.slice_fusion)
        object.__setattr__(self, "tta_shifts", check_shifts(self.tta_shifts))
        for name in ("crf_targets", "opening_targets"):
            object.__setattr__(self, name, checked_structures(name, getattr(self, name)))
        if not isinstance(self.liver_largest_component, bool):
            raise ConfigError(
                f"liver_largest_component must be true or false, "
                f"got {self.liver_largest_component!r}"
            )
        volume = self.tumor_min_volume_mm3
        if isinstance(volume, bool) or not isinstance(volume, (int, float)) or not volume >= 0:
            raise ConfigError(f"tumor_min_volume_mm3 must be a number >= 0, got {volume!r}")
        object.__setattr__(self, "tumor_min_volume_mm3", float(volume))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["tta_shifts"] = [list(s) for s in self.tta_shifts]
        out["crf_targets"] = list(self.crf_targets)
        out["opening_targets"] = list(self.opening_targets)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PostprocessChoice:
        if not isinstance(data, Mapping):
            raise ConfigError("a post-processing choice must be a JSON object")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(f"unknown post-processing keys: {unknown}")
        values = dict(data)
        if "tta_shifts" in values:
            shifts = values["tta_shifts"]
            if not isinstance(shifts, (list, tuple)):
                raise ConfigError(
                    f"tta_shifts must be a list of [rows, cols] pairs, got {shifts!r}"
                )
            values["tta_shifts"] = tuple(
                tuple(s) if isinstance(s, (list, tuple)) else s for s in shifts
            )
        for name in ("crf_targets", "opening_targets"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        return cls(**values)


ORIGINAL_CHOICE = PostprocessChoice()
"""The original cascade: middle channel, CRF and opening on liver and tumour."""


def save_choice(
    directory: str | os.PathLike,
    choice: PostprocessChoice,
    *,
    details: Mapping[str, Any] | None = None,
) -> Path:
    """Writes ``choice`` (and ``details``: scores, cases, models) to
    ``directory/postprocessing.json`` atomically, replacing an earlier one."""
    document = {
        "format_version": FORMAT_VERSION,
        "choice": choice.to_dict(),
        **({"details": dict(details)} if details else {}),
    }
    path = Path(directory) / CHOICE_FILE
    atomic_write_text(path, json.dumps(document, indent=2, sort_keys=True) + "\n", overwrite=True)
    return path


def load_choice(directory: str | os.PathLike) -> PostprocessChoice | None:
    """The choice stored in a model directory, or None when it has none
    (a ``.keras`` file, a converted checkpoint, an untuned model)."""
    path = Path(directory) / CHOICE_FILE
    if not Path(directory).is_dir() or not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
        if not isinstance(document, dict) or "choice" not in document:
            raise ConfigError("no 'choice' object")
        return PostprocessChoice.from_dict(document["choice"])
    except (ValueError, ConfigError, TypeError) as exc:
        raise ConfigError(f"{path}: not a valid post-processing choice ({exc})") from None
