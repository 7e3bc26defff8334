"""Synthetic abdominal CT phantoms (liverseg.phantoms.training)."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from liverseg.data import lits, nifti
from liverseg.errors import ConfigError, OutputError
from liverseg.phantoms import training as phantom
from liverseg.phantoms.training import Tissue

SHAPE = (64, 64, 16)
REPO = Path(__file__).resolve().parents[2]


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
        assert ph.hu.min() >= -1024 and ph.hu.max() <= 3071
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
        for tissue in (
            Tissue.FAT,
            Tissue.MUSCLE,
            Tissue.CORTICAL_BONE,
            Tissue.KIDNEY,
            Tissue.AORTA,
            Tissue.SPLEEN,
            Tissue.LIVER,
        ):
            assert (ph.tissue == tissue).any(), tissue.name
        # Labels follow the tissue map exactly.
        np.testing.assert_array_equal(ph.labels == 2, ph.tissue == Tissue.TUMOUR)
        np.testing.assert_array_equal(
            ph.labels == 1, np.isin(ph.tissue, [Tissue.LIVER, Tissue.LIVER_VESSEL])
        )


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
        fluids = [
            ph.tissue_hu[t]
            for t in (Tissue.STOMACH_CONTENT, Tissue.BOWEL_CONTENT, Tissue.GALLBLADDER, Tissue.CSF)
        ]
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


# ----------------------------------------------------------------------------
# Styles: narrow is frozen, wide is the wider training distribution.


def digest(ph):
    h = hashlib.sha256()
    for a in (ph.hu, ph.labels, ph.affine):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr(ph.spacing).encode())
    h.update(repr(ph.num_tumours).encode())
    return h.hexdigest()


def test_narrow_style_is_unchanged():
    """Checksums of the generator's output taken before the wide style was added."""
    ph = phantom.make_phantom((40, 36, 10), seed=3, index=1, with_tissue=True)
    assert digest(ph) == "ecfd01b93bac3c792bb5846bd9ba9a99eaa4acfd463cdfdac320451028b9107b"
    assert hashlib.sha256(ph.tissue.tobytes()).hexdigest() == (
        "93e7e6109d4c51027d987f8375203ef5da5435fd2aacbcee25d19a0cea8ee304"
    )
    assert digest(phantom.make_phantom((40, 36, 10), 3, 1, style="narrow")) == digest(ph)
    assert ph.style == "narrow" and ph.phase == "portal venous"
    assert ph.storage == ("L", "P", "S") and ph.tumour_kinds == ("hypodense",) * ph.num_tumours


WIDE_SHAPE = (40, 36, 10)
WIDE_DRAWS = [(s, i) for s in range(4) for i in range(12)]


@pytest.fixture(scope="module")
def wide():
    """48 wide phantoms with their tissue maps, made once."""
    return [
        phantom.make_phantom(WIDE_SHAPE, s, i, with_tissue=True, style="wide")
        for s, i in WIDE_DRAWS
    ]


def test_wide_types_values_and_labels(wide):
    for ph in wide:
        assert ph.style == "wide"
        assert ph.hu.dtype == np.int16 and ph.hu.shape == WIDE_SHAPE
        assert ph.labels.dtype == np.uint8 and ph.labels.shape == WIDE_SHAPE
        assert ph.tissue.shape == WIDE_SHAPE
        assert set(np.unique(ph.labels)) <= {0, 1, 2}
        assert ph.hu.min() >= -1024 and ph.hu.max() <= 3071
        np.testing.assert_array_equal(ph.labels == 1, np.isin(ph.tissue, phantom.LIVER_TISSUES))
        np.testing.assert_array_equal(ph.labels == 2, np.isin(ph.tissue, phantom.TUMOUR_TISSUES))
        assert (ph.labels == 1).any()


def test_wide_tumours_only_inside_the_liver(monkeypatch):
    """Without its tumours a phantom's liver is exactly the liver plus the tumours."""
    draws = [
        (s, i)
        for s, i in WIDE_DRAWS[:24]
        if phantom.make_phantom(WIDE_SHAPE, s, i, style="wide").labels.max() == 2
    ][:6]
    assert len(draws) >= 4
    with_tumours = [phantom.make_phantom(WIDE_SHAPE, s, i, style="wide") for s, i in draws]
    monkeypatch.setattr(
        "liverseg.phantoms.training.generate._place_wide_tumours",
        lambda rng, an, coarse: None,
    )
    for ph, (s, i) in zip(with_tumours, draws):
        bare = phantom.make_phantom(WIDE_SHAPE, s, i, style="wide")
        assert bare.num_tumours == 0 and not (bare.labels == 2).any()
        np.testing.assert_array_equal(ph.labels > 0, bare.labels == 1)


def liver_hu(ph):
    m = ndimage.binary_erosion(ph.tissue == Tissue.LIVER, structure=np.ones((5, 5, 1), bool))
    return float(np.median(ph.hu[m])) if m.sum() >= 60 else None


PHASE_LIVER = {
    "non-contrast": (45, 65),
    "arterial": (60, 80),
    "portal venous": (95, 115),
    "delayed": (80, 100),
}


def test_wide_contrast_phases(wide):
    assert {ph.phase for ph in wide} == set(phantom.PHASES)
    measured = 0
    for ph in wide:
        hu = ph.tissue_hu
        lo, hi = PHASE_LIVER[ph.phase]
        assert lo <= hu[Tissue.LIVER] <= hi, ph.phase
        if ph.phase == "non-contrast":
            assert hu[Tissue.LIVER_VESSEL] <= hu[Tissue.LIVER]
            assert 40 <= hu[Tissue.SPLEEN] <= 55 and 30 <= hu[Tissue.KIDNEY] <= 40
        elif ph.phase == "arterial":
            assert 250 <= hu[Tissue.AORTA] <= 350 and hu[Tissue.SPLEEN] > hu[Tissue.LIVER]
            assert hu[Tissue.KIDNEY] > hu[Tissue.KIDNEY_MEDULLA] + 50
        elif ph.phase == "delayed":
            assert abs(hu[Tissue.LIVER_VESSEL] - hu[Tissue.LIVER]) <= 15
        m = liver_hu(ph)
        if m is not None:  # the image shows it, up to noise, texture and blur
            assert abs(m - hu[Tissue.LIVER]) <= 6 + 0.3 * ph.noise_sd, ph.phase
            measured += 1
    assert measured >= 10
    # Intensity alone cannot separate the liver: another soft tissue lies within 15 HU.
    for ph in wide:
        others = [
            ph.tissue_hu[t]
            for t in (
                Tissue.SPLEEN,
                Tissue.IVC,
                Tissue.MUSCLE,
                Tissue.PANCREAS,
                Tissue.LIVER_VESSEL,
                Tissue.KIDNEY_MEDULLA,
                Tissue.BOWEL_WALL,
                Tissue.STOMACH_WALL,
            )
        ]
        assert min(abs(o - ph.tissue_hu[Tissue.LIVER]) for o in others) <= 15


def test_wide_tumour_counts_kinds_and_sizes(wide):
    counts = [ph.num_tumours for ph in wide]
    assert 0 in counts and max(counts) >= 8 and max(counts) <= 15
    assert sum(c == 0 for c in counts) >= len(counts) // 8
    kinds = {k for ph in wide for k in ph.tumour_kinds}
    assert kinds == set(phantom.TUMOUR_KINDS)
    sizes = [d for ph in wide for d in ph.tumour_diameters_mm]
    assert min(sizes) >= 2.0 - 1e-9 and max(sizes) <= 40.0 + 1e-9
    assert min(sizes) < 5 and max(sizes) > 20
    # an index lesion of a centimetre or more (unless it had to shrink to fit a small liver)
    largest = [max(ph.tumour_diameters_mm) for ph in wide if ph.tumour_diameters_mm]
    assert sum(d >= 10.0 for d in largest) >= 0.8 * len(largest)
    for ph in wide:
        assert len(ph.tumour_kinds) == len(ph.tumour_diameters_mm) == ph.num_tumours
        hu, liver = ph.tissue_hu, ph.tissue_hu[Tissue.LIVER]
        assert hu[Tissue.TUMOUR] < liver - 9 and hu[Tissue.TUMOUR_HYPER] > liver + 7
        assert 0 <= hu[Tissue.TUMOUR_CYST] <= 15
        assert hu[Tissue.TUMOUR_NECROSIS] < hu[Tissue.TUMOUR_RIM]
    painted = {Tissue(t) for ph in wide for t in np.unique(ph.tissue[ph.labels == 2])}
    assert painted == set(phantom.TUMOUR_TISSUES)


def world_centroid(ph, mask):
    idx = np.argwhere(mask).astype(float)
    return ph.affine[:3, :3] @ idx.mean(axis=0) + ph.affine[:3, 3]


def test_wide_storage_orientations_keep_the_anatomy(wide):
    storages = {ph.storage for ph in wide}
    assert len(storages) >= 8 and {s[2] for s in storages} == {"S", "I"}
    assert {tuple(sorted(s[:2])) for s in storages} >= {("L", "P"), ("A", "R"), ("A", "L")}
    for ph in wide:
        assert tuple(nib.aff2axcodes(ph.affine)) == ph.storage
        cols = ph.affine[:3, :3]
        np.testing.assert_allclose(np.linalg.norm(cols, axis=0), ph.spacing, rtol=1e-6)
        assert np.count_nonzero(np.round(cols, 6)) == 3  # flips and permutations only
        # In the canonical (RAS) orientation the liver is on the patient's right ...
        ornt = nib.orientations.io_orientation(ph.affine)
        liver = nib.orientations.apply_orientation(ph.labels > 0, ornt)
        body = nib.orientations.apply_orientation(~np.isin(ph.tissue, [0, 1]), ornt)
        assert np.argwhere(liver)[:, 0].mean() > np.argwhere(body)[:, 0].mean()
        # ... and in world coordinates too (RAS: +x is the patient's right).
        body_world = world_centroid(ph, ~np.isin(ph.tissue, [0, 1]))
        assert world_centroid(ph, ph.labels > 0)[0] > body_world[0]
        couch = ph.tissue == Tissue.COUCH
        if couch.sum() > 20:  # the couch is behind the patient (RAS: -y is posterior)
            assert world_centroid(ph, couch)[1] < body_world[1]


def fat_noise(ph):
    m = ndimage.binary_erosion(
        ph.tissue == Tissue.FAT, structure=np.ones((3, 3, 1), bool), iterations=2
    )
    return float(ph.hu[m].std()) if m.sum() >= 60 else None


def test_wide_noise_blur_spacing_and_body(wide):
    sds = [ph.noise_sd_reference for ph in wide]
    assert 5 <= min(sds) < 9 and 30 < max(sds) <= 40
    for ph in wide:  # the drawn noise is that of a 0.75 x 0.75 x 2.5 mm voxel
        scale = min(1.0, np.sqrt(0.75 * 0.75 * 2.5 / np.prod(ph.spacing)))
        assert ph.noise_sd == pytest.approx(ph.noise_sd_reference * scale)
    checked = 0
    for ph in wide:
        sd = fat_noise(ph)
        if sd is not None:
            assert 0.7 * ph.noise_sd <= sd <= 1.3 * ph.noise_sd + 3
            checked += 1
    assert checked >= 8
    blurs = [ph.blur_px for ph in wide]
    assert 0.35 <= min(blurs) < 0.6 and 0.8 < max(blurs) <= 1.0
    dz = [ph.spacing[2] for ph in wide]
    assert 0.7 <= min(dz) <= 0.8 and 4.0 <= max(dz) <= 5.0
    assert all(ph.spacing[0] == ph.spacing[1] for ph in wide)
    fov = [ph.spacing[0] * WIDE_SHAPE[0] for ph in wide if not ph.truncated]
    assert 300 <= min(fov) < 350 and 420 < max(fov) <= 500 + 1e-3
    assert {ph.habitus for ph in wide} == set(phantom.HABITUS)
    assert {ph.liver_shape for ph in wide} == set(phantom.LIVER_SHAPES)
    truncated = [ph for ph in wide if ph.truncated]
    assert truncated
    for ph in truncated:  # the body crosses the image's edge
        edges = np.concatenate([ph.tissue[[0, -1]].ravel(), ph.tissue[:, [0, -1]].ravel()])
        assert np.isin(edges, [Tissue.SKIN, Tissue.FAT, Tissue.MUSCLE]).any()


def test_wide_is_deterministic_and_differs_from_narrow(tmp_path):
    a = phantom.make_phantom((32, 32, 8), seed=5, index=2, style="wide")
    b = phantom.make_phantom((32, 32, 8), seed=5, index=2, style="wide")
    assert digest(a) == digest(b)
    assert digest(a) != digest(phantom.make_phantom((32, 32, 8), seed=5, index=2))
    assert digest(a) != digest(phantom.make_phantom((32, 32, 8), seed=5, index=3, style="wide"))
    first = phantom.write_phantoms(tmp_path / "a", 3, (32, 32, 8), seed=5, style="wide")
    again = phantom.write_phantoms(
        tmp_path / "b", 1, (32, 32, 8), seed=5, start_index=2, style="wide"
    )
    for p, q in zip(first[2], again[0]):
        assert p.read_bytes() == q.read_bytes()
    vol, lab = nifti.load_case(*first[2], dtype=None)
    np.testing.assert_array_equal(vol.data, a.hu)
    np.testing.assert_array_equal(lab.data, a.labels)
    np.testing.assert_allclose(vol.affine, a.affine)
    assert tuple(nib.aff2axcodes(vol.affine)) == a.storage


@pytest.mark.parametrize("shape", [(16, 16, 4), (48, 24, 6), (24, 48, 6)])
def test_wide_small_and_non_square_shapes(shape):
    for i in range(3):
        ph = phantom.make_phantom(shape, seed=2, index=i, style="wide")
        assert ph.hu.shape == shape and ph.labels.shape == shape


def test_bad_style_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="style"):
        phantom.make_phantom((32, 32, 8), style="broad")
    with pytest.raises(ConfigError, match="style"):
        phantom.write_phantoms(tmp_path, 1, (32, 32, 8), style="")
    assert not list(tmp_path.iterdir())


def test_tool_writes_wide_phantoms_and_a_preview(tmp_path):
    out, png = tmp_path / "phantoms", tmp_path / "preview.png"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "make_phantom.py"),
            f"--output_dir={out}",
            "--num_volumes=2",
            "--shape=32,32,8",
            "--seed=4",
            "--style=wide",
            f"--preview={png}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    vol = nifti.load_ct(out / "volume-1.nii.gz", dtype=None)
    np.testing.assert_array_equal(
        vol.data, phantom.make_phantom((32, 32, 8), 4, 1, style="wide").hu
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
