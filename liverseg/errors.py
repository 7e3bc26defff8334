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
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class NiftiError(InputFileError):
    """A NIfTI file is unreadable, corrupt or not a valid CT volume / label map."""


class LayoutError(InputFileError):
    """A data directory does not follow the expected (LiTS) layout."""


class CheckpointError(InputFileError):
    """A checkpoint is missing, corrupt, untrusted or does not match the model."""


class OutputError(InputFileError):
    """An output cannot be written (exists, escapes the output dir, ...)."""


class ConfigError(LiverSegError):
    """Invalid option values or combinations."""
