"""Directory runner: discovery, naming, per-file isolation, overwrite rules, headers."""

import logging
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from liverseg.data import nifti
from liverseg.errors import ConfigError, LayoutError, OutputError
from liverseg.inference import (
    CaseStatus,
    RunOptions,
    Segmenter,
    SegmentOptions,
    discover_inputs,
    output_name,
    run,
    runner,
)
from liverseg.inference.runner import RunReport, auxiliary_names
from tests.inference import helpers


@pytest.fixture(scope="module")
def segmenter():
    return Segmenter(
        helpers.fake_liver_model(),
        helpers.fake_tumor_model(),
        helpers.options(batch_size=4, opening=False),
    )


def write_volume(path, dtype=np.int16):
    return helpers.write_ct(path, helpers.synthetic_volume(speck=False).astype(dtype))


def listing(directory):
    return sorted(os.listdir(directory))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("volume-7.nii", "segmentation-7.nii"),
        ("test-volume-7.nii", "test-segmentation-7.nii"),
        ("volume-12.nii.gz", "segmentation-12.nii.gz"),
        ("patient3.nii.gz", "patient3_segmentation.nii.gz"),
        ("CT.NII.GZ", "CT_segmentation.NII.GZ"),
        ("a.b.nii", "a.b_segmentation.nii"),
    ],
)
def test_output_names(name, expected):
    assert output_name(name) == expected


def test_auxiliary_names():
    assert auxiliary_names("segmentation-7.nii.gz") == {
        "liver_probability": "segmentation-7_liver_probability.nii.gz",
        "tumor_probability": "segmentation-7_tumor_probability.nii.gz",
        "overlay": "segmentation-7_overlay.png",
        "dicom_seg": "segmentation-7_seg.dcm",
    }


def test_discovery_lists_what_it_skips(tmp_path):
    for name in (
        "volume-10.nii.gz",
        "volume-2.nii",
        "scan.nii.gz",
        "segmentation-2.nii",
        "test-segmentation-1.nii.gz",
        "notes.txt",
        "scan_segmentation.nii.gz",
        ".volume-3.nii.gz.x.tmp.nii.gz",
        "volume-4.nii.gz.bak",
    ):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    inputs, ignored = discover_inputs(tmp_path)
    assert [p.name for p in inputs] == ["scan.nii.gz", "volume-2.nii", "volume-10.nii.gz"]
    assert {p.name: r for p, r in ignored} == {
        "notes.txt": "not a NIfTI file",
        "segmentation-2.nii": "label map",
        "test-segmentation-1.nii.gz": "label map",
        "scan_segmentation.nii.gz": "output of this tool",
        "sub": "directory",
        "volume-4.nii.gz.bak": "not a NIfTI file",
    }


def test_discovery_of_one_file_and_errors(tmp_path):
    vol = write_volume(tmp_path / "volume-1.nii.gz")
    assert discover_inputs(vol) == ([vol], [])
    label = tmp_path / "segmentation-1.nii.gz"
    label.write_bytes(b"x")
    with pytest.raises(LayoutError, match="label map"):
        discover_inputs(label)
    with pytest.raises(LayoutError, match="does not exist"):
        discover_inputs(tmp_path / "missing.nii")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(LayoutError, match="no CT volumes"):
        discover_inputs(empty)


def test_one_bad_file_does_not_stop_the_others(tmp_path, segmenter, caplog):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_volume(src / "volume-0.nii.gz")
    (src / "volume-1.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    helpers.write_ct(src / "volume-2.nii", np.zeros((32, 32, 2), np.int16))
    write_volume(src / "volume-3.nii")
    (src / "readme.txt").write_text("x")
    with caplog.at_level(logging.INFO):
        report = run(src, out, segmenter)
    assert [c.status for c in report.cases] == [
        CaseStatus.WRITTEN,
        CaseStatus.FAILED,
        CaseStatus.FAILED,
        CaseStatus.WRITTEN,
    ]
    assert report.cases[1].error.startswith(str(src / "volume-1.nii.gz") + ": ")
    assert report.cases[2].error.startswith(str(src / "volume-2.nii") + ": volume has 2 slice")
    assert not report.ok
    assert listing(out) == ["inference_options.json", "segmentation-0.nii.gz", "segmentation-3.nii"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and "volume-1.nii.gz" in errors[0] and "volume-2.nii" in errors[1]
    assert any("readme.txt (not a NIfTI file)" in r.getMessage() for r in caplog.records)
    assert any(
        "liver_net" in r.getMessage() and "crf" in r.getMessage() and "write" in r.getMessage()
        for r in caplog.records
    )
    written = nifti.load_labels(out / "segmentation-0.nii.gz")
    np.testing.assert_array_equal(written.data, helpers.expected_labels())
    assert set(report.cases[0].timings) >= {
        "load",
        "liver_net",
        "roi",
        "tumor_net",
        "crf",
        "opening",
        "write",
        "total",
    }


def test_existing_outputs_refused_skipped_or_overwritten(tmp_path, segmenter):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_volume(src / "volume-0.nii.gz")
    out.mkdir()
    target = out / "segmentation-0.nii.gz"
    target.write_bytes(b"old")
    refused = run(src, out, segmenter)
    assert refused.cases[0].status == CaseStatus.FAILED and "exists" in refused.cases[0].error
    assert target.read_bytes() == b"old"
    skipped = run(src, out, segmenter, RunOptions(skip_existing=True))
    assert skipped.cases[0].status == CaseStatus.SKIPPED and skipped.ok
    assert target.read_bytes() == b"old"
    replaced = run(src, out, segmenter, RunOptions(overwrite=True))
    assert replaced.ok and nifti.load_labels(target).shape == helpers.SHAPE
    with pytest.raises(ConfigError):
        RunOptions(overwrite=True, skip_existing=True)


def test_symlink_output_is_replaced_never_written_through(tmp_path, segmenter):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    write_volume(src / "volume-0.nii.gz")
    victim = tmp_path / "victim.nii.gz"
    victim.write_bytes(b"precious")
    link = out / "segmentation-0.nii.gz"
    link.symlink_to(victim)
    refused = run(src, out, segmenter)
    assert "symlink" in refused.cases[0].error
    assert run(src, out, segmenter, RunOptions(overwrite=True)).ok
    assert not link.is_symlink() and victim.read_bytes() == b"precious"
    assert nifti.load_labels(link).shape == helpers.SHAPE


def test_rerun_after_a_crash_redoes_unfinished_cases(tmp_path, segmenter):
    src = tmp_path / "data"
    src.mkdir()
    write_volume(src / "volume-0.nii.gz")
    write_volume(src / "volume-1.nii.gz")
    # case 0 finished; case 1 was killed after its probability map and with a temp file left
    first = run([src / "volume-0.nii.gz"], src, segmenter)
    assert first.ok
    (src / "segmentation-1_liver_probability.nii.gz").write_bytes(b"partial leftover")
    (src / ".segmentation-1.nii.gz.abc.tmp.nii.gz").write_bytes(b"partial")
    report = run(src, src, segmenter, RunOptions(skip_existing=True, write_probabilities=True))
    assert [(c.input.name, c.status) for c in report.cases] == [
        ("volume-0.nii.gz", CaseStatus.SKIPPED),
        ("volume-1.nii.gz", CaseStatus.WRITTEN),
    ]
    prob = nifti.load_ct(src / "segmentation-1_liver_probability.nii.gz")
    assert prob.shape == helpers.SHAPE and prob.data.max() == 1.0
    tumour = nifti.load_ct(src / "segmentation-1_tumor_probability.nii.gz")
    assert tumour.data.max() > 0.99
    assert all(r == "label map" or r == "output of this tool" for _, r in report.ignored)


def test_select_part_covers_every_input_once():
    from liverseg.inference.runner import select_part

    paths = [f"v{i}" for i in range(11)]
    for n in (1, 2, 3, 4, 11, 13):
        parts = [select_part(paths, n, k) for k in range(n)]
        assert sorted(p for part in parts for p in part) == sorted(paths)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert select_part(paths, 3, 1) == ["v1", "v4", "v7", "v10"]
    for bad in ({"num_parts": 0}, {"num_parts": 2, "part_id": 2}, {"part_id": -1}):
        with pytest.raises(ConfigError, match="part_id"):
            RunOptions(**bad)


def test_parts_write_what_one_run_writes(tmp_path, segmenter):
    """Two parts (any order, with a rerun) give the files, bytes included, of one plain run."""
    src = tmp_path / "data"
    src.mkdir()
    for i in range(5):
        write_volume(src / f"volume-{i}.nii.gz")
    (src / "volume-2.nii").write_bytes(b"not a nifti")  # fails in whichever part holds it
    whole = run(src, tmp_path / "whole", segmenter)
    assert len(whole.written) == 4 and len(whole.failed) == 2  # volume-2 twins fail
    split = tmp_path / "split"
    reports = [run(src, split, segmenter, RunOptions(num_parts=2, part_id=k)) for k in (1, 0)]
    assert [len(r.cases) for r in reports] == [3, 3]
    assert {c.input for c in reports[0].cases}.isdisjoint(c.input for c in reports[1].cases)
    assert sum(len(r.failed) for r in reports) == 2
    assert listing(split) == listing(tmp_path / "whole")
    for name in listing(split):
        if name.startswith("segmentation-"):
            assert (split / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    rerun = run(src, split, segmenter, RunOptions(num_parts=2, part_id=0, skip_existing=True))
    assert {c.status for c in rerun.cases} == {CaseStatus.SKIPPED, CaseStatus.FAILED}


def test_dicom_series_and_its_nifti_twin_give_the_same_labels(tmp_path, segmenter):
    from liverseg.data.dicom import load_series
    from liverseg.data.dicom_seg import read_seg_labels
    from tests.dicom_files import write_series

    src = tmp_path / "in"
    hu = helpers.synthetic_volume(speck=True).astype(np.int16)
    # transposed, flipped, anisotropic; slices stored in the order of their normal
    # (row direction x column direction), the order a DICOM series is read in
    affine = np.array([[0, -0.8, 0, 50], [-0.9, 0, 0, 40], [0, 0, -2.5, -200], [0, 0, 0, 1.0]])
    write_series(src / "case7", hu, affine)
    helpers.write_ct(src / "twin7.nii.gz", hu, affine)
    report = run(src, tmp_path / "out", segmenter, RunOptions(dicom_seg=True))
    assert [(c.input.name, c.status) for c in report.cases] == [
        ("case7", CaseStatus.WRITTEN),
        ("twin7.nii.gz", CaseStatus.WRITTEN),
    ]
    from_dicom = nifti.load_labels(tmp_path / "out" / "case7_segmentation.nii.gz")
    from_nifti = nifti.load_labels(tmp_path / "out" / "twin7_segmentation.nii.gz")
    np.testing.assert_array_equal(from_dicom.data, from_nifti.data)
    np.testing.assert_allclose(from_dicom.affine, from_nifti.affine, atol=1e-6)
    assert set(np.unique(from_dicom.data)) == {0, 1, 2}
    # the SEG beside it holds the same masks on the series' slices; none for the NIfTI input
    seg = tmp_path / "out" / "case7_segmentation_seg.dcm"
    series = load_series(src / "case7")
    np.testing.assert_array_equal(read_seg_labels(seg, series), from_dicom.data)
    assert not (tmp_path / "out" / "twin7_segmentation_seg.dcm").exists()
    # statistics of a series read its HU from the series
    from liverseg.evaluation.statistics import statistics_of_files

    stats = statistics_of_files(tmp_path / "out" / "case7_segmentation.nii.gz", src / "case7")
    assert stats.lesions and stats.lesions[0].mean_hu == pytest.approx(
        hu[from_dicom.data == 2].mean(), abs=1e-6
    )
    # one series folder given directly is one input
    one = run(src / "case7", tmp_path / "one", segmenter)
    assert [c.output.name for c in one.written] == ["case7_segmentation.nii.gz"]


@pytest.mark.parametrize(
    "where, err",
    [("write", 28), ("mkstemp", 30)],
    ids=["full-disk", "read-only-directory"],
)
def test_a_full_disk_or_read_only_directory_fails_the_case_cleanly(
    tmp_path, segmenter, monkeypatch, where, err
):
    import errno
    import gzip
    import tempfile

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in (1, 2):
        write_volume(src / f"volume-{i}.nii.gz")
    assert run([src / "volume-1.nii.gz"], out, segmenter).ok
    first = (out / "segmentation-1.nii.gz").read_bytes()

    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    if where == "write":
        real_write = gzip.GzipFile.write
        monkeypatch.setattr(
            gzip.GzipFile,
            "write",
            lambda self, data: fail() if len(data) > 1000 else real_write(self, data),
        )
        report = run(src, out, segmenter, RunOptions(skip_existing=True))
        (case,) = report.failed
        assert case.input.name == "volume-2.nii.gz"
        assert "segmentation-2.nii.gz: cannot write" in case.error
        assert os.strerror(err) in case.error and errno.errorcode[err] == "ENOSPC"
    else:
        # a read-only output directory: the run stops before any case, naming the file
        monkeypatch.setattr(tempfile, "mkstemp", fail)
        with pytest.raises(OutputError, match="inference_options.json: cannot write"):
            run(src, out, segmenter, RunOptions(skip_existing=True))
    assert listing(out) == ["inference_options.json", "segmentation-1.nii.gz"]
    assert (out / "segmentation-1.nii.gz").read_bytes() == first


def test_overlay_png_is_written(tmp_path, segmenter):
    src = tmp_path / "in"
    src.mkdir()
    write_volume(src / "scan.nii.gz")
    report = run(src, tmp_path / "out", segmenter, RunOptions(overlays=True))
    assert report.ok
    png = tmp_path / "out" / "scan_segmentation_overlay.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.cases[0].extra_outputs == [png]


def test_output_dir_that_is_a_file_is_refused(tmp_path, segmenter):
    write_volume(tmp_path / "volume-0.nii.gz")
    (tmp_path / "out").write_text("x")
    with pytest.raises(OutputError, match="not a directory"):
        run(tmp_path / "volume-0.nii.gz", tmp_path / "out", segmenter)


def _scaled_uint16(path, affine):
    hu = helpers.synthetic_volume(speck=False).astype(np.int16)
    img = nib.Nifti1Image((hu.astype(np.int32) + 1024).astype(np.uint16), affine)
    img.header.set_slope_inter(1.0, -1024.0)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=2)
    img.header["descrip"] = b"scaled uint16"
    nib.save(img, str(path))
    return path


def _flipped_affine():
    # axes permuted and flipped, oblique-free, anisotropic, with an offset
    return np.array(
        [
            [0.0, -0.7, 0.0, 120.0],
            [-0.8, 0.0, 0.0, 95.5],
            [0.0, 0.0, 3.0, -300.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


@pytest.mark.parametrize("kind", ["int16", "float32", "scaled_uint16", "flipped", "anisotropic"])
def test_output_keeps_shape_affine_and_header(tmp_path, segmenter, kind):
    src = tmp_path / "in"
    src.mkdir()
    path = src / f"volume-{kind}.nii.gz"
    hu = helpers.synthetic_volume(speck=False)
    if kind == "scaled_uint16":
        _scaled_uint16(path, _flipped_affine())
    elif kind == "flipped":
        helpers.write_ct(path, hu.astype(np.int16), _flipped_affine())
    elif kind == "anisotropic":
        helpers.write_ct(path, hu.astype(np.int16), np.diag([0.62, 0.91, 5.0, 1.0]))
    else:
        helpers.write_ct(path, hu.astype(kind))
    report = run(src, tmp_path / "out", segmenter)
    assert report.ok
    source = nib.load(str(path))
    result = nib.load(str(tmp_path / "out" / f"segmentation-{kind}.nii.gz"))
    np.testing.assert_array_equal(result.affine, source.affine)
    assert result.shape == source.shape
    assert result.get_data_dtype() == np.uint8
    for field in ("qform_code", "sform_code", "pixdim", "xyzt_units", "descrip"):
        np.testing.assert_array_equal(result.header[field], source.header[field])
    data = np.asarray(result.dataobj)
    np.testing.assert_array_equal(data > 0, helpers.expected_labels() > 0)


def test_two_volumes_one_trace_with_saved_models(tmp_path, saved_models):
    liver_path, tumor_path = saved_models
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(5)
    helpers.write_ct(src / "volume-0.nii.gz", rng.normal(60, 50, (32, 32, 4)).astype(np.int16))
    helpers.write_ct(src / "volume-1.nii.gz", rng.normal(60, 50, (48, 40, 5)).astype(np.int16))
    segmenter = Segmenter(liver_path, tumor_path, SegmentOptions(batch_size=2))
    report = run(src, tmp_path / "out", segmenter)
    assert report.ok and len(report.written) == 2
    assert segmenter.liver.trace_count == 1 and segmenter.tumor.trace_count == 1
    assert nifti.load_labels(tmp_path / "out" / "segmentation-1.nii.gz").shape == (48, 40, 5)


def test_a_label_map_another_run_writes_meanwhile_is_skipped_not_replaced(
    tmp_path, segmenter, monkeypatch
):
    """Two runs with --skip_existing on one directory: whoever finishes a case first keeps it."""
    src = tmp_path / "data"
    src.mkdir()
    for i in range(3):
        write_volume(src / f"volume-{i}.nii.gz")
    theirs = {}
    segment = Segmenter.segment

    def slow_segment(self, volume, **kw):
        result = segment(self, volume, **kw)
        name = Path(volume.path).name.replace("volume", "segmentation")
        if name == "segmentation-1.nii.gz":  # the other run finishes case 1 while we work
            nifti.save_labels(src / name, np.zeros(volume.shape, np.uint8), volume)
            theirs[name] = (src / name).read_bytes()
        return result

    monkeypatch.setattr(Segmenter, "segment", slow_segment)
    report = run(src, src, segmenter, RunOptions(skip_existing=True))
    assert [c.status for c in report.cases] == [
        CaseStatus.WRITTEN,
        CaseStatus.SKIPPED,
        CaseStatus.WRITTEN,
    ]
    assert (src / "segmentation-1.nii.gz").read_bytes() == theirs["segmentation-1.nii.gz"]
    assert not [n for n in listing(src) if n.startswith(".")]


def test_a_case_written_by_another_run_before_its_turn_is_skipped(tmp_path, segmenter):
    src = tmp_path / "data"
    src.mkdir()
    write_volume(src / "volume-0.nii.gz")
    options = RunOptions(skip_existing=True)
    report = RunReport([], [])
    (plan,) = runner.plan_cases([src / "volume-0.nii.gz"], src, options, report)
    (src / "segmentation-0.nii.gz").write_bytes(b"theirs")
    case = runner.run_case(plan, segmenter, options, "1/1")
    assert case.status == CaseStatus.SKIPPED
    assert (src / "segmentation-0.nii.gz").read_bytes() == b"theirs"
    without_skip = runner.run_case(plan, segmenter, RunOptions(), "1/1")
    assert without_skip.status == CaseStatus.FAILED and "output exists" in without_skip.error
