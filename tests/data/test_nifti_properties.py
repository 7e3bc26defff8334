"""Properties of the NIfTI reader and writer, over inputs Hypothesis draws.

* Any values in any header fields of a good file (``tests/reliability/fuzz.py``'s
  seed volumes: NIfTI-1 and -2, both byte orders, ``.nii`` and ``.nii.gz``,
  with extensions and scaling): ``load_ct`` returns a 3D finite volume or
  raises ``NiftiError`` on one line starting with the path, never anything
  else, and every warning it logs is one line naming the file.
* What the reader accepts nibabel loads alike (same shape, affine and
  scaled data), and a label map written against it keeps that affine.
* The writer's outputs reopen equal: ``save_ct`` and ``save_labels`` with
  any small shape, storage type, affine and reference header.

Derandomized (the same examples on every run) and sized to take a few
seconds each.
"""

import contextlib
import gzip
import logging
import math
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from liverseg.data import nifti
from liverseg.errors import NiftiError
from tests.reliability import fuzz

SETTINGS = settings(derandomize=True, deadline=None, max_examples=150, database=None)

# Fields that decide shape, type, offsets, scaling and orientation: drawn more often.
_DECISIVE = (
    "dim",
    "pixdim",
    "datatype",
    "bitpix",
    "vox_offset",
    "scl_slope",
    "scl_inter",
    "qform_code",
    "sform_code",
    "quatern_b",
    "quatern_c",
    "quatern_d",
    "srow_x",
    "srow_y",
    "srow_z",
    "magic",
    "sizeof_hdr",
)


@st.composite
def field_edit(draw, header_class):
    """``(field, index, value)``: any value of the field's stored type."""
    names = header_class.template_dtype.names
    field = draw(st.one_of(st.sampled_from(_DECISIVE), st.sampled_from(names)))
    ftype = header_class.template_dtype.fields[field][0]
    if ftype.kind == "S":
        return field, 0, draw(st.binary(max_size=ftype.itemsize))
    base = ftype.base
    index = draw(st.integers(0, int(np.prod(ftype.shape or (1,))) - 1))
    if base.kind == "f":
        value = draw(st.floats(width=8 * base.itemsize))
    else:
        info = np.iinfo(base)
        value = draw(st.one_of(st.integers(-4, 600), st.integers(int(info.min), int(info.max))))
    return field, index, value


@st.composite
def edited_files(draw, max_edits=3):
    """A seed volume and 1 to ``max_edits`` header fields to set: ``(seed, edits)``."""
    seed = draw(st.sampled_from(fuzz.SEEDS))
    return seed, draw(st.lists(field_edit(seed.header_class), min_size=1, max_size=max_edits))


def file_bytes(seed, edits) -> bytes:
    data = fuzz.seed_bytes(seed)
    for field, index, value in edits:
        data = fuzz.set_field(data, seed.header_class, seed.endian, field, value, index)
    return gzip.compress(data, mtime=0) if seed.gzip else data


@contextlib.contextmanager
def written(name: str, data: bytes):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        yield path


class _Messages(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def reader_messages():
    """The warnings liverseg logs meanwhile."""
    handler, log = _Messages(), logging.getLogger("liverseg")
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    try:
        yield handler.messages
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


@SETTINGS
@given(edited_files())
def test_any_header_values_are_read_or_refused_in_one_line_naming_the_file(case):
    seed, edits = case
    with (
        written(f"volume-1{seed.suffix}", file_bytes(seed, edits)) as path,
        reader_messages() as messages,
    ):
        try:
            volume = nifti.load_ct(path)
        except NiftiError as exc:
            assert str(exc).startswith(f"{path}: ") and exc.path == str(path)
            assert "\n" not in str(exc) and "\r" not in str(exc), str(exc)
        else:
            assert volume.data.ndim == 3 and np.all(np.isfinite(volume.data))
            assert np.all(np.isfinite(volume.affine))
            header_only = nifti.read_header(path)
            np.testing.assert_array_equal(header_only.affine, volume.affine)
        for message in messages:
            assert message.startswith(f"{path}: ") and "\n" not in message, message


@SETTINGS
@given(edited_files(max_edits=2))
def test_what_the_reader_accepts_nibabel_loads_alike_and_the_writer_keeps(case):
    seed, edits = case
    with written(f"volume-1{seed.suffix}", file_bytes(seed, edits)) as path, reader_messages():
        try:
            volume = nifti.load_ct(path, dtype=np.float64)
        except NiftiError:
            return
        with fuzz.quiet_nibabel():
            image = nib.load(path)
            expected = image.get_fdata()
        labels = np.zeros(volume.shape, np.uint8)
        output = nifti.save_labels(path.parent / f"segmentation-1{seed.suffix}", labels, volume)
        written_affine = nib.load(output).affine
    assert image.shape[:3] == volume.shape and all(d == 1 for d in image.shape[3:])
    np.testing.assert_allclose(image.affine, volume.affine, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(volume.data, expected.reshape(volume.shape), rtol=1e-6)
    np.testing.assert_allclose(written_affine, volume.affine, rtol=1e-6, atol=1e-5)


@st.composite
def affines(draw):
    """Rotation (any), voxel sizes 0.1-10 mm, axis flips, translation up to 1 m."""
    angles = draw(st.tuples(*[st.floats(-math.pi, math.pi)] * 3))
    rotation = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = math.cos(angle), math.sin(angle)
        turn = np.eye(3)
        i, j = [k for k in range(3) if k != axis]
        turn[[i, i, j, j], [i, j, i, j]] = c, -s, s, c
        rotation = rotation @ turn
    zooms = draw(st.tuples(*[st.floats(0.1, 10.0)] * 3))
    flips = draw(st.tuples(*[st.sampled_from([-1.0, 1.0])] * 3))
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(np.array(zooms) * flips)
    affine[:3, 3] = draw(st.tuples(*[st.floats(-1000.0, 1000.0)] * 3))
    return affine


SHAPES = st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 5))


@settings(derandomize=True, deadline=None, max_examples=60, database=None)
@given(
    data=st.one_of(
        hnp.arrays(np.int16, SHAPES),
        hnp.arrays(
            np.float32, SHAPES, elements=st.floats(width=32, allow_nan=False).filter(math.isfinite)
        ),
    ),
    affine=affines(),
    suffix=st.sampled_from([".nii", ".nii.gz"]),
)
def test_save_ct_reopens_equal(data, affine, suffix):
    with tempfile.TemporaryDirectory() as d:
        path = nifti.save_ct(Path(d) / f"ct{suffix}", data, affine)
        volume = nifti.load_ct(path, dtype=None if data.dtype == np.int16 else np.float32)
        image = nib.load(path)
        np.testing.assert_array_equal(volume.data, data)
        np.testing.assert_array_equal(np.asarray(image.dataobj), data)
    np.testing.assert_allclose(volume.affine, affine, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(image.affine, affine, rtol=1e-5, atol=1e-4)


@settings(derandomize=True, deadline=None, max_examples=60, database=None)
@given(
    seed=st.sampled_from(fuzz.SEEDS),
    pattern=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from([np.uint8, np.int64, np.float32, bool]),
    suffix=st.sampled_from([".nii", ".nii.gz"]),
)
def test_save_labels_reopens_equal_with_any_reference(seed, pattern, dtype, suffix):
    """Labels written against each seed volume (either NIfTI version, byte order,
    extensions, scaling, qform or sform only) reopen equal, with its affine."""
    raw = fuzz.seed_bytes(seed)
    with written(f"volume-1{seed.suffix}", gzip.compress(raw) if seed.gzip else raw) as ref:
        reference = nifti.load_ct(ref)
        top = 2 if dtype is not bool else 1
        labels = np.random.default_rng(pattern).integers(0, top + 1, reference.shape).astype(dtype)
        path = nifti.save_labels(ref.parent / f"segmentation-1{suffix}", labels, reference)
        reread = nifti.load_labels(path)
        image = nib.load(path)
        stored = np.asarray(image.dataobj)
    np.testing.assert_array_equal(reread.data, labels.astype(np.uint8))
    np.testing.assert_array_equal(stored, labels.astype(np.uint8))
    assert stored.dtype == np.uint8
    np.testing.assert_allclose(reread.affine, reference.affine, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(image.affine, reference.affine, rtol=1e-6, atol=1e-5)
