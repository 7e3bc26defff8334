"""The external-validation phantom family: determinism, storage, orientation, contrast."""

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from liverseg.data import lits, nifti
from liverseg.errors import ConfigError, OutputError
from liverseg.phantoms import external as ep

TOOL = Path(__file__).resolve().parents[2] / "tools" / "make_external_phantoms.py"
SMALL = dict(size=32, num_slices=6)
IDENTITY = ((0, 1, 2), (False, False, False))


@pytest.fixture(scope="module")
def family():
    """24 small phantoms of one seed, with their drawn storage."""
    return [ep.make_external_phantom(7, i, size=40, num_slices=8) for i in range(24)]


@pytest.fixture(scope="module")
def whole_bodies():
    """Phantoms whose pixel size may grow until the body fits, with 12 cm slabs."""
    return [
        ep.make_external_phantom(
            3, i, size=48, num_slices=24, spacing_range=(0.6, 10.0), thickness_range=(5.0, 5.0)
        )
        for i in range(16)
    ]


def _canonical(array, affine):
    """``array`` reordered to RAS by nibabel, and the RAS affine."""
    image = nib.as_closest_canonical(nib.Nifti1Image(array, affine))
    return np.asarray(image.dataobj), image.affine


def _files(directory):
    return {p.name: p.read_bytes() for p in sorted(Path(directory).iterdir())}


# ----------------------------------------------------------------------------
# Determinism


def test_same_seed_gives_the_same_bytes(tmp_path):
    first = ep.write_external_phantoms(tmp_path / "a", 3, seed=5, **SMALL)
    ep.write_external_phantoms(tmp_path / "b", 3, seed=5, **SMALL)
    ep.write_external_phantoms(tmp_path / "c", 3, seed=6, **SMALL)
    assert len(first) == 3 and all(v.exists() and s.exists() for v, s in first)
    a, b, c = (_files(tmp_path / d) for d in "abc")
    assert a == b
    assert a != c


def test_a_phantom_depends_only_on_seed_index_and_options(tmp_path):
    ep.write_external_phantoms(tmp_path / "all", 3, seed=5, **SMALL)
    ep.write_external_phantoms(tmp_path / "one", 1, seed=5, start_index=2, **SMALL)
    one = _files(tmp_path / "one")
    assert one and all(_files(tmp_path / "all")[name] == data for name, data in one.items())


def test_forcing_the_storage_leaves_the_image_unchanged():
    p = ep.make_external_phantom(4, 1, **SMALL)
    q = ep.make_external_phantom(
        4, 1, orientation=IDENTITY, dtype="float32", suffix=".nii", **SMALL
    )
    assert np.array_equal(_canonical(p.hu, p.affine)[0], q.hu)
    assert np.array_equal(_canonical(p.labels, p.affine)[0], q.labels)


# ----------------------------------------------------------------------------
# Arrays and labels


def test_dtypes_shapes_and_label_values(family):
    for p in family:
        assert p.data.dtype == np.dtype(p.drawn.dtype)
        assert p.labels.dtype == np.uint8 and p.labels.shape == p.data.shape
        assert set(np.unique(p.labels)) <= {0, 1, 2}
        assert p.data.shape == p.drawn.shape and max(p.data.shape) <= 40
        assert sorted(p.data.shape)[0] == 8 or 8 in p.data.shape
        assert np.allclose(nib.affines.voxel_sizes(p.affine), p.spacing, atol=1e-4)
        assert 0 <= p.drawn.num_tumours_labelled <= p.drawn.num_tumours <= 10
        assert len(p.drawn.tumour_kinds) == p.drawn.num_tumours
        assert all(3 <= d <= 35 for d in p.drawn.tumour_diameters_mm)
    assert any((p.labels == 2).any() for p in family)
    assert any(p.drawn.num_tumours == 0 for p in family)


def test_tumours_only_inside_the_liver(family):
    checked = 0
    for i, p in enumerate(family):
        if not (p.labels == 2).any():
            continue
        without = ep.make_external_phantom(7, i, size=40, num_slices=8, max_tumours=0)
        assert not (without.labels == 2).any()
        assert np.array_equal(p.labels > 0, without.labels > 0)
        checked += 1
    assert checked >= 3


def test_hu_values_are_integers_in_the_ct_range(family):
    for p in family:
        hu = p.hu
        assert np.array_equal(hu, np.round(hu))
        floor = p.drawn.padding if p.drawn.fov_circle else ep.HU_MIN
        assert hu.min() >= min(floor, ep.HU_MIN) and hu.max() <= ep.HU_MAX


# ----------------------------------------------------------------------------
# Storage: dtypes, suffixes and reading back with the project's reader


def test_storage_variants_load_back_with_the_project_reader(tmp_path):
    written = ep.write_external_phantoms(tmp_path, 12, seed=2, **SMALL)
    dtypes, suffixes = set(), set()
    for index, (volume_path, seg_path) in enumerate(written):
        p = ep.make_external_phantom(2, index, **SMALL)
        volume, labels = nifti.load_case(volume_path, seg_path)
        assert volume_path.name == f"volume-{index}{p.drawn.suffix}"
        assert volume.header.get_data_dtype() == np.dtype(p.drawn.dtype)
        assert labels.header.get_data_dtype() == np.uint8
        assert np.allclose(volume.affine, p.affine, atol=1e-3)
        assert np.allclose(volume.spacing, p.spacing, atol=1e-5)
        assert np.array_equal(volume.data, p.hu)
        assert np.array_equal(labels.data, p.labels)
        assert volume.data.min() >= -2048 and volume.data.max() <= 3071
        assert ((volume.data > -150) & (volume.data < 400)).any()  # some soft tissue
        assert nib.aff2axcodes(volume.affine) == p.drawn.axcodes
        dtypes.add(p.drawn.dtype)
        suffixes.add(p.drawn.suffix)
    assert dtypes == set(ep.DTYPES)
    assert suffixes == set(ep.SUFFIXES)
    cases = lits.discover_cases(tmp_path)
    assert [c.index for c in cases] == list(range(12))


def test_uint16_storage_uses_the_intercept(tmp_path):
    p = ep.make_external_phantom(1, 0, dtype="uint16", **SMALL)
    assert p.data.dtype == np.uint16 and (p.scl_slope, p.scl_inter) == (1.0, -1024.0)
    path = tmp_path / "volume-0.nii"
    ep.write_phantom(p, path, tmp_path / "segmentation-0.nii")
    header = nifti.read_header(path).header
    assert float(header["scl_slope"]) == 1.0 and float(header["scl_inter"]) == -1024.0
    assert np.array_equal(nifti.load_ct(path).data, p.hu)


# ----------------------------------------------------------------------------
# Orientation


def test_orientations_vary_and_match_the_affine():
    storages = [ep.make_external_phantom(0, i, size=24, num_slices=4).drawn for i in range(40)]
    assert all(
        d.axcodes
        == tuple(nib.aff2axcodes(ep.make_external_phantom(0, i, size=24, num_slices=4).affine))
        for i, d in enumerate(storages[:3])
    )
    assert len({d.axcodes for d in storages}) >= 8
    assert any(d.permutation[2] != 2 for d in storages)
    assert any(d.flips[2] for d in storages) and any(d.permutation[:2] == (1, 0) for d in storages)
    assert {d.xform for d in storages} == {"both", "sform", "qform"}


@pytest.mark.parametrize(
    "orientation",
    [
        ((1, 0, 2), (True, False, True)),
        ((2, 0, 1), (False, True, True)),
        ((0, 2, 1), (True, True, False)),
    ],
)
def test_reorienting_with_nibabel_recovers_the_canonical_volume(orientation):
    reference = ep.make_external_phantom(9, 3, orientation=IDENTITY, **SMALL)
    p = ep.make_external_phantom(9, 3, orientation=orientation, **SMALL)
    assert p.drawn.axcodes != ("R", "A", "S")
    hu, affine = _canonical(p.hu, p.affine)
    assert np.array_equal(hu, reference.hu)
    assert np.array_equal(_canonical(p.labels, p.affine)[0], reference.labels)
    assert np.allclose(affine, reference.affine, atol=1e-3)


def test_liver_is_on_the_patients_right(whole_bodies):
    checked = 0
    for p in whole_bodies:
        if p.drawn.fov_mode != "fit" or (p.labels > 0).sum() < 50:
            continue
        labels, affine = _canonical(p.labels, p.affine)
        hu = _canonical(p.hu, p.affine)[0]
        liver_x = nib.affines.apply_affine(affine, np.argwhere(labels > 0))[:, 0].mean()
        body_x = nib.affines.apply_affine(affine, np.argwhere(hu > -300))[:, 0].mean()
        assert liver_x > body_x + 10, p.drawn  # RAS: +x is the patient's right
        checked += 1
    assert checked >= 10


def test_superior_is_up_after_reorienting(whole_bodies):
    checked = 0
    for p in whole_bodies:
        inferior, superior = p.drawn.slab_mm
        if not (superior > 15 and inferior < -40):
            continue  # the slab must hold the dome: lung above, liver below
        labels = _canonical(p.labels, p.affine)[0]
        assert (labels[:, :, 0] > 0).any() and not (labels[:, :, -1] > 0).any(), p.drawn
        checked += 1
    assert checked >= 3


# ----------------------------------------------------------------------------
# Contrast phases


def test_phases_are_reached_and_liver_hu_matches_the_phase(family):
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    measured = 0
    for p in family:
        lo, hi = ep.PHASE_HU["liver"][ep.PHASES.index(p.drawn.phase)]
        assert lo <= p.drawn.liver_hu <= hi
        interior = ndimage.binary_erosion(p.labels == 1, in_plane)
        if interior.sum() < 30:
            continue
        assert lo - 10 <= np.median(p.hu[interior]) <= hi + 10, p.drawn
        measured += 1
    assert {p.drawn.phase for p in family} == set(ep.PHASES)
    assert measured >= 15


# ----------------------------------------------------------------------------
# Writing rules and the tool


def test_refuses_to_overwrite_unless_asked(tmp_path):
    ((volume, _),) = ep.write_external_phantoms(tmp_path, 1, seed=5, **SMALL)
    with pytest.raises(OutputError, match="exists"):
        ep.write_external_phantoms(tmp_path, 1, seed=5, **SMALL)
    other = ".nii" if volume.name.endswith(".gz") else ".nii.gz"
    stale = tmp_path / f"segmentation-0{other}"
    stale.write_bytes(b"old")
    ep.write_external_phantoms(tmp_path, 1, seed=5, overwrite=True, **SMALL)
    assert not stale.exists() and volume.exists()
    assert [c.index for c in lits.discover_cases(tmp_path)] == [0]


@pytest.mark.parametrize(
    "options",
    [
        dict(size=8),
        dict(num_slices=1),
        dict(spacing_range=(2.0, 1.0)),
        dict(max_tumours=-1),
        dict(dtype="int8"),
        dict(orientation=((0, 0, 1), (0, 0, 0))),
    ],
)
def test_invalid_options_are_refused(options):
    with pytest.raises(ConfigError):
        ep.make_external_phantom(0, 0, **{**SMALL, **options})


def test_tool_writes_and_refuses_existing_cases(tmp_path):
    args = [
        sys.executable,
        str(TOOL),
        f"--output_dir={tmp_path}",
        "--num_volumes=2",
        "--size=32",
        "--num_slices=6",
        "--seed=3",
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(lits.discover_cases(tmp_path)) == 2
    again = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and again.stderr.startswith("error:")
    assert "exists" in again.stderr
