"""LiTS layout discovery and train/test splits.

A LiTS directory holds ``volume-N.nii[.gz]`` with ``segmentation-N.nii[.gz]``
(training cases) and ``test-volume-N.nii[.gz]`` with an optional
``test-segmentation-N.nii[.gz]`` (challenge test cases). Only names are
looked at here; contents are validated when loaded (``liverseg.data.nifti``).

Rules:

* a segmentation without its volume is always an error; a training volume
  without its segmentation is an error when ``require_labels`` is on; an
  unlabelled test volume is never an error (with ``require_labels`` it is
  left out and reported with the stray entries);
* two files with the same role and index (``volume-3.nii`` and
  ``volume-3.nii.gz``, or ``volume-3`` and ``volume-03``) are an error;
* every other entry (other names, sub-directories, hidden files excepted) is
  ignored, logged and returned in ``Layout.ignored``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from liverseg.errors import ConfigError, LayoutError

logger = logging.getLogger(__name__)

_NAME = re.compile(
    r"^(?P<test>test-)?(?P<role>volume|segmentation)-(?P<index>\d+)\.nii(\.gz)?$", re.IGNORECASE
)


def parse_name(name: str) -> tuple[bool, str, int] | None:
    """``(is_test, role, index)`` of a LiTS file name (role "volume" or
    "segmentation"), or None for any other name."""
    m = _NAME.match(name)
    if m is None:
        return None
    return m["test"] is not None, m["role"].lower(), int(m["index"])


def case_id(is_test: bool, index: int) -> str:
    """``"7"`` for case 7, ``"test-7"`` for test case 7."""
    return f"test-{index}" if is_test else str(index)


TRAIN_INDICES = range(0, 105)
TEST_INDICES = range(105, 131)
"""The parent's (Bellver et al. 2017) split of the 131 LiTS training cases."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One CT volume and (if any) its label map."""

    case_id: str  # "7", or "test-7" for a challenge test volume
    index: int
    volume: Path
    segmentation: Path | None

    @property
    def is_test(self) -> bool:
        """True for a challenge test volume (``test-volume-N``)."""
        return self.case_id.startswith("test-")


@dataclasses.dataclass(frozen=True)
class Layout:
    """The cases found in a directory and the entries that were ignored."""

    cases: list[Case]
    ignored: list[Path]


def _sort_key(case: Case) -> tuple[bool, int]:
    return case.is_test, case.index


def discover_layout(data_dir: str | os.PathLike, *, require_labels: bool = True) -> Layout:
    """Pairs volumes with segmentations in ``data_dir`` (not recursive).

    Cases come sorted by index, training cases before test cases.
    """
    root = Path(data_dir)
    if not root.exists():
        raise LayoutError(root, "data directory not found")
    if not root.is_dir():
        raise LayoutError(root, "is not a directory")
    try:
        entries = sorted(root.iterdir())
    except OSError as e:
        raise LayoutError(root, f"cannot list directory: {e.strerror or e}") from e

    found: dict[tuple[bool, str, int], Path] = {}
    ignored: list[Path] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        key = parse_name(entry.name)
        if key is None or entry.is_dir():
            ignored.append(entry)
            continue
        if key in found:
            raise LayoutError(
                entry, f"duplicate case: {found[key].name} has the same role and index {key[2]}"
            )
        found[key] = entry

    cases: list[Case] = []
    for (is_test, role, index), path in found.items():
        partner = found.get(
            (is_test, "volume" if role == "segmentation" else "segmentation", index)
        )
        if role == "segmentation":
            if partner is None:
                raise LayoutError(
                    path,
                    f"segmentation without its volume "
                    f"({'test-' if is_test else ''}volume-{index}.nii[.gz])",
                )
            continue
        if partner is None and require_labels:
            if not is_test:
                raise LayoutError(
                    path, f"volume without its segmentation (segmentation-{index}.nii[.gz])"
                )
            ignored.append(path)
            continue
        cases.append(
            Case(case_id=case_id(is_test, index), index=index, volume=path, segmentation=partner)
        )

    if not cases:
        raise LayoutError(
            root,
            "no cases found (expected volume-N.nii[.gz] with "
            "segmentation-N.nii[.gz], or test-volume-N.nii[.gz])",
        )
    ignored.sort()
    if ignored:
        logger.warning(
            "%s: ignored %d entries that are not usable LiTS cases: %s",
            root,
            len(ignored),
            ", ".join(p.name for p in ignored[:10]) + (", ..." if len(ignored) > 10 else ""),
        )
    return Layout(cases=sorted(cases, key=_sort_key), ignored=ignored)


def discover_cases(data_dir: str | os.PathLike, *, require_labels: bool = True) -> list[Case]:
    """The cases of :func:`discover_layout` (ignored entries are logged)."""
    return discover_layout(data_dir, require_labels=require_labels).cases


def split_by_index(
    cases: Sequence[Case], train: Iterable[int] = TRAIN_INDICES, test: Iterable[int] = TEST_INDICES
) -> tuple[list[Case], list[Case]]:
    """Splits training cases by index (default: the parent's 0-104 / 105-130).

    Challenge test volumes (``test-volume-N``) never go to the training split;
    they are appended to the test split. Cases in neither range are dropped.
    """
    train_set, test_set = set(train), set(test)
    overlap = train_set & test_set
    if overlap:
        raise ConfigError(f"train and test indices overlap: {sorted(overlap)[:10]}")
    train_cases = [c for c in cases if not c.is_test and c.index in train_set]
    test_cases = [c for c in cases if not c.is_test and c.index in test_set]
    test_cases += [c for c in cases if c.is_test]
    return sorted(train_cases, key=_sort_key), sorted(test_cases, key=_sort_key)


def split_by_fraction(
    cases: Sequence[Case], val_fraction: float, seed: int = 0
) -> tuple[list[Case], list[Case]]:
    """Random split into (train, val) with ``round(val_fraction * n)`` validation cases.

    Deterministic for a given seed and set of cases (whatever their order);
    at least one case is kept on each side when ``0 < val_fraction < 1`` and
    there are two or more cases.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    ordered = sorted(cases, key=_sort_key)
    n = len(ordered)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val_idx = set(order[:n_val].tolist())
    train = [c for i, c in enumerate(ordered) if i not in val_idx]
    val = [c for i, c in enumerate(ordered) if i in val_idx]
    return train, val
