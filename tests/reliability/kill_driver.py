"""Runs a tool and kills it with SIGKILL in the middle of writing one file (tests only).

Usage: python kill_driver.py MODE MARKER TOOL.py [tool arguments ...]

MODE ``gzip``: the first large write into a gzip stream whose file name
contains MARKER writes half its bytes, then the process kills itself (a
NIfTI output is half written, under its temporary name).
MODE ``savez``: ``numpy.savez`` to a path containing MARKER writes half of
the archive, then the process kills itself (a training checkpoint is half
written).
MODE ``fsync``: the first ``os.fsync`` of a file whose name contains MARKER
signals the process (the file is complete under its temporary name, not yet
renamed: atomic writes of reports and text files).

SIGKILL cannot be caught, so no clean-up code runs: this is a power cut or
the out-of-memory killer, as seen by the files.
"""

import gzip
import io
import os
import runpy
import signal
import sys


def _die():
    """SIGKILL, or the signal named by KILL_SIGNAL (SIGTERM, SIGINT: the tool may clean up)."""
    os.kill(os.getpid(), getattr(signal, os.environ.get("KILL_SIGNAL", "SIGKILL")))


def _patch_gzip(marker: str) -> None:
    original = gzip.GzipFile.write

    def write(self, data):
        name = os.path.basename(str(getattr(self.fileobj, "name", "") or ""))
        if marker in name and len(data) >= 1024:
            original(self, bytes(data[: len(data) // 2]))
            self.flush()
            self.fileobj.flush()
            os.fsync(self.fileobj.fileno())
            _die()
        return original(self, data)

    gzip.GzipFile.write = write


def _patch_savez(marker: str) -> None:
    import numpy as np

    original = np.savez

    def savez(file, *args, **kwargs):
        if marker in os.fspath(file):
            buf = io.BytesIO()
            original(buf, *args, **kwargs)
            blob = buf.getvalue()
            with open(file, "wb") as f:
                f.write(blob[: len(blob) // 2])
                f.flush()
                os.fsync(f.fileno())
            _die()
        return original(file, *args, **kwargs)

    np.savez = savez


def _patch_fsync(marker: str) -> None:
    original = os.fsync

    def fsync(fd):
        original(fd)
        if marker in os.path.basename(os.readlink(f"/proc/self/fd/{fd}")):
            _die()

    os.fsync = fsync


def main() -> None:
    mode, marker, tool, *args = sys.argv[1:]
    {"gzip": _patch_gzip, "savez": _patch_savez, "fsync": _patch_fsync}[mode](marker)
    sys.argv = [tool, *args]
    runpy.run_path(tool, run_name="__main__")


if __name__ == "__main__":
    main()
