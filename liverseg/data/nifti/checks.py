"""nibabel's header checks, with each problem said once on a line naming the file."""

from __future__ import annotations

import logging
import os

import nibabel as nib

logger = logging.getLogger(__name__)


class _Problems(list):
    """Collects nibabel's header-check reports (it calls ``log(level, message)``)."""

    def log(self, level: int, message: str, *args) -> None:
        if level >= logging.WARNING:
            self.append(message % args if args else message)


def fixed_header(hdr: nib.Nifti1Header, path: str | os.PathLike) -> nib.Nifti1Header:
    """The header with nibabel's own checks applied, each problem one warning naming ``path``.

    nibabel runs these checks when it writes a header and prints what it fixes
    (``qform_code 9 not valid; setting to 0``) raw on stderr, without a file
    name; fixing a copy first says it once, named, and writes quietly.
    The affine is taken after the fix, as nibabel's loader takes it (an
    invalid ``sform_code`` becomes 0, so the qform decides).
    """
    fixed = hdr.copy()
    problems = _Problems()
    fixed.check_fix(logger=problems, error_level=logging.CRITICAL + 1)
    for message in dict.fromkeys(problems):
        logger.warning("%s: %s", path, message)
    return fixed
