"""Typed errors. Every user-facing error names the file and the problem."""

from __future__ import annotations

import os


class LiverSegError(Exception):
    """Base class of every error liverseg raises on purpose."""


class InputFileError(LiverSegError):
    """A user-supplied file cannot be used; the message starts with its path."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        shown = _printable(self.path) if self.path else None
        super().__init__(f"{shown}: {problem}" if shown else problem)


def _printable(path: str) -> str:
    """The path with control characters escaped, so an error stays on one line."""
    if path.isprintable():
        return path
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in path
    )


class NiftiError(InputFileError):
    """A NIfTI file is unreadable, corrupt or not a valid CT volume / label map."""


class LayoutError(InputFileError):
    """A data directory does not follow the expected (LiTS) layout."""


class CheckpointError(InputFileError):
    """A checkpoint is missing, corrupt, untrusted or does not match the model."""


class OutputError(InputFileError):
    """An output cannot be written (exists, escapes the output dir, ...)."""


class OutputExistsError(OutputError):
    """The output already exists (or another process wrote it meanwhile) and overwriting is off."""


class TrainingError(LiverSegError):
    """Training cannot go on (for example, the loss is no longer finite)."""


class ConfigError(LiverSegError):
    """Invalid option values or combinations."""
