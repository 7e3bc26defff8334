"""Atomic, symlink-safe output writing.

Outputs are first written to a hidden temporary file in the destination
directory and then renamed over the final name, so a killed process never
leaves a partial file under the final name, and an existing symlink at the
final name is replaced (its target is never written). Without overwrite the
rename is exclusive (a hard link), so a file another process put under the
final name meanwhile is never replaced.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from liverseg.errors import OutputError, OutputExistsError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def safe_output_path(output_dir: str | os.PathLike, name: str) -> Path:
    """Joins ``name`` to ``output_dir``, refusing names that escape it."""
    out = Path(output_dir)
    if not name or os.path.isabs(name) or name in (".", ".."):
        raise OutputError(out / str(name), "output name is empty or absolute")
    parts = Path(name).parts
    if any(p == ".." for p in parts):
        raise OutputError(out / name, "output name escapes the output directory")
    candidate = out / name
    root = os.path.realpath(out)
    parent = os.path.realpath(candidate.parent)
    if os.path.commonpath([root, parent]) != root:
        raise OutputError(candidate, "output name escapes the output directory")
    return candidate


def check_can_write(path: str | os.PathLike, overwrite: bool) -> None:
    """Raises OutputError if ``path`` exists (file, dir or link) and ``overwrite`` is off."""
    p = Path(path)
    if p.is_dir() and not p.is_symlink():
        raise OutputError(p, "output path is an existing directory")
    if (p.exists() or p.is_symlink()) and not overwrite:
        kind = "a symlink" if p.is_symlink() else "a file"
        raise OutputExistsError(p, f"output exists ({kind}); pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, overwrite: bool = False, suffix: str | None = None
) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; renames it to ``path`` on success.

    The temporary name keeps the final suffix (``suffix`` or the final name's
    full suffixes, e.g. ``.nii.gz``) so writers that pick a format from the
    extension do the right thing. On any exception the temporary file is
    removed and nothing exists under the final name that was not there before.
    """
    final = Path(path)
    check_can_write(final, overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(final.suffixes) if final.suffixes else ""
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp" + suffix, dir=final.parent)
    os.close(fd)
    # mkstemp creates 0600; give the output the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_umask())
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if overwrite:
            if final.is_symlink():
                final.unlink()
            os.replace(tmp_path, final)
        else:
            _rename_exclusive(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _rename_exclusive(tmp: Path, final: Path) -> None:
    """Renames ``tmp`` to ``final`` unless something is there now (checked and done atomically)."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        check_can_write(final, overwrite=False)
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        check_can_write(final, overwrite=False)  # no hard links here: check, then rename
        os.replace(tmp, final)
        return
    tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = False) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def atomic_write_with(
    path: str | os.PathLike, writer: Callable[[Path], None], overwrite: bool = False
) -> None:
    """Calls ``writer(tmp_path)`` and renames the result to ``path``."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        writer(tmp)
