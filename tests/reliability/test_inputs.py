"""Input failures that cannot be staged as a file in a directory, checked in-process:
races, permissions, memory, and the tools' last line of defence (liverseg.cli).
"""

import builtins
import errno
import os
import time

import numpy as np
import pytest

from liverseg import cli
from liverseg.data import nifti
from liverseg.data.nifti import reader as nifti_reader
from liverseg.errors import LayoutError, NiftiError, OutputError
from liverseg.inference import CaseStatus, Segmenter, run
from tests.inference import helpers
from tests.reliability import badfiles as bf


@pytest.fixture(scope="module")
def segmenter():
    """Known-output networks (1x1 convs): fast, so the runner is what is tested."""
    return Segmenter(
        helpers.fake_liver_model(),
        helpers.fake_tumor_model(),
        helpers.options(batch_size=4, crf=False, opening=False),
    )


def test_file_deleted_between_discovery_and_reading(tmp_path, segmenter, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in (1, 2, 3):
        bf.write_good_ct(src / f"volume-{i}.nii.gz", seed=i)
    real = nifti.load_ct

    def load_after_deletion(path, **kw):
        if os.path.basename(path) == "volume-2.nii.gz":
            os.remove(path)
        return real(path, **kw)

    monkeypatch.setattr(nifti, "load_ct", load_after_deletion)
    report = run(src, out, segmenter)
    assert [c.status for c in report.cases] == [
        CaseStatus.WRITTEN,
        CaseStatus.FAILED,
        CaseStatus.WRITTEN,
    ]
    assert report.cases[1].error == f"{src / 'volume-2.nii.gz'}: file not found"
    assert sorted(os.listdir(out)) == [
        "inference_options.json",
        "segmentation-1.nii.gz",
        "segmentation-3.nii.gz",
    ]


def test_file_vanishing_while_its_data_are_read(tmp_path, monkeypatch):
    path = bf.write_good_ct(tmp_path / "volume-1.nii.gz")
    real = nifti_reader._read_raw

    def read_after_deletion(info):
        os.remove(info.path)
        return real(info)

    monkeypatch.setattr(nifti_reader, "_read_raw", read_after_deletion)
    with pytest.raises(NiftiError, match="cannot read file: No such file or directory") as info:
        nifti.load_ct(path)
    assert info.value.path == str(path)


def test_unreadable_file(tmp_path, monkeypatch):
    """Simulated: the tests run as root, for whom chmod 000 does not block reads."""
    path = bf.write_good_ct(tmp_path / "volume-1.nii.gz")
    real_open = builtins.open

    def guarded_open(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    with pytest.raises(NiftiError) as info:
        nifti.load_ct(path)
    assert str(info.value) == f"{path}: cannot read file: Permission denied"


def test_out_of_memory_names_the_file(tmp_path, monkeypatch):
    path = bf.write_good_ct(tmp_path / "volume-1.nii.gz")

    def no_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(nifti_reader.np, "empty", no_memory)
    with pytest.raises(NiftiError) as info:
        nifti.load_ct(path)
    assert str(info.value) == (
        f"{path}: out of memory reading the (32, 32, 6) int16 image (0.00 GiB stored)"
    )


def test_impossible_gzip_size_is_refused_before_allocating(tmp_path, monkeypatch):
    path = tmp_path / "volume-1.nii.gz"
    next(b for b in bf.CT_BATTERY if b.expect == "cannot hold").make(path)
    allocations = []
    real_empty = np.empty
    monkeypatch.setattr(
        nifti_reader.np, "empty", lambda *a, **k: allocations.append(a) or real_empty(*a, **k)
    )
    start = time.perf_counter()
    with pytest.raises(NiftiError, match="compressed bytes cannot hold the 2097152000 data bytes"):
        nifti.load_ct(path)
    assert time.perf_counter() - start < 0.5 and allocations == []


def test_symlink_loop_and_fifo_are_named(tmp_path):
    loop = tmp_path / "loop.nii"
    os.symlink("loop.nii", loop)
    with pytest.raises(NiftiError, match="symbolic link loop"):
        nifti.load_labels(loop)
    fifo = tmp_path / "pipe.nii.gz"
    os.mkfifo(fifo)
    with pytest.raises(NiftiError, match="is not a regular file"):  # and does not block
        nifti.read_header(fifo)


# ----------------------------------------------------------------------------
# Inference runner: bugs to fix in liverseg/inference (not owned here)


def test_duplicate_case_ids_fail_by_name_and_others_are_written(tmp_path, segmenter):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("volume-3.nii", "volume-3.nii.gz", "volume-4.nii.gz"):
        bf.write_good_ct(src / name)
    report = run(src, out, segmenter)
    by_input = {c.input.name: c for c in report.cases}
    assert by_input["volume-4.nii.gz"].status == CaseStatus.WRITTEN
    for name, other in (("volume-3.nii", "volume-3.nii.gz"), ("volume-3.nii.gz", "volume-3.nii")):
        assert by_input[name].status == CaseStatus.FAILED
        assert by_input[name].error.startswith(str(src / name)) and other in by_input[name].error
    assert sorted(os.listdir(out)) == ["inference_options.json", "segmentation-4.nii.gz"]


def test_output_dir_below_a_file_is_an_output_error(tmp_path, segmenter):
    bf.write_good_ct(tmp_path / "volume-1.nii.gz")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(OutputError, match="file.txt"):
        run(tmp_path / "volume-1.nii.gz", tmp_path / "file.txt" / "out", segmenter)


def test_input_dir_of_only_stray_files(tmp_path, segmenter):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "segmentation-1.nii.gz").write_bytes(b"x")
    with pytest.raises(LayoutError, match="no CT volumes"):
        run(tmp_path, tmp_path / "out", segmenter)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------
# liverseg.cli.run_tool: what reaches the user


def _run(main, capsys, monkeypatch, debug=None):
    if debug is None:
        monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    else:
        monkeypatch.setenv(cli.DEBUG_ENV, debug)
    with pytest.raises(SystemExit) as info:
        cli.run_tool(main, ["tool"])
    return info.value.code, capsys.readouterr().err.strip().splitlines()


def test_cli_turns_typed_errors_into_one_line(capsys, monkeypatch):
    def main(argv):
        raise NiftiError("/data/v.nii", "corrupt file:\n  second line")

    assert _run(main, capsys, monkeypatch) == (1, ["error: /data/v.nii: corrupt file: second line"])


def test_cli_never_prints_an_empty_memory_error(capsys, monkeypatch):
    def main(argv):
        raise MemoryError()

    assert _run(main, capsys, monkeypatch) == (
        1,
        ["error: out of memory (the input is too large for this machine)"],
    )


def test_cli_reports_a_bug_in_one_line_unless_debugging(capsys, monkeypatch):
    def main(argv):
        raise FileExistsError(errno.EEXIST, "File exists", "/runs/model")

    code, lines = _run(main, capsys, monkeypatch)
    assert code == cli.EXIT_INTERNAL and len(lines) == 1
    assert lines[0].startswith(
        "error: internal error (FileExistsError: [Errno 17] File exists: "
        "'/runs/model'); please report it"
    )
    monkeypatch.setenv(cli.DEBUG_ENV, "1")
    with pytest.raises(FileExistsError):
        cli.run_tool(main, ["tool"])


def test_a_file_name_with_a_newline_still_gives_one_error_line():
    message = str(NiftiError("/data/bad\nname.nii", "not a NIfTI file"))
    assert "\n" not in message and "bad\\nname.nii" in message
