"""NIfTI reading, validation and writing (liverseg.data.nifti)."""

import dataclasses
import functools
import gzip
import logging
import os
import time

import nibabel as nib
import numpy as np
import pytest

from liverseg.data import nifti
from liverseg.errors import NiftiError, OutputError
from tests import nifti_files

AFFINE = np.array(
    [
        [-0.75, 0.0, 0.0, 180.0],
        [0.0, -0.75, 0.0, 170.0],
        [0.0, 0.0, 2.5, -400.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


make_header = functools.partial(nifti_files.make_header, affine=AFFINE)
nifti_bytes = functools.partial(nifti_files.nifti_bytes, affine=AFFINE)
write = nifti_files.store


def expect_error(path, match, fn=nifti.load_ct, **kw):
    with pytest.raises(NiftiError, match=match) as info:
        fn(path, **kw)
    assert str(info.value).startswith(str(path))
    assert info.value.path == str(path)
    return info.value


@pytest.fixture
def ct(rng):
    return rng.integers(-1024, 2000, size=(12, 10, 6)).astype(np.int16)


@pytest.fixture
def labels(rng):
    return rng.integers(0, 3, size=(12, 10, 6)).astype(np.uint8)


# ----------------------------------------------------------------------------
# Reading valid files


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_load_ct_reads_hu_affine_spacing(tmp_path, ct, suffix):
    path = write(tmp_path / f"v{suffix}", nifti_bytes(ct))
    vol = nifti.load_ct(path)
    assert vol.data.dtype == np.float32 and vol.data.shape == ct.shape
    np.testing.assert_array_equal(vol.data, ct.astype(np.float32))
    np.testing.assert_allclose(vol.affine, AFFINE)
    assert vol.spacing == (0.75, 0.75, 2.5)
    assert vol.path == str(path)
    assert isinstance(vol.header, nib.Nifti1Header)
    # Agrees with nibabel's own reader.
    np.testing.assert_array_equal(vol.data, nib.load(path).get_fdata(dtype=np.float32))


@pytest.mark.parametrize(
    "dtype, slope, inter",
    [
        (np.int16, 0.5, -1024.0),
        (np.uint16, 1.0, -1024.0),
        (np.uint8, 2.0, -10.0),
        (np.int16, 0.25, 3.5),
    ],
)
def test_scaling_is_applied_exactly(tmp_path, dtype, slope, inter):
    raw = np.arange(4 * 3 * 2, dtype=dtype).reshape(4, 3, 2) * 7
    path = write(tmp_path / "v.nii.gz", nifti_bytes(raw, scl_slope=slope, scl_inter=inter))
    vol = nifti.load_ct(path)
    expected = (raw.astype(np.float64) * slope + inter).astype(np.float32)
    np.testing.assert_array_equal(vol.data, expected)
    assert vol.data[0, 0, 1] == np.float32(7 * slope + inter)


@pytest.mark.parametrize("slope", [0.0, np.nan])
def test_slope_zero_or_nan_means_no_scaling(tmp_path, slope):
    raw = np.arange(24, dtype=np.int16).reshape(4, 3, 2)
    path = write(tmp_path / "v.nii", nifti_bytes(raw, scl_slope=slope, scl_inter=-1024.0))
    np.testing.assert_array_equal(nifti.load_ct(path).data, raw.astype(np.float32))


def test_infinite_slope_or_intercept_is_refused(tmp_path):
    raw = np.zeros((4, 3, 2), np.int16)
    path = write(tmp_path / "slope.nii", nifti_bytes(raw, scl_slope=np.inf))
    expect_error(path, "scl_slope")
    path = write(tmp_path / "inter.nii", nifti_bytes(raw, scl_slope=1.0, scl_inter=np.nan))
    expect_error(path, "scl_inter")


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.float64])
def test_volume_storage_types(tmp_path, dtype):
    raw = (np.arange(5 * 4 * 3).reshape(5, 4, 3) * 3).astype(dtype)
    path = write(tmp_path / "v.nii.gz", nifti_bytes(raw))
    vol = nifti.load_ct(path)
    assert vol.data.dtype == np.float32
    np.testing.assert_array_equal(vol.data, raw.astype(np.float32))


def test_dtype_none_keeps_int16_when_exact(tmp_path, ct):
    path = write(tmp_path / "a.nii", nifti_bytes(ct))
    vol = nifti.load_ct(path, dtype=None)
    assert vol.data.dtype == np.int16
    np.testing.assert_array_equal(vol.data, ct)

    raw = np.array([0, 1, 3000, 4095] * 6, np.uint16).reshape(4, 3, 2)
    path = write(tmp_path / "b.nii", nifti_bytes(raw, scl_slope=1.0, scl_inter=-1024.0))
    vol = nifti.load_ct(path, dtype=None)
    assert vol.data.dtype == np.int16
    np.testing.assert_array_equal(vol.data, raw.astype(np.int32) - 1024)

    path = write(tmp_path / "c.nii", nifti_bytes(raw, scl_slope=0.5, scl_inter=0.0))
    vol = nifti.load_ct(path, dtype=None)
    assert vol.data.dtype == np.float32
    np.testing.assert_array_equal(vol.data, raw * np.float32(0.5))

    big = np.array([0, 40000] * 12, np.uint16).reshape(4, 3, 2)  # beyond int16
    vol = nifti.load_ct(write(tmp_path / "d.nii", nifti_bytes(big)), dtype=None)
    assert vol.data.dtype == np.float32
    np.testing.assert_array_equal(vol.data, big.astype(np.float32))


def test_big_endian_file(tmp_path, ct):
    hdr = make_header(ct.shape, np.int16, endian=">")
    path = write(tmp_path / "be.nii", nifti_bytes(ct, hdr=hdr))
    vol = nifti.load_ct(path, dtype=None)
    assert vol.data.dtype == np.dtype(np.int16) and vol.data.dtype.isnative
    np.testing.assert_array_equal(vol.data, ct)


def test_trailing_singleton_axis_is_squeezed(tmp_path, ct):
    data4 = ct[..., None]
    path = write(tmp_path / "v.nii.gz", nifti_bytes(data4))
    vol = nifti.load_ct(path)
    assert vol.data.shape == ct.shape
    np.testing.assert_array_equal(vol.data, ct)


def test_nifti2_file_is_read(tmp_path, ct):
    path = tmp_path / "v2.nii"
    nib.save(nib.Nifti2Image(ct, AFFINE), path)
    vol = nifti.load_ct(path)
    np.testing.assert_array_equal(vol.data, ct)
    np.testing.assert_allclose(vol.affine, AFFINE)


def test_oblique_affine_is_accepted_unchanged(tmp_path, ct):
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    oblique = rot @ np.diag([0.8, 0.8, 3.0, 1.0])
    oblique[:3, 3] = [10.0, -20.0, 30.0]
    path = write(
        tmp_path / "obl.nii", nifti_bytes(ct, hdr=make_header(ct.shape, np.int16, affine=oblique))
    )
    vol = nifti.load_ct(path)
    np.testing.assert_allclose(vol.affine, oblique, atol=1e-5)
    np.testing.assert_allclose(vol.spacing, (0.8, 0.8, 3.0), rtol=1e-6)


def test_no_orientation_uses_fallback_affine_and_warns(tmp_path, ct, caplog):
    hdr = make_header(ct.shape, np.int16, codes=(0, 0))
    path = write(tmp_path / "noorient.nii", nifti_bytes(ct, hdr=hdr))
    with caplog.at_level(logging.WARNING, logger="liverseg.data.nifti"):
        vol = nifti.load_ct(path)
    assert str(path) in caplog.text and "qform_code and sform_code are both 0" in caplog.text
    np.testing.assert_allclose(vol.affine, hdr.get_base_affine())
    np.testing.assert_array_equal(vol.data, ct)


@pytest.mark.parametrize(
    "fields, expected",
    [
        (
            {"qform_code": 9, "sform_code": 12},
            ["qform_code 9 not valid", "sform_code 12 not valid"],
        ),
        ({"pixdim": [0.0, 0.75, 0.75, 2.5, 1, 1, 1, 1]}, []),  # nibabel fixes these quietly
        ({"bitpix": 8}, []),
    ],
    ids=["xform-codes", "qfac", "bitpix"],
)
def test_header_problems_nibabel_fixes_are_one_named_line_each(
    tmp_path, ct, caplog, capfd, fields, expected
):
    """nibabel's header fixes are said once per problem, named, never printed raw on writing."""
    hdr = make_header(ct.shape, np.int16)
    for key, value in fields.items():
        hdr[key] = value
    path = write(tmp_path / "fixme.nii", nifti_bytes(ct, hdr=hdr))
    with caplog.at_level(logging.WARNING, logger="liverseg.data.nifti"):
        vol = nifti.load_ct(path)
        out = nifti.save_labels(tmp_path / "seg.nii", np.zeros(ct.shape, np.uint8), vol)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == len(expected), lines
    for line, text in zip(lines, expected):
        assert line.startswith(f"{path}: ") and text in line
    assert capfd.readouterr().err == ""
    np.testing.assert_allclose(nib.load(out).affine, vol.affine, atol=1e-5)
    np.testing.assert_array_equal(vol.data, ct)


def test_plain_file_named_gz_is_read_with_warning(tmp_path, ct, caplog):
    path = write(tmp_path / "liar.nii.gz", nifti_bytes(ct), compress=False)
    with caplog.at_level(logging.WARNING, logger="liverseg.data.nifti"):
        vol = nifti.load_ct(path)
    np.testing.assert_array_equal(vol.data, ct)
    assert str(path) in caplog.text and "not gzip-compressed" in caplog.text


def test_gzip_file_named_nii_is_read_with_warning(tmp_path, ct, caplog):
    path = write(tmp_path / "liar.nii", nifti_bytes(ct), compress=True)
    with caplog.at_level(logging.WARNING, logger="liverseg.data.nifti"):
        vol = nifti.load_ct(path)
    np.testing.assert_array_equal(vol.data, ct)
    assert str(path) in caplog.text and "gzip-compressed" in caplog.text


def test_read_header_reads_no_data(tmp_path, ct):
    path = write(tmp_path / "v.nii.gz", nifti_bytes(ct))
    info = nifti.read_header(path)
    assert info.data.size == 0 and info.spacing == (0.75, 0.75, 2.5)


# ----------------------------------------------------------------------------
# Labels


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.float32, np.float64])
def test_load_labels_accepts_integral_values(tmp_path, labels, dtype):
    path = write(tmp_path / "s.nii.gz", nifti_bytes(labels.astype(dtype)))
    lab = nifti.load_labels(path)
    assert lab.data.dtype == np.uint8
    np.testing.assert_array_equal(lab.data, labels)


def test_labels_outside_range_are_listed(tmp_path, labels):
    bad = labels.astype(np.int16)
    bad[0, 0, 0], bad[1, 0, 0], bad[2, 0, 0] = 3, 7, -1
    path = write(tmp_path / "s.nii", nifti_bytes(bad))
    expect_error(path, r"outside \{0, 1, 2\}: -1, 3, 7", nifti.load_labels)
    bad8 = labels.copy()
    bad8[0, 0, 0] = 255
    path = write(tmp_path / "s8.nii.gz", nifti_bytes(bad8))
    expect_error(path, r"outside \{0, 1, 2\}: 255", nifti.load_labels)


def test_fractional_or_nan_labels_are_refused(tmp_path, labels):
    frac = labels.astype(np.float32)
    frac[0, 0, 0] = 0.5
    expect_error(
        write(tmp_path / "f.nii", nifti_bytes(frac)), "not integers: 0.5", nifti.load_labels
    )
    nan = labels.astype(np.float32)
    nan[0, 0, 0] = np.nan
    expect_error(write(tmp_path / "n.nii", nifti_bytes(nan)), "non-finite", nifti.load_labels)


def test_non_finite_ct_voxels_are_refused(tmp_path, ct):
    data = ct.astype(np.float32)
    data[3, 2, 1] = np.inf
    data[0, 0, 0] = np.nan
    expect_error(write(tmp_path / "v.nii.gz", nifti_bytes(data)), "2 non-finite")
    huge = ct.astype(np.float64)
    huge[0, 0, 0] = 1e300  # overflows float32
    expect_error(write(tmp_path / "h.nii", nifti_bytes(huge)), "non-finite")


# ----------------------------------------------------------------------------
# load_case


def test_load_case_reads_both(tmp_path, ct, labels):
    v = write(tmp_path / "volume-0.nii.gz", nifti_bytes(ct))
    s = write(tmp_path / "segmentation-0.nii.gz", nifti_bytes(labels))
    vol, lab = nifti.load_case(v, s)
    np.testing.assert_array_equal(vol.data, ct)
    np.testing.assert_array_equal(lab.data, labels)


def test_load_case_shape_mismatch_names_both_files(tmp_path, ct, labels):
    v = write(tmp_path / "volume-0.nii", nifti_bytes(ct))
    s = write(tmp_path / "segmentation-0.nii", nifti_bytes(labels[:, :, :5]))
    err = expect_error(s, "shape", lambda p: nifti.load_case(v, p))
    assert str(v) in str(err)


def test_load_case_affine_mismatch_names_both_files(tmp_path, ct, labels):
    shifted = AFFINE.copy()
    shifted[0, 3] += 1.0
    v = write(tmp_path / "volume-0.nii", nifti_bytes(ct))
    s = write(
        tmp_path / "segmentation-0.nii",
        nifti_bytes(labels, hdr=make_header(labels.shape, np.uint8, affine=shifted)),
    )
    err = expect_error(s, "affine differs", lambda p: nifti.load_case(v, p))
    assert str(v) in str(err)


# ----------------------------------------------------------------------------
# Files that are not valid volumes


def test_not_3d_is_refused(tmp_path):
    path = write(tmp_path / "4d.nii.gz", nifti_bytes(np.zeros((4, 3, 2, 2), np.int16)))
    expect_error(path, "4D")
    path = write(tmp_path / "2d.nii", nifti_bytes(np.zeros((4, 3), np.int16)))
    expect_error(path, "2D")


def test_corrupt_dim_is_refused(tmp_path):
    hdr = make_header((4, 3, 2), np.int16)
    hdr["dim"][0] = 9
    expect_error(
        write(tmp_path / "d.nii", nifti_bytes(np.zeros((4, 3, 2), np.int16), hdr=hdr)), "dim"
    )


@pytest.mark.parametrize(
    "pixdim, match",
    [
        ((0.75, 0.0, 2.5), "zero or negative"),
        ((0.75, 0.75, -2.5), "zero or negative"),
        ((np.nan, 0.75, 2.5), "not finite"),
    ],
)
def test_bad_voxel_size_is_refused(tmp_path, ct, pixdim, match):
    hdr = make_header(ct.shape, np.int16, codes=(0, 0))
    hdr["pixdim"][1:4] = pixdim
    expect_error(write(tmp_path / "p.nii.gz", nifti_bytes(ct, hdr=hdr)), match)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.nii.gz"
    path.write_bytes(b"")
    expect_error(path, "empty")


def test_directory_named_nii(tmp_path):
    path = tmp_path / "dir.nii"
    path.mkdir()
    expect_error(path, "directory")


def test_dangling_symlink(tmp_path):
    path = tmp_path / "link.nii.gz"
    os.symlink(tmp_path / "missing.nii.gz", path)
    expect_error(path, "dangling symbolic link")


def test_missing_file_and_wrong_suffix(tmp_path, ct):
    expect_error(tmp_path / "nothere.nii", "not found")
    path = write(tmp_path / "v.img", nifti_bytes(ct), compress=False)
    expect_error(path, r"\.nii or \.nii\.gz")


def test_not_a_nifti_file(tmp_path):
    path = tmp_path / "junk.nii"
    path.write_bytes(b"this is not a NIfTI file at all, just some text " * 20)
    expect_error(path, "not a NIfTI file")
    hdr = make_header((4, 3, 2), np.int16)
    hdr["magic"] = b"ni1"
    expect_error(
        write(tmp_path / "pair.nii", nifti_bytes(np.zeros((4, 3, 2), np.int16), hdr=hdr)),
        "hdr/.img pair",
    )


@pytest.mark.parametrize("header, magic", [(nib.Nifti1Header, b"n+2"), (nib.Nifti2Header, b"n+1")])
def test_magic_of_the_other_nifti_version_is_refused(tmp_path, ct, header, magic):
    """A 348-byte header saying n+2 (or 540 saying n+1): nibabel cannot open it, nor do we."""
    image = (nib.Nifti1Image if header is nib.Nifti1Header else nib.Nifti2Image)(ct, AFFINE)
    path = tmp_path / "forged.nii"
    nib.save(image, path)
    raw = bytearray(path.read_bytes())
    offset = 344 if header is nib.Nifti1Header else 4
    raw[offset : offset + 3] = magic
    path.write_bytes(bytes(raw))
    with pytest.raises(Exception, match="Cannot work out file type|magic string"):
        nib.load(path)
    expect_error(path, r"not a NIfTI file \(bad magic")


def test_an_invalid_xform_code_is_read_as_nibabel_reads_it(tmp_path, ct):
    """Found by the fuzzer: nibabel's loader sets an invalid sform_code to 0 and takes the
    qform. The reader reads that affine too, and refuses by name a qform nibabel then cannot
    compute (|quatern_b, c, d| > 1); it accepted it before and the writer failed unnamed."""
    shifted = AFFINE.copy()
    shifted[0, 3] += 100.0
    hdr = make_header(ct.shape, np.int16)
    hdr.set_sform(shifted, code=1)
    hdr["sform_code"] = 9
    path = write(tmp_path / "code9.nii", nifti_bytes(ct, hdr=hdr))
    volume = nifti.load_ct(path)
    with nib.imageglobals.LoggingOutputSuppressor():
        np.testing.assert_allclose(volume.affine, nib.load(path).affine)
    np.testing.assert_allclose(volume.affine, AFFINE, atol=1e-5)
    hdr["quatern_b"] = 2.0
    path = write(tmp_path / "code9-bad-qform.nii", nifti_bytes(ct, hdr=hdr))
    expect_error(path, r"corrupt orientation \(qform/sform\): w2 should be positive")


@pytest.mark.parametrize("eol, accepted", [((0, 10, 26, 10), False), ((0, 0, 0, 0), True)])
def test_nifti2_eol_check_bytes_are_checked_as_nibabel_checks_them(tmp_path, ct, eol, accepted):
    """Found by the property tests: nibabel refuses a NIfTI-2 file whose EOL check bytes are
    damaged (a text-mode transfer alters the data too); the reader accepted it."""
    path = tmp_path / "n2.nii"
    nib.save(nib.Nifti2Image(ct, AFFINE), path)
    raw = bytearray(path.read_bytes())
    raw[8:12] = bytes(eol)
    path.write_bytes(bytes(raw))
    if accepted:
        np.testing.assert_array_equal(nifti.load_ct(path).data, ct)
        nib.load(path)
    else:
        with pytest.raises(nib.spatialimages.HeaderDataError):
            nib.load(path)
        expect_error(path, r"corrupt NIfTI-2 header: EOL check bytes \(0, 10, 26, 10\)")


def test_a_written_file_that_would_not_reopen_is_never_renamed_into_place(tmp_path, ct):
    volume = nifti.load_ct(write(tmp_path / "v.nii", nifti_bytes(ct)))
    forged = volume.header.copy()
    forged["magic"] = b"n+2"  # what a header copied from a hostile input could carry
    bad = dataclasses.replace(volume, header=forged)
    with pytest.raises(OutputError, match="would not reopen"):
        nifti.save_labels(tmp_path / "segmentation-0.nii", np.zeros(ct.shape, np.uint8), bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.nii"]


def test_unsupported_data_type(tmp_path):
    data = np.zeros((4, 3, 2), np.complex64)
    expect_error(write(tmp_path / "c.nii", nifti_bytes(data)), "unsupported data type")


def test_truncated_inside_header(tmp_path, ct):
    path = write(tmp_path / "h.nii", nifti_bytes(ct)[:200], compress=False)
    expect_error(path, "truncated")


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_data(tmp_path, ct, suffix):
    payload = nifti_bytes(ct)
    path = write(tmp_path / f"t{suffix}", payload[:-100])
    expect_error(path, "truncated")


def test_truncated_gzip_stream(tmp_path, ct):
    blob = gzip.compress(nifti_bytes(ct), mtime=0)
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(blob[:-20])
    expect_error(path, "truncated")
    path.write_bytes(blob[: len(blob) // 2])
    expect_error(path, "truncated")


def test_flipped_byte_in_deflate_stream(tmp_path, rng):
    data = rng.integers(-1000, 1000, size=(40, 30, 6)).astype(np.int16)
    blob = bytearray(gzip.compress(nifti_bytes(data), mtime=0))
    # Flip bytes at several places in the deflate body (10-byte header, 8-byte trailer);
    # each either breaks the stream or changes the data and so the CRC.
    for pos in (len(blob) // 2, len(blob) * 3 // 4, len(blob) - 30):
        corrupt = bytearray(blob)
        corrupt[pos] ^= 0x5A
        path = tmp_path / f"flip{pos}.nii.gz"
        path.write_bytes(bytes(corrupt))
        expect_error(path, "corrupt|truncated")


@pytest.mark.parametrize("offset_from_end, what", [(8, "CRC"), (3, "length")])
def test_flipped_byte_in_gzip_trailer(tmp_path, ct, offset_from_end, what):
    blob = bytearray(gzip.compress(nifti_bytes(ct), mtime=0))
    blob[-offset_from_end] ^= 0x01
    path = tmp_path / f"trailer_{what}.nii.gz"
    path.write_bytes(bytes(blob))
    expect_error(path, "corrupt")
    expect_error(path, "corrupt", nifti.load_labels)


def test_declared_size_over_cap_is_refused_before_decompression(tmp_path):
    # A gzip "bomb": the header promises 2048 x 2048 x 1024 int16 (8 GiB); the
    # stream holds only a little of it. Refused from the header, at once.
    hdr = make_header((2048, 2048, 1024), np.int16)
    payload = hdr.binaryblock + b"\x00" * 4 + b"\x00" * 1_000_000
    path = write(tmp_path / "bomb.nii.gz", payload)
    start = time.perf_counter()
    err = expect_error(path, "over the limit")
    assert time.perf_counter() - start < 0.5
    assert "max_voxels" in str(err) and str(2048 * 2048 * 1024) in str(err)


def test_cap_is_configurable(tmp_path, ct):
    path = write(tmp_path / "v.nii.gz", nifti_bytes(ct))
    expect_error(path, "over the limit of 100", max_voxels=100)
    expect_error(path, "over the limit", nifti.load_labels, max_voxels=100)
    assert nifti.load_ct(path, max_voxels=ct.size).data.shape == ct.shape


def test_data_beyond_the_declared_size_is_refused(tmp_path, ct):
    # A small header followed by a large, highly compressible tail.
    payload = nifti_bytes(ct) + b"\x00" * (40 * 2**20)
    path = write(tmp_path / "tail.nii.gz", payload)
    expect_error(path, "more data after the image")


def test_huge_vox_offset_is_refused(tmp_path, ct):
    hdr = make_header(ct.shape, np.int16, vox_offset=2.0**40)
    expect_error(write(tmp_path / "off.nii.gz", nifti_bytes(ct, hdr=hdr)), "vox_offset")


# ----------------------------------------------------------------------------
# Writing


def test_save_labels_round_trip_keeps_affine_and_header(tmp_path, ct, labels):
    hdr = make_header(ct.shape, np.int16, codes=(1, 2), scl_slope=1.0, scl_inter=-1024.0)
    hdr["descrip"] = b"source scan"
    src = write(tmp_path / "volume-3.nii.gz", nifti_bytes(ct, hdr=hdr))
    ref = nifti.load_ct(src)
    out = nifti.save_labels(tmp_path / "out" / "segmentation-3.nii.gz", labels, ref)
    back = nifti.load_labels(out)
    np.testing.assert_array_equal(back.data, labels)
    np.testing.assert_array_equal(back.affine, ref.affine)
    assert back.spacing == ref.spacing
    for key in (
        "qform_code",
        "sform_code",
        "xyzt_units",
        "descrip",
        "quatern_b",
        "quatern_c",
        "quatern_d",
        "qoffset_x",
        "qoffset_y",
        "qoffset_z",
        "srow_x",
        "srow_y",
        "srow_z",
        "pixdim",
    ):
        np.testing.assert_array_equal(back.header[key], ref.header[key], err_msg=key)
    assert back.header.get_data_dtype() == np.uint8
    assert (float(back.header["scl_slope"]), float(back.header["scl_inter"])) == (1.0, 0.0)
    # nibabel agrees.
    img = nib.load(out)
    np.testing.assert_array_equal(np.asarray(img.dataobj), labels)
    np.testing.assert_allclose(img.affine, ref.affine)


def test_save_labels_refuses_existing_without_overwrite(tmp_path, ct, labels):
    ref = nifti.load_ct(write(tmp_path / "v.nii", nifti_bytes(ct)))
    out = nifti.save_labels(tmp_path / "s.nii", labels, ref)
    with pytest.raises(OutputError, match="exists"):
        nifti.save_labels(out, np.zeros_like(labels), ref)
    np.testing.assert_array_equal(nifti.load_labels(out).data, labels)
    nifti.save_labels(out, np.zeros_like(labels), ref, overwrite=True)
    assert not nifti.load_labels(out).data.any()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.nii", "v.nii"]  # no temp files


def test_save_labels_is_deterministic_and_checks_input(tmp_path, ct, labels):
    ref = nifti.load_ct(write(tmp_path / "v.nii.gz", nifti_bytes(ct)))
    a = nifti.save_labels(tmp_path / "a.nii.gz", labels.astype(np.int64), ref)
    b = nifti.save_labels(tmp_path / "b.nii.gz", labels, ref)
    assert a.read_bytes() == b.read_bytes()
    with pytest.raises(ValueError, match="0, 1 and 2"):
        nifti.save_labels(tmp_path / "c.nii.gz", labels + 1, ref)
    with pytest.raises(ValueError, match="shape"):
        nifti.save_labels(tmp_path / "d.nii.gz", labels[:, :, :2], ref)
    with pytest.raises(OutputError, match=r"\.nii or \.nii\.gz"):
        nifti.save_labels(tmp_path / "e.png", labels, ref)
    assert not (tmp_path / "c.nii.gz").exists() and not (tmp_path / "d.nii.gz").exists()


def test_save_probabilities_and_save_ct_round_trip(tmp_path, ct, rng):
    path = nifti.save_ct(tmp_path / "v.nii.gz", ct, AFFINE)
    ref = nifti.load_ct(path, dtype=None)
    np.testing.assert_array_equal(ref.data, ct)
    np.testing.assert_allclose(ref.affine, AFFINE)
    prob = rng.random(ct.shape).astype(np.float32)
    out = nifti.save_probabilities(tmp_path / "p.nii", prob, ref)
    np.testing.assert_array_equal(nifti.load_ct(out).data, prob)
    with pytest.raises(ValueError, match="finite"):
        nifti.save_probabilities(tmp_path / "q.nii", prob * np.nan, ref)


def test_a_given_header_nibabel_would_fix_is_named_by_the_output(tmp_path, ct, caplog, capfd):
    hdr = make_header(ct.shape, np.int16)
    hdr["qform_code"] = 9
    with caplog.at_level(logging.WARNING, logger="liverseg.data.nifti"):
        out = nifti.save_ct(tmp_path / "ct.nii", ct, AFFINE, header=hdr)
    assert [r.getMessage() for r in caplog.records] == [
        f"{out}: qform_code 9 not valid; setting to 0"
    ]
    assert capfd.readouterr().err == ""
    np.testing.assert_allclose(nib.load(out).affine, AFFINE, atol=1e-5)
