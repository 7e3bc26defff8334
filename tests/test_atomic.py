import errno
import os

import pytest

from liverseg.errors import OutputError, OutputExistsError
from liverseg.utils.atomic import atomic_path, atomic_write_text, safe_output_path


def test_atomic_write_replaces_symlink_not_its_target(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("keep")
    link = tmp_path / "out.txt"
    link.symlink_to(target)
    with pytest.raises(OutputError, match="symlink"):
        atomic_write_text(link, "new")
    atomic_write_text(link, "new", overwrite=True)
    assert not link.is_symlink() and link.read_text() == "new"
    assert target.read_text() == "keep"


def test_failure_leaves_nothing(tmp_path):
    out = tmp_path / "x.nii.gz"
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        assert tmp.name.endswith(".nii.gz")
        tmp.write_bytes(b"partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_umask_permissions(tmp_path):
    out = tmp_path / "a.txt"
    atomic_write_text(out, "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (out.stat().st_mode & 0o777) == (0o666 & ~mask)


@pytest.mark.parametrize("name", ["../x.nii", "/etc/passwd", "a/../../x", ""])
def test_names_escaping_the_output_dir_are_refused(tmp_path, name):
    with pytest.raises(OutputError):
        safe_output_path(tmp_path, name)


def test_symlinked_subdir_escaping_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub").symlink_to(outside)
    with pytest.raises(OutputError, match="escapes"):
        safe_output_path(out, "sub/x.nii")
    assert safe_output_path(out, "y.nii") == out / "y.nii"


def test_a_file_written_meanwhile_is_never_replaced_without_overwrite(tmp_path):
    """Another process writing the same output between the check and the rename wins."""
    out = tmp_path / "seg.nii"
    with pytest.raises(OutputExistsError, match="output exists"), atomic_path(out) as tmp:
        tmp.write_bytes(b"mine")
        out.write_bytes(b"theirs")
    assert out.read_bytes() == b"theirs"
    assert os.listdir(tmp_path) == ["seg.nii"]


def test_overwrite_replaces_a_file_written_meanwhile(tmp_path):
    out = tmp_path / "seg.nii"
    with atomic_path(out, overwrite=True) as tmp:
        tmp.write_bytes(b"mine")
        out.write_bytes(b"theirs")
    assert out.read_bytes() == b"mine"
    assert os.listdir(tmp_path) == ["seg.nii"]


def test_without_hard_links_the_exclusive_rename_checks_then_renames(tmp_path, monkeypatch):
    """File systems without hard links (EPERM) fall back to check-then-rename."""

    def no_links(src, dst):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    out = tmp_path / "a.txt"
    atomic_write_text(out, "first")
    assert out.read_text() == "first"
    with pytest.raises(OutputExistsError):
        atomic_write_text(out, "second")
    assert out.read_text() == "first" and os.listdir(tmp_path) == ["a.txt"]
