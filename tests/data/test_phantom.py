"""Synthetic abdominal CT phantoms (liverseg.data.phantom)."""

import numpy as np
import pytest
from scipy import ndimage

from liverseg.data import lits, nifti, phantom
from liverseg.data.phantom import Tissue
from liverseg.errors import ConfigError, OutputError

SHAPE = (64, 64, 16)


@pytest.fixture(scope="module")
def phantoms():
    """Four phantoms with their tissue maps (seed 0), made once."""
    return [phantom.make_phantom(SHAPE, seed=0, index=i, with_tissue=True) for i in range(4)]


def interior(mask):
    """Voxels of ``mask`` away from its in-plane edges (no partial volume)."""
    return ndimage.binary_erosion(mask, structure=np.ones((3, 3, 1), bool))


def hu_range(ph, tissue):
    m = interior(ph.tissue == tissue)
    return np.percentile(ph.hu[m], [10, 50, 90]) if m.sum() >= 10 else None


def test_same_seed_same_arrays_other_seed_differs():
    a = phantom.make_phantom((40, 40, 8), seed=5, index=2)
    b = phantom.make_phantom((40, 40, 8), seed=5, index=2)
    c = phantom.make_phantom((40, 40, 8), seed=6, index=2)
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.affine, b.affine)
    assert not np.array_equal(a.hu, c.hu)


def test_types_values_and_geometry(phantoms):
    for ph in phantoms:
        assert ph.hu.dtype == np.int16 and ph.hu.shape == SHAPE
        assert ph.labels.dtype == np.uint8 and ph.labels.shape == SHAPE
        assert set(np.unique(ph.labels)) <= {0, 1, 2}
        assert -1024 <= ph.hu.min() and ph.hu.max() <= 3071
        # LiTS-like orientation: x and y flipped, z up; square in-plane pixels.
        s, _, dz = ph.spacing
        np.testing.assert_allclose(np.diag(ph.affine)[:3], [-s, -s, dz], rtol=1e-6)
        assert np.count_nonzero(ph.affine[:3, :3] - np.diag(np.diag(ph.affine)[:3])) == 0
        assert 0.6 <= s * SHAPE[0] / 512 <= 0.9 + 1e-6
        assert 1.0 <= dz <= 5.0


def test_anatomy_layout(phantoms):
    for ph in phantoms:
        liver = ph.labels > 0
        per_slice = liver.sum(axis=(0, 1))
        # A slab of slices: liver-free slices at both ends, hundreds of pixels in the middle.
        assert per_slice[0] == 0 and per_slice[-1] == 0
        assert 0.5 <= np.mean(per_slice > 0) <= 0.85
        assert per_slice.max() >= 250
        # Liver on the patient's right = low x index (image left in radiological view).
        assert np.argwhere(liver)[:, 0].mean() < SHAPE[0] / 2
        assert np.mean(ph.hu[interior(ph.tissue == Tissue.AIR)] < -900) > 0.99
        for tissue in (Tissue.FAT, Tissue.MUSCLE, Tissue.CORTICAL_BONE, Tissue.KIDNEY,
                       Tissue.AORTA, Tissue.SPLEEN, Tissue.LIVER):
            assert (ph.tissue == tissue).any(), tissue.name
        # Labels follow the tissue map exactly.
        np.testing.assert_array_equal(ph.labels == 2, ph.tissue == Tissue.TUMOUR)
        np.testing.assert_array_equal(
            ph.labels == 1, np.isin(ph.tissue, [Tissue.LIVER, Tissue.LIVER_VESSEL]))


def test_tumours_are_inside_the_liver(phantoms):
    fractions = []
    for ph in phantoms:
        if ph.num_tumours:
            assert (ph.labels == 2).sum() > 0
        for k in range(SHAPE[2]):
            comps, n = ndimage.label(ph.labels[:, :, k] == 2)
            for c in range(1, n + 1):
                m = comps == c
                ring = ndimage.binary_dilation(m) & ~m
                fractions.append(np.mean(ph.labels[:, :, k][ring] > 0))
    assert fractions, "no tumour in the test phantoms"
    assert min(fractions) >= 0.5  # each tumour section is mostly surrounded by liver
    assert np.mean(fractions) >= 0.9
    # Tumour slices lie within the liver's slab.
    for ph in phantoms:
        tumour_slices = np.flatnonzero((ph.labels == 2).any(axis=(0, 1)))
        liver_slices = np.flatnonzero((ph.labels == 1).any(axis=(0, 1)))
        assert set(tumour_slices) <= set(liver_slices)


def test_intensities_overlap_as_designed(phantoms):
    """Liver and tumour cannot be told from other tissue by HU alone."""
    for ph in phantoms:
        liver = hu_range(ph, Tissue.LIVER)
        fat, air = hu_range(ph, Tissue.FAT), hu_range(ph, Tissue.AIR)
        assert 90 <= liver[1] <= 120
        assert -125 <= fat[1] <= -75 and air[1] <= -960
        bone = ph.hu[interior(ph.tissue == Tissue.CANCELLOUS_BONE)]
        assert bone.size == 0 or np.median(bone) >= 200
        # Spleen and vena cava share the enhanced liver's range.
        for other in (Tissue.SPLEEN, Tissue.IVC):
            r = hu_range(ph, other)
            if r is not None:
                assert abs(r[1] - liver[1]) < 25, other.name
                assert r[0] < liver[1] < r[2], other.name
        # Tumours are clearly hypodense but overlap fluid elsewhere.
        tumour_mean = ph.tissue_hu[Tissue.TUMOUR]
        assert 25 <= tumour_mean <= 38
        assert ph.tissue_hu[Tissue.LIVER] - tumour_mean >= 35
        fluids = [ph.tissue_hu[t] for t in (Tissue.STOMACH_CONTENT, Tissue.BOWEL_CONTENT,
                                            Tissue.GALLBLADDER, Tissue.CSF)]
        assert min(abs(f - tumour_mean) for f in fluids) < 15
    # In the images: the tumour's HU range meets that of bowel or stomach fluid.
    overlaps = 0
    for ph in phantoms:
        tumour = hu_range(ph, Tissue.TUMOUR)
        for fluid in (Tissue.STOMACH_CONTENT, Tissue.BOWEL_CONTENT):
            r = hu_range(ph, fluid)
            if tumour is not None and r is not None and r[0] < tumour[1] < r[2]:
                overlaps += 1
    assert overlaps >= 1


def test_noise_level(phantoms):
    for ph in phantoms:
        m = ndimage.binary_erosion(ph.tissue == Tissue.FAT, structure=np.ones((5, 5, 1), bool))
        sd = ph.hu[m].std()
        assert 8 <= sd <= 24


def test_variation_between_phantoms(phantoms):
    counts = {ph.num_tumours for ph in phantoms}
    counts |= {phantom.make_phantom((32, 32, 8), 0, i).num_tumours for i in range(4, 10)}
    assert len(counts) >= 2 and counts <= set(range(5))
    liver_sizes = [(ph.labels > 0).sum() for ph in phantoms]
    assert len(set(liver_sizes)) == len(liver_sizes)
    assert len({ph.spacing for ph in phantoms}) == len(phantoms)


@pytest.mark.parametrize("shape", [(32, 32, 8), (48, 40, 10), (16, 16, 4)])
def test_small_and_non_square_shapes(shape):
    ph = phantom.make_phantom(shape, seed=1)
    assert ph.hu.shape == shape and ph.labels.shape == shape
    assert (ph.labels == 1).any()
    assert not ph.labels[:, :, 0].any() and not ph.labels[:, :, -1].any()


@pytest.mark.parametrize("shape", [(8, 64, 10), (64, 64, 3), (64, 64), ("a", 2, 3)])
def test_bad_shapes_are_refused(shape):
    with pytest.raises(ConfigError):
        phantom.make_phantom(shape)


def test_write_phantoms_files_are_byte_identical_and_valid(tmp_path):
    a = phantom.write_phantoms(tmp_path / "a", 3, (32, 32, 8), seed=7)
    b = phantom.write_phantoms(tmp_path / "b", 1, (32, 32, 8), seed=7, start_index=2)
    assert [p.name for p in a[2]] == ["volume-2.nii.gz", "segmentation-2.nii.gz"]
    assert a[2][0].read_bytes() == b[0][0].read_bytes()
    assert a[2][1].read_bytes() == b[0][1].read_bytes()
    assert a[0][0].read_bytes() != a[1][0].read_bytes()
    cases = lits.discover_cases(tmp_path / "a")
    assert [c.case_id for c in cases] == ["0", "1", "2"]
    vol, lab = nifti.load_case(cases[1].volume, cases[1].segmentation, dtype=None)
    ph = phantom.make_phantom((32, 32, 8), seed=7, index=1)
    assert vol.data.dtype == np.int16
    np.testing.assert_array_equal(vol.data, ph.hu)
    np.testing.assert_array_equal(lab.data, ph.labels)
    np.testing.assert_allclose(vol.affine, ph.affine)
    assert vol.spacing == pytest.approx(ph.spacing)


def test_write_phantoms_refuses_existing_before_writing(tmp_path):
    (tmp_path / "segmentation-1.nii.gz").write_bytes(b"keep")
    with pytest.raises(OutputError, match="segmentation-1.nii.gz"):
        phantom.write_phantoms(tmp_path, 2, (32, 32, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segmentation-1.nii.gz"]
    phantom.write_phantoms(tmp_path, 2, (32, 32, 8), overwrite=True)
    assert nifti.load_labels(tmp_path / "segmentation-1.nii.gz").data.shape == (32, 32, 8)
    with pytest.raises(ConfigError):
        phantom.write_phantoms(tmp_path, 0, (32, 32, 8))
