"""Pairing prediction and reference files by LiTS case id.

``segmentation-N.nii[.gz]`` is case ``"N"`` and ``test-segmentation-N`` is
case ``"test-N"`` (the ids of ``liverseg.data.lits``), in both directories.
The name parsing lives here because evaluation pairs two label directories,
which is not the volume/segmentation layout ``liverseg.data.lits`` discovers.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from liverseg.data import lits
from liverseg.errors import LayoutError

logger = logging.getLogger(__name__)


def case_id_from_name(name: str) -> str | None:
    """``"N"`` for segmentation-N.nii[.gz], ``"test-N"`` for test-segmentation-N,
    None for any other name."""
    parsed = lits.parse_name(name)
    if parsed is None or parsed[1] != "segmentation":
        return None
    return lits.case_id(parsed[0], parsed[2])


def _case_sort_key(case_id: str) -> tuple[int, int]:
    if case_id.startswith("test-"):
        return 1, int(case_id[5:])
    return 0, int(case_id)


@dataclasses.dataclass
class Scan:
    """What a directory holds: one entry per case, cases named twice, other entries."""

    found: dict[str, Path]
    duplicates: dict[str, list[Path]]
    ignored: list[Path]


def scan_segmentations(directory: str | os.PathLike) -> Scan:
    """Sorts the entries of ``directory`` into cases, duplicated cases and ignored entries.

    Every entry named like a segmentation counts, whatever it is (a
    directory or a dangling link then fails when loaded, with its own
    message, instead of looking like a missing file). Hidden entries (such as
    the temporary files of an interrupted write) are skipped silently.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise LayoutError(directory, "not a directory")
    try:
        entries = sorted(directory.iterdir())
    except OSError as err:
        raise LayoutError(directory, f"cannot list directory: {err.strerror or err}") from None
    named: dict[str, list[Path]] = {}
    ignored: list[Path] = []
    for path in entries:
        if path.name.startswith("."):
            continue
        case = case_id_from_name(path.name)
        if case is None:
            ignored.append(path)
        else:
            named.setdefault(case, []).append(path)
    order = sorted(named, key=_case_sort_key)
    return Scan(
        found={case: named[case][0] for case in order if len(named[case]) == 1},
        duplicates={case: named[case] for case in order if len(named[case]) > 1},
        ignored=ignored,
    )


def find_segmentations(directory: str | os.PathLike) -> dict[str, Path]:
    """Maps case id to segmentation entry in ``directory`` (sorted by case).

    Raises LayoutError when a case appears twice (``segmentation-3.nii`` and
    ``segmentation-3.nii.gz``).
    """
    scan = scan_segmentations(directory)
    for case, paths in scan.duplicates.items():
        raise LayoutError(paths[1], f"case {case} appears twice (also {paths[0].name})")
    return scan.found


def _log_ignored(directory, ignored: Sequence[Path], limit: int = 10) -> None:
    if ignored:
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in ignored[:limit])
        more = f" and {len(ignored) - limit} more" if len(ignored) > limit else ""
        logger.info(
            "%s: ignored %d entr%s not named segmentation-N.nii[.gz]: %s%s",
            directory,
            len(ignored),
            "y" if len(ignored) == 1 else "ies",
            names,
            more,
        )


def _expected_name(case_id: str) -> str:
    if case_id.startswith("test-"):
        return f"test-segmentation-{case_id[5:]}.nii"
    return f"segmentation-{case_id}.nii"
