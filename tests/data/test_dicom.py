"""DICOM CT series in and DICOM SEG out, on series the tests write from arrays."""

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from liverseg.data import nifti
from liverseg.data.dicom import DicomError, is_series_folder, load_series
from liverseg.data.dicom_seg import read_seg_labels, write_seg
from tests.dicom_files import write_series

SHAPE = (40, 32, 7)
#: flipped in-plane axes, anisotropic voxels, an offset origin
AFFINE = np.array([[-0.75, 0, 0, 120.5], [0, -0.82, 0, 90.25], [0, 0, 2.5, -310.0], [0, 0, 0, 1.0]])


@pytest.fixture(scope="module")
def hu():
    rng = np.random.default_rng(3)
    data = rng.integers(-1024, 1500, SHAPE).astype(np.int16)
    data[10:30, 8:24, 1:6] = 120
    return data


def _check_same_volume(volume, hu, affine=AFFINE):
    """The same scan; slices come sorted along the slice normal (row x column direction)."""
    if np.allclose(volume.affine[:3, 2], -affine[:3, 2], atol=1e-6):
        flip = np.eye(4)
        flip[2, 2], flip[2, 3] = -1, hu.shape[2] - 1
        hu, affine = hu[:, :, ::-1], affine @ flip
    np.testing.assert_array_equal(volume.data, hu)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-6)
    np.testing.assert_allclose(volume.spacing, np.linalg.norm(affine[:3, :3], axis=0), rtol=1e-6)


def test_series_reads_as_its_nifti_twin(tmp_path, hu):
    write_series(tmp_path / "s", hu, AFFINE)  # files named in reverse slice order
    series = load_series(tmp_path / "s")
    _check_same_volume(series.volume, hu)
    assert series.volume.data.dtype == np.int16
    assert len(series.datasets) == SHAPE[2]
    assert is_series_folder(tmp_path / "s") and not is_series_folder(tmp_path)
    # the NIfTI written from it keeps that geometry
    path = nifti.save_ct(tmp_path / "twin.nii.gz", series.volume.data, series.volume.affine)
    np.testing.assert_allclose(nifti.load_ct(path).affine, AFFINE, atol=1e-6)


@pytest.mark.parametrize(
    "axes",
    [(0, 1, 2), (1, 0, 2), (2, 0, 1)],
    ids=["axial", "axial-transposed", "sagittal-slices"],
)
def test_any_slice_orientation_and_a_rescale(tmp_path, hu, axes):
    data = np.transpose(hu, axes)
    affine = AFFINE[:, list(axes) + [3]]
    write_series(
        tmp_path / "s", data, affine, slope=0.5, intercept=-1024, order=range(data.shape[2])
    )
    volume = load_series(tmp_path / "s").volume
    _check_same_volume(volume, data, affine)


@pytest.mark.parametrize(
    "syntax", [RLELossless, JPEG2000Lossless, JPEGLSLossless], ids=["rle", "jpeg2000", "jpeg-ls"]
)
def test_compressed_series_decode_to_the_same_volume(tmp_path, hu, syntax):
    write_series(tmp_path / "s", hu, AFFINE, transfer_syntax=syntax)
    assert pydicom.dcmread(next((tmp_path / "s").iterdir())).file_meta.TransferSyntaxUID == syntax
    _check_same_volume(load_series(tmp_path / "s").volume, hu)


def test_broken_series_are_refused_with_one_line(tmp_path, hu):
    cases = {
        "incomplete": (dict(skip_slices=(3,)), "non-uniform slice spacing"),
        "tilted": (dict(tilt_mm=1.0), "gantry tilt"),
        "mr": (dict(modality="MR"), "modality 'MR', not CT"),
    }
    for name, (kw, message) in cases.items():
        write_series(tmp_path / name, hu, AFFINE, **kw)
        with pytest.raises(DicomError, match=message) as err:
            load_series(tmp_path / name)
        assert "\n" not in str(err.value)
    mixed = tmp_path / "mixed"
    write_series(mixed / "a", hu, AFFINE, series_uid="1.2.3.4")
    write_series(mixed / "b", hu, AFFINE, series_uid="1.2.3.5")
    for p in (mixed / "b").iterdir():
        p.rename(mixed / "a" / f"b{p.name}")
    with pytest.raises(DicomError, match="mixed series"):
        load_series(mixed / "a")
    dup = tmp_path / "dup"
    paths = write_series(dup, hu, AFFINE, series_uid="1.2.3.6")
    (dup / "copy.dcm").write_bytes(paths[0].read_bytes())
    with pytest.raises(DicomError, match="share one position"):
        load_series(dup)


def test_an_undecodable_transfer_syntax_names_it(tmp_path, hu):
    paths = write_series(tmp_path / "s", hu, AFFINE)
    ds = pydicom.dcmread(paths[0])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder
    ds.PixelData = encapsulate([b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    ds.save_as(paths[0], enforce_file_format=True)
    with pytest.raises(DicomError, match="transfer syntax .*cannot be decoded") as err:
        load_series(tmp_path / "s")
    assert str(paths[0]) in str(err.value)


def test_dicom_seg_loads_back_into_the_same_masks(tmp_path, hu):
    write_series(tmp_path / "s", hu, AFFINE)
    series = load_series(tmp_path / "s")
    labels = np.zeros(SHAPE, np.uint8)
    labels[10:30, 8:24, 1:6] = 1
    labels[14:20, 10:15, 2:4] = 2
    path = write_seg(tmp_path / "seg.dcm", labels, series)
    ds = pydicom.dcmread(path)
    assert ds.Modality == "SEG" and len(ds.SegmentSequence) == 2
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["Liver", "Liver tumour"]
    referenced = {
        r.ReferencedSOPInstanceUID
        for item in ds.ReferencedSeriesSequence
        for r in item.ReferencedInstanceSequence
    }
    assert referenced == {d.SOPInstanceUID for d in series.datasets}
    np.testing.assert_array_equal(read_seg_labels(path, series), labels)
    with pytest.raises(Exception, match="exists"):
        write_seg(tmp_path / "seg.dcm", labels, series)
