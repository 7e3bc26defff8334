"""Hand-made bad NIfTI files: every way a CT volume or a label map can be broken.

Files are written byte by byte (header fields set directly) so that any
field can be wrong. Each ``BadFile`` knows how to write itself and the
fragment (a regular expression) the user-facing error must contain.
``CT_BATTERY`` feeds ``tools/infer.py``, ``LABEL_BATTERY`` ``tools/evaluate.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests import nifti_files

SHAPE = (32, 32, 6)
SPACING = (0.8, 0.8, 2.5)
AFFINE = np.diag(list(SPACING) + [1.0])
CAP_BOMB_SHAPE = (2048, 2048, 1024)  # 2**32 voxels, over DEFAULT_MAX_VOXELS (2**30)


make_header = functools.partial(nifti_files.make_header, affine=AFFINE)
nifti_bytes = functools.partial(nifti_files.nifti_bytes, affine=AFFINE)
store = nifti_files.store


def ct_values(shape=SHAPE, seed: int = 0, dtype=np.int16) -> np.ndarray:
    """A plausible CT volume: air, a body ellipse, a bright liver-like block."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    body = (x / 0.8) ** 2 + (y / 0.7) ** 2 < 1
    hu = np.where(body[..., None], 40.0, -1000.0) + rng.normal(0, 10, shape)
    hu[shape[0] // 4 : shape[0] // 2, shape[1] // 4 : 3 * shape[1] // 4, :] = 120
    return np.asarray(np.round(hu), dtype=dtype)


def label_values(shape=SHAPE) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[8:24, 8:24, 1:5] = 1
    labels[12:16, 12:16, 2:4] = 2
    return labels


def write_good_ct(path: Path, shape=SHAPE, seed: int = 0) -> Path:
    return store(path, nifti_bytes(ct_values(shape, seed)))


def write_good_labels(path: Path, labels=None) -> Path:
    return store(path, nifti_bytes(label_values() if labels is None else labels))


@dataclasses.dataclass(frozen=True)
class BadFile:
    name: str
    make: Callable[[Path], object]
    expect: str  # regular expression the error line must match
    note: str  # what is wrong, for the docs

    def write(self, directory: Path) -> Path:
        path = directory / self.name
        self.make(path)
        return path


# ----------------------------------------------------------------------------
# Writers of broken files (each takes the destination path)


def _truncated_gz(path):
    blob = gzip.compress(nifti_bytes(ct_values()), mtime=0)
    path.write_bytes(blob[: len(blob) * 2 // 3])


def _flipped_deflate(path):
    blob = bytearray(gzip.compress(nifti_bytes(ct_values()), mtime=0))
    blob[len(blob) // 2] ^= 0x5A
    path.write_bytes(bytes(blob))


def _flipped_crc(path):
    blob = bytearray(gzip.compress(nifti_bytes(ct_values()), mtime=0))
    blob[-8] ^= 0x01  # first byte of the CRC32 trailer: only reading to the end finds it
    path.write_bytes(bytes(blob))


def _truncated_nii(path):
    path.write_bytes(nifti_bytes(ct_values())[:-1000])


def _header_only(path):
    path.write_bytes(nifti_bytes(ct_values())[:352])


def _truncated_header(path):
    store(path, nifti_bytes(ct_values())[:200])


def _empty(path):
    path.write_bytes(b"")


def _text(path):
    path.write_text("patient notes, not an image\n" * 40)


def _gzip_text(path):
    store(path, b"gzip-compressed text, not an image\n" * 40, compress=True)


def _gzip_magic_garbage(path):
    path.write_bytes(b"\x1f\x8b" + os.urandom(500))


def _dangling(path):
    os.symlink(path.parent / "deleted-scan.nii.gz", path)


def _hdr_img_pair(path):
    store(path, nifti_bytes(ct_values(), make_header(SHAPE, np.int16, magic=b"ni1")))


def _bad_magic(path):
    store(path, nifti_bytes(ct_values(), make_header(SHAPE, np.int16, magic=b"xyz")))


def _with_dim(dim):
    def write(path):
        hdr = make_header(SHAPE, np.int16)
        hdr["dim"][: len(dim)] = dim
        store(path, nifti_bytes(ct_values(), hdr))

    return write


def _data(values, compress=None, **fields):
    """Writes ``values`` with a header made from ``fields`` (good or bad, CT or labels)."""

    def write(path):
        store(path, nifti_bytes(values, **fields), compress=compress)

    return write


def _pixdim(pixdim):
    def write(path):
        hdr = make_header(SHAPE, np.int16, codes=(0, 0))
        hdr["pixdim"][1:4] = pixdim
        store(path, nifti_bytes(ct_values(), hdr))

    return write


def _datatype(code, bitpix):
    def write(path):
        hdr = make_header(SHAPE, np.int16)
        hdr["datatype"] = code
        hdr["bitpix"] = bitpix
        store(path, hdr.binaryblock + b"\x00" * 4 + b"\x00" * (int(np.prod(SHAPE)) * bitpix // 8))

    return write


def _field(**fields):
    def write(path):
        store(path, nifti_bytes(ct_values(), make_header(SHAPE, np.int16, **fields)))

    return write


def _bomb(path):
    # Promises 2**32 int16 voxels (8 GiB) in a 1 MB stream of zeros.
    hdr = make_header(CAP_BOMB_SHAPE, np.int16)
    store(path, hdr.binaryblock + b"\x00" * 4 + b"\x00" * 1_000_000)


def _short_for_dim(path):
    # dim[0] = 3 and a full-size shape, but the data stop after one slice.
    store(path, nifti_bytes(ct_values())[: 352 + 32 * 32 * 2])


def _trailing(path):
    store(path, nifti_bytes(ct_values()) + b"\x00" * (20 * 2**20))


def _nan_ct(path):
    v = ct_values(dtype=np.float32)
    v[5, 5, 2] = np.nan
    store(path, nifti_bytes(v))


def _inf_ct(path):
    v = ct_values(dtype=np.float64)
    v[1, 2, 3] = -np.inf
    store(path, nifti_bytes(v))


def _singular_sform(path):
    store(
        path,
        nifti_bytes(ct_values(), make_header(SHAPE, np.int16, codes=(0, 2), srow_x=[0, 0, 0, 0])),
    )


def _nan_sform(path):
    store(
        path,
        nifti_bytes(
            ct_values(), make_header(SHAPE, np.int16, codes=(0, 2), srow_y=[0, np.nan, 0, 0])
        ),
    )


def _fifo(path):
    os.mkfifo(path)


def _device_link(path):
    os.symlink("/dev/zero", path)


def _link_loop(path):
    os.symlink(path.name, path)


def _too_short_for_header(path):
    # Promises 1024 x 1024 x 1000 int16 (2 GB, under the voxel cap) from 30 kB of gzip:
    # deflate cannot expand that much, so it is refused before 2 GB are allocated.
    hdr = make_header((1024, 1024, 1000), np.int16)
    store(path, hdr.binaryblock + b"\x00" * 4 + os.urandom(30_000))


def _gzip_then(tail: bytes):
    def write(path):
        path.write_bytes(gzip.compress(nifti_bytes(ct_values()), mtime=0) + tail)

    return write


def _extension(esize: int, content: bytes):
    """Extension flag set, one extension of declared size ``esize`` (ecode 4, AFNI)."""

    def write(path):
        hdr = make_header(SHAPE, np.int16, vox_offset=400)
        block = esize.to_bytes(4, "little") + (4).to_bytes(4, "little") + content
        store(
            path,
            hdr.binaryblock
            + b"\x01\x00\x00\x00"
            + block.ljust(48, b"\x00")
            + ct_values().tobytes(order="F"),
        )

    return write


CT_BATTERY: tuple[BadFile, ...] = (
    BadFile("volume-1.nii.gz", _truncated_gz, "truncated", "gzip stream cut at 2/3"),
    BadFile(
        "volume-2.nii.gz",
        _flipped_deflate,
        "corrupt|truncated",
        "one byte flipped in the middle of the deflate stream",
    ),
    BadFile(
        "volume-3.nii.gz",
        _flipped_crc,
        r"corrupt.*(CRC|checksum)",
        "one bit flipped in the gzip CRC32 trailer (the data decompress fine)",
    ),
    BadFile("volume-4.nii", _truncated_nii, "truncated", "uncompressed, last 1000 bytes cut"),
    BadFile("volume-5.nii", _header_only, "truncated", "header and no data"),
    BadFile(
        "volume-6.nii.gz",
        _truncated_header,
        "truncated inside the NIfTI header",
        "cut inside the 348-byte header",
    ),
    BadFile("volume-7.nii", _empty, "file is empty", "0 bytes"),
    BadFile("volume-8.nii", _text, "not a NIfTI file", "a text file named like a volume"),
    BadFile("volume-9.nii.gz", _gzip_text, "not a NIfTI file", "gzip-compressed text"),
    BadFile("volume-10.nii.gz", _gzip_magic_garbage, "corrupt", "gzip magic then random bytes"),
    BadFile("volume-11.nii.gz", _dangling, "dangling symbolic link", "symlink to a deleted file"),
    BadFile("volume-12.nii", _hdr_img_pair, r"\.hdr/\.img pair", "magic 'ni1' (header of a pair)"),
    BadFile("volume-13.nii", _bad_magic, "bad magic", "sizeof_hdr 348 but magic 'xyz'"),
    BadFile(
        "volume-14.nii.gz",
        _data(np.zeros(SHAPE + (2,), np.int16)),
        "4D",
        "real 4D data (2 time points)",
    ),
    BadFile("volume-15.nii.gz", _data(np.zeros((32, 32), np.int16)), "2D", "a 2D image"),
    BadFile("volume-16.nii.gz", _with_dim([9, 32, 32, 6]), r"dim\[0\] = 9", "dim[0] = 9"),
    BadFile(
        "volume-17.nii.gz",
        _with_dim([3, 32, -32, 6]),
        "zero or negative dimension",
        "negative dim[2]",
    ),
    BadFile(
        "volume-18.nii.gz", _with_dim([3, 32, 0, 6]), "zero or negative dimension", "dim[2] = 0"
    ),
    BadFile(
        "volume-19.nii.gz",
        _short_for_dim,
        "truncated",
        "header declares 32x32x6, data hold one slice",
    ),
    BadFile("volume-20.nii.gz", _pixdim((0.8, 0.0, 2.5)), "zero or negative", "voxel size 0"),
    BadFile(
        "volume-21.nii.gz", _pixdim((0.8, 0.8, -2.5)), "zero or negative", "negative voxel size"
    ),
    BadFile("volume-22.nii.gz", _pixdim((np.nan, 0.8, 2.5)), "not finite", "NaN voxel size"),
    BadFile("volume-23.nii.gz", _datatype(32, 64), "unsupported data type", "complex64 voxels"),
    BadFile("volume-24.nii.gz", _datatype(128, 24), "unsupported data type", "RGB24 voxels"),
    BadFile(
        "volume-25.nii.gz",
        _datatype(999, 16),
        "unsupported or corrupt data type code",
        "datatype code 999",
    ),
    BadFile("volume-26.nii.gz", _field(vox_offset=2.0**40), "vox_offset", "vox_offset 2**40"),
    BadFile(
        "volume-27.nii.gz", _field(vox_offset=100.0), "vox_offset", "vox_offset inside the header"
    ),
    BadFile("volume-28.nii.gz", _field(scl_slope=np.inf), "corrupt scaling", "scl_slope inf"),
    BadFile(
        "volume-29.nii.gz",
        _field(scl_slope=2.0, scl_inter=np.nan),
        "corrupt scaling",
        "scl_inter NaN with a valid slope",
    ),
    BadFile("volume-30.nii.gz", _field(scl_slope=1e38), "non-finite", "scaling overflows float32"),
    BadFile("volume-31.nii.gz", _nan_ct, "non-finite", "one NaN voxel (float32)"),
    BadFile("volume-32.nii.gz", _inf_ct, "non-finite", "one -inf voxel (float64)"),
    BadFile(
        "volume-33.nii.gz",
        _bomb,
        "over the limit",
        "gzip bomb: header promises 2048x2048x1024 int16 (8 GiB)",
    ),
    BadFile(
        "volume-34.nii.gz",
        _trailing,
        "more data after the image",
        "20 MiB of data after the declared image",
    ),
    BadFile("volume-35.nii.gz", _singular_sform, "singular", "sform with a zero row"),
    BadFile("volume-36.nii.gz", _nan_sform, "not finite", "NaN in the sform"),
    BadFile(
        "volume-37.nii.gz",
        _data(ct_values((32, 32, 2))),
        "at least 3",
        "2 slices: fewer than a triplet",
    ),
    BadFile(
        "volume-38.nii.gz",
        _data(ct_values((8, 8, 3))),
        "at least 16x16",
        "8x8x3, slices smaller than the network minimum",
    ),
    BadFile("volume-39.nii.gz", _data(ct_values((1, 32, 6))), "at least 16x16", "one voxel wide"),
    BadFile("volume-40.nii", _fifo, "not a regular file", "a named pipe (would block a reader)"),
    BadFile("volume-41.nii.gz", _device_link, "not a regular file", "symlink to /dev/zero"),
    BadFile("volume-42.nii", _link_loop, "symbolic link loop", "symlink to itself"),
    BadFile(
        "volume-43.nii.gz",
        _too_short_for_header,
        "cannot hold",
        "header promises 2 GB (under the cap) from a 30 kB gzip file",
    ),
    BadFile(
        "volume-44.nii.gz",
        _extension(10**6, b"<afni/>"),
        "corrupt NIfTI header extension",
        "header extension declaring 1 MB inside a 48-byte gap",
    ),
    BadFile(
        "volume-45.nii.gz",
        _extension(3, b"<afni/>"),
        "corrupt NIfTI header extension",
        "header extension of size 3 (less than its own 8-byte header)",
    ),
    BadFile(
        "volume-46.nii.gz",
        _datatype(1, 1),
        "unsupported data type binary",
        "1-bit packed voxels (DT_BINARY)",
    ),
    BadFile(
        "volume-47.nii.gz",
        _gzip_then(b"garbage!"),
        "corrupt",
        "a good gzip stream followed by non-gzip bytes",
    ),
    BadFile("scan ü 1.nii", _text, "not a NIfTI file", "a name with spaces and non-ASCII"),
)
"""Bad CT volumes; every one must fail on its own with a line naming it."""


def _codes_zero(path):
    store(path, nifti_bytes(ct_values(), make_header(SHAPE, np.int16, codes=(0, 0))))


def _oblique(path):
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.array(
        [[0.8 * c, -0.8 * s, 0, -10], [0.8 * s, 0.8 * c, 0, 5], [0, 0, 2.5, 30], [0, 0, 0, 1]]
    )
    store(path, nifti_bytes(ct_values(), make_header(SHAPE, np.int16, affine=affine)))


def _singleton_4d(path):
    store(path, nifti_bytes(ct_values()[..., None]))


def _scaled_uint16(path):
    store(
        path, nifti_bytes((ct_values() + 1024).astype(np.uint16), scl_slope=1.0, scl_inter=-1024.0)
    )


GOOD_ODDITIES: tuple[BadFile, ...] = (
    BadFile(
        "odd-plain-named-gz.nii.gz",
        _data(ct_values(), compress=False),
        "",
        "uncompressed data named .nii.gz (read, warning logged)",
    ),
    BadFile(
        "odd-gzip-named-nii.nii",
        _data(ct_values(), compress=True),
        "",
        "gzip data named .nii (read, warning logged)",
    ),
    BadFile(
        "odd-uint8.nii.gz",
        _data(np.clip(ct_values() + 1000, 0, 255).astype(np.uint8)),
        "",
        "uint8 voxels",
    ),
    BadFile("odd-uint16-scaled.nii.gz", _scaled_uint16, "", "uint16 with scl_inter -1024"),
    BadFile("odd-float64.nii.gz", _data(ct_values(dtype=np.float64)), "", "float64 voxels"),
    BadFile("odd-int64.nii.gz", _data(ct_values(dtype=np.int64)), "", "int64 voxels"),
    BadFile(
        "odd-slope0.nii.gz",
        _data(ct_values(), scl_slope=0.0, scl_inter=500.0),
        "",
        "scl_slope 0 (= no scaling; scl_inter ignored)",
    ),
    BadFile("odd-singleton4d.nii.gz", _singleton_4d, "", "shape (32, 32, 6, 1)"),
    BadFile("odd-nocodes.nii.gz", _codes_zero, "", "qform_code = sform_code = 0"),
    BadFile("odd-oblique.nii.gz", _oblique, "", "affine rotated 17 degrees in-plane"),
    BadFile(
        "odd-3slices.nii",
        _data(ct_values((16, 16, 3))),
        "",
        "16x16x3: the smallest volume the cascade takes",
    ),
    BadFile(
        "odd-constant.nii.gz",
        _data(np.full(SHAPE, -1024, np.int16)),
        "",
        "every voxel -1024 HU (empty scan: no liver found)",
    ),
    BadFile(
        "odd-gzip-zero-padded.nii.gz",
        _gzip_then(b"\x00" * 512),
        "",
        "gzip stream followed by zero padding (tape/transfer padding; ignored)",
    ),
    BadFile("odd name ü.nii.gz", _data(ct_values()), "", "a name with spaces and non-ASCII"),
)
"""Unusual but valid CT volumes: each must be segmented."""


def _labels_affine(affine):
    def write(path):
        store(path, nifti_bytes(label_values(), make_header(SHAPE, np.uint8, affine=affine)))

    return write


def _label_with(value, dtype):
    labels = label_values().astype(dtype)
    labels[0, 0, 0] = value
    labels[1, 0, 0] = value
    return labels


LABEL_BATTERY: tuple[BadFile, ...] = (
    BadFile("segmentation-1.nii.gz", _truncated_gz, "truncated", "gzip stream cut"),
    BadFile(
        "segmentation-2.nii.gz", _flipped_crc, r"corrupt.*(CRC|checksum)", "CRC trailer flipped"
    ),
    BadFile("segmentation-3.nii", _empty, "file is empty", "0 bytes"),
    BadFile("segmentation-4.nii", _text, "not a NIfTI file", "text"),
    BadFile(
        "segmentation-5.nii.gz",
        _data(_label_with(3, np.uint8)),
        r"outside \{0, 1, 2\}: 3",
        "label value 3",
    ),
    BadFile(
        "segmentation-6.nii.gz",
        _data(_label_with(-1, np.int16)),
        r"outside \{0, 1, 2\}: -1",
        "label value -1",
    ),
    BadFile(
        "segmentation-7.nii.gz",
        _data(_label_with(0.5, np.float32)),
        "not integers: 0.5",
        "label value 0.5",
    ),
    BadFile(
        "segmentation-8.nii.gz", _data(_label_with(np.nan, np.float32)), "non-finite", "NaN label"
    ),
    BadFile(
        "segmentation-9.nii.gz",
        _data(label_values()[:, :, :5]),
        r"shape \(32, 32, 5\)",
        "one slice short of the reference",
    ),
    BadFile(
        "segmentation-10.nii.gz",
        _labels_affine(np.diag([0.8, 0.8, 5.0, 1.0])),
        "spacing",
        "slice thickness 5 mm, reference 2.5 mm",
    ),
    BadFile("segmentation-11.nii.gz", _dangling, "dangling symbolic link", "dangling symlink"),
    BadFile("segmentation-12.nii.gz", _bomb, "over the limit", "gzip bomb header"),
    BadFile(
        "segmentation-13.nii.gz",
        _data(_label_with(255, np.uint8)),
        r"outside \{0, 1, 2\}: 255",
        "label value 255",
    ),
    BadFile("segmentation-14.nii.gz", _data(np.zeros(SHAPE + (2,), np.uint8)), "4D", "4D labels"),
)
"""Bad predicted label maps for ``tools/evaluate.py`` (references are good)."""
