"""tools/infer.py on a directory of bad, odd and good volumes, as a user runs it.

One run over the whole battery: every bad file gets exactly one error line
naming it and the problem, every good or merely unusual file is segmented,
nothing else is written, and existing outputs (a file, a symlink) are
refused without --overwrite; a second run with --overwrite replaces the
symlink without writing through it.
"""

import os
import re

import nibabel as nib
import numpy as np
import pytest

from liverseg.data import nifti
from tests.reliability import badfiles as bf
from tests.reliability.conftest import run_tool

GOOD = ("volume-100.nii.gz", "volume-101.nii", "volume-102.nii.gz", "volume-103.nii")


def expected_output(name: str) -> str:
    from liverseg.inference.runner import output_name

    return output_name(name)


@pytest.fixture(scope="module")
def battery_run(tmp_path_factory, tiny_models):
    liver, tumor = tiny_models
    root = tmp_path_factory.mktemp("infer_battery")
    src, out = root / "in", root / "out"
    src.mkdir()
    out.mkdir()
    for bad in bf.CT_BATTERY + bf.GOOD_ODDITIES:
        bad.write(src)
    for i, name in enumerate(GOOD):
        bf.write_good_ct(src / name, seed=i)
    (src / "notes.txt").write_text("scanner log\n")
    (src / "scans.nii").mkdir()
    bf.write_good_labels(src / "segmentation-100.nii.gz")
    # Existing outputs: a symlink to a file outside the output dir, and a plain file.
    precious = root / "precious.nii.gz"
    precious.write_bytes(b"must never be written through")
    os.symlink(precious, out / "segmentation-102.nii.gz")
    (out / "segmentation-103.nii").write_bytes(b"an older result")
    result = run_tool(
        "infer",
        f"--input_dir={src}",
        f"--output_dir={out}",
        f"--liver_model={liver}",
        f"--tumor_model={tumor}",
        "--batch_size=4",
    )
    return src, out, precious, result


def test_exit_status_and_no_traceback(battery_run):
    _, _, _, result = battery_run
    assert result.returncode == 1
    assert "Traceback" not in result.output
    assert "unexpected" not in result.output and "internal error" not in result.output
    assert not re.search(r"\w+Warning:", result.stderr)  # no raw Python warnings either
    n_good = len(GOOD) - 2 + len(bf.GOOD_ODDITIES)
    n_bad = len(bf.CT_BATTERY) + 2
    assert f"{n_good} written, 0 skipped, {n_bad} failed" in result.stdout


@pytest.mark.parametrize("bad", bf.CT_BATTERY, ids=lambda b: b.name)
def test_each_bad_volume_has_one_error_line_naming_it(battery_run, bad):
    src, out, _, result = battery_run
    path = str(src / bad.name)
    line = result.error_line_for(path, bad.note)
    assert line.startswith(f"ERROR {path}: ")
    assert re.search(bad.expect, line), (bad.note, line)
    assert not (out / expected_output(bad.name)).exists()


def test_error_lines_are_one_per_failure(battery_run):
    _, _, _, result = battery_run
    errors = result.liverseg_errors()
    assert len(errors) == len(bf.CT_BATTERY) + 2
    assert all(line.startswith("ERROR /") for line in errors)


@pytest.mark.parametrize("name", [b.name for b in bf.GOOD_ODDITIES] + list(GOOD[:2]))
def test_good_and_unusual_volumes_are_segmented(battery_run, name):
    src, out, _, _ = battery_run
    written = out / expected_output(name)
    source = nifti.load_ct(src / name)
    image = nib.load(str(written))
    labels = np.asarray(image.dataobj)
    assert image.get_data_dtype() == np.uint8
    assert labels.shape == source.shape and set(np.unique(labels)) <= {0, 1, 2}
    np.testing.assert_allclose(image.affine, source.affine, atol=1e-5)


def test_skipped_entries_are_listed(battery_run):
    _, _, _, result = battery_run
    (line,) = [line for line in result.stderr.splitlines() if "not CT volumes" in line]
    for fragment in (
        "notes.txt (not a NIfTI file)",
        "scans.nii/ (directory)",
        "segmentation-100.nii.gz (label map)",
    ):
        assert fragment in line


def test_existing_outputs_are_refused_and_untouched(battery_run):
    _, out, precious, result = battery_run
    errors = result.liverseg_errors()
    link = out / "segmentation-102.nii.gz"
    assert [e for e in errors if f"{link}:" in e] == [
        f"ERROR {link}: output exists (a symlink); pass --overwrite to replace it"
    ]
    plain = out / "segmentation-103.nii"
    assert [e for e in errors if f"{plain}:" in e] == [
        f"ERROR {plain}: output exists (a file); pass --overwrite to replace it"
    ]
    assert link.is_symlink() and precious.read_bytes() == b"must never be written through"
    assert plain.read_bytes() == b"an older result"


def test_nothing_else_is_written(battery_run):
    src, out, _, _ = battery_run
    expected = {
        expected_output(name) for name in [b.name for b in bf.GOOD_ODDITIES] + list(GOOD)
    } | {"inference_options.json"}
    assert set(os.listdir(out)) == expected  # no partial, temporary or extra files


def test_overwrite_replaces_the_symlink_not_its_target(battery_run, tiny_models, tmp_path):
    src, out, precious, _ = battery_run
    liver, _ = tiny_models
    link = out / "segmentation-102.nii.gz"
    result = run_tool(
        "infer",
        f"--input_dir={src / 'volume-102.nii.gz'}",
        f"--output_dir={out}",
        f"--liver_model={liver}",
        "--overwrite",
        "--crf_targets=",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 written, 0 skipped, 0 failed" in result.stdout
    assert not link.is_symlink() and link.is_file()
    assert nib.load(str(link)).shape == bf.SHAPE
    assert precious.read_bytes() == b"must never be written through"
