"""NIfTI reading and validation (nibabel headers, our own data reader).

Reading is strict because everything downstream trusts the arrays:

* The header is parsed first and checked (3D, size cap, voxel sizes, data
  type, scaling, data offset) before a single data byte is decompressed, so
  an oversized or gzip-bomb file is refused at once.
* Compression is taken from the file's magic bytes, not its name: a
  ``.nii.gz`` that is really uncompressed (or a gzip-compressed ``.nii``) is
  read correctly and a warning is logged.
* The data are read eagerly to the end of the file (nibabel's lazy proxy can
  stop before the gzip trailer, so a CRC or length error would go unseen);
  truncated, corrupt or overlong files are refused.
* Scaling follows the NIfTI standard as nibabel reads it: ``scl_slope`` 0 or
  NaN means "no scaling" (``scl_inter`` is then ignored); an infinite slope or
  a non-finite intercept with a valid slope is a corrupt header.
* A trailing singleton 4th (and higher) axis is squeezed; real 4D or 2D data
  are refused.
* When both ``qform_code`` and ``sform_code`` are 0 the file carries no
  orientation; it is accepted with nibabel's fallback affine (voxel sizes on
  the diagonal, x flipped, centred) and a warning is logged.
* Oblique (rotated or sheared) affines are accepted unchanged: slices are
  always taken along the stored array axes, and ``spacing`` is the header's
  ``pixdim``, which is the voxel size whatever the orientation.

Memory: the raw data are read into one buffer; conversion to HU float32 is
done in slabs of slices, so no float64 copy of a volume is ever made. A
gzip file whose size cannot hold the declared data (deflate expands at most
~1032 times) is refused before the buffer is allocated, and running out of
memory is reported as a NiftiError naming the file.
Every problem raises :class:`liverseg.errors.NiftiError` naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gzip
import io
import logging
import os
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
import numpy as np
from nibabel.volumeutils import native_code

from liverseg.data.nifti.checks import fixed_header
from liverseg.data.nifti.volume import DEFAULT_MAX_VOXELS, LABEL_VALUES, NiftiVolume, _slabs
from liverseg.errors import NiftiError

logger = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_EXTENSION_BYTES = 64 * 2**20  # header extensions larger than this are refused
_MAX_TRAILING_BYTES = 16 * 2**20  # data after the image beyond this is refused
# Deflate cannot expand data more than ~1032 times; a gzip file promising more
# than this many bytes per compressed byte is refused before allocating memory.
_MAX_DEFLATE_RATIO = 1100
_INT16 = np.iinfo(np.int16)
_SUFFIXES = (".nii", ".nii.gz")


@dataclasses.dataclass(frozen=True)
class _Parsed:
    """A checked header and where its data start."""

    path: Path
    is_gzip: bool
    header: nib.Nifti1Header
    shape: tuple[int, int, int]
    dtype: np.dtype  # stored dtype, header byte order
    data_offset: int
    slope: float | None
    inter: float | None
    affine: np.ndarray
    spacing: tuple[float, float, float]


def _has_nifti_suffix(path: Path) -> bool:
    return path.name.lower().endswith(_SUFFIXES)


def _check_path(path: Path) -> bool:
    """Checks that ``path`` is a non-empty regular file; returns is-gzip."""
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise NiftiError(path, "symbolic link loop") from None
        raise NiftiError(
            path, f"dangling symbolic link (target {os.readlink(path)} does not exist)"
        )
    if not path.exists():
        raise NiftiError(path, "file not found")
    if path.is_dir():
        raise NiftiError(path, "is a directory, not a NIfTI file")
    if not path.is_file():
        raise NiftiError(path, "is not a regular file")
    if not _has_nifti_suffix(path):
        raise NiftiError(path, "file name must end in .nii or .nii.gz")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            magic = f.read(2)
    except OSError as e:
        raise NiftiError(path, f"cannot read file: {e.strerror or e}") from e
    if size == 0:
        raise NiftiError(path, "file is empty")
    is_gzip = magic == _GZIP_MAGIC
    named_gzip = path.name.lower().endswith(".gz")
    if is_gzip and not named_gzip:
        logger.warning(
            "%s: file is gzip-compressed although its name ends in .nii; reading it as .nii.gz",
            path,
        )
    elif named_gzip and not is_gzip:
        logger.warning(
            "%s: file is not gzip-compressed although its name ends in .gz; "
            "reading it as uncompressed .nii",
            path,
        )
    return is_gzip


def _open(path: Path, is_gzip: bool) -> BinaryIO:
    raw = open(path, "rb")  # noqa: SIM115 - the caller closes the returned stream
    if not is_gzip:
        return raw
    return gzip.GzipFile(fileobj=raw, mode="rb")


def _close(f: BinaryIO) -> None:
    f.close()
    inner = getattr(f, "fileobj", None)
    if inner is not None:
        inner.close()


def _read_exact(f: BinaryIO, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _readinto_exact(f: BinaryIO, buf: memoryview) -> int:
    got = 0
    while got < len(buf):
        n = f.readinto(buf[got:])
        if not n:
            break
        got += n
    return got


def _header_class(first4: bytes):
    for size, klass in ((348, nib.Nifti1Header), (540, nib.Nifti2Header)):
        for endian, order in (("<", "little"), (">", "big")):
            if int.from_bytes(first4, order) == size:
                return klass, endian
    return None, None


def _format_sizes(sizes) -> str:
    """``(0.8, 0.8, 2.5)`` rather than float32 noise such as ``0.800000011920929``."""
    return "(" + ", ".join(f"{float(v):.6g}" for v in sizes) + ")"


def _parse_header(f: BinaryIO, path: Path, is_gzip: bool, max_voxels: int) -> _Parsed:
    first = _read_exact(f, 4)
    klass, endian = _header_class(first)
    if klass is None:
        if len(first) < 4:
            raise NiftiError(path, "file is truncated inside the NIfTI header")
        raise NiftiError(path, "not a NIfTI file (sizeof_hdr is neither 348 nor 540)")
    hdr_size = klass.template_dtype.itemsize
    raw = first + _read_exact(f, hdr_size - 4)
    if len(raw) < hdr_size:
        raise NiftiError(
            path, f"file is truncated inside the NIfTI header ({len(raw)} of {hdr_size} bytes)"
        )
    try:
        hdr = klass(raw, endianness=endian, check=False)
    except Exception as e:  # nibabel raises several types for garbage headers
        raise NiftiError(path, f"corrupt NIfTI header: {e}") from e

    magic = bytes(hdr["magic"]).rstrip(b"\x00")
    if magic in (b"ni1", b"ni2"):
        raise NiftiError(
            path, "header of a .hdr/.img pair; only single-file .nii/.nii.gz is supported"
        )
    expected = b"n+1" if klass is nib.Nifti1Header else b"n+2"
    raw_magic = bytes(hdr["magic"])  # NIfTI-2's is "n+2\0" and four more bytes
    if not (raw_magic == expected or raw_magic.startswith(expected + b"\x00")):
        size = 348 if klass is nib.Nifti1Header else 540
        raise NiftiError(
            path,
            f"not a NIfTI file (bad magic {magic!r}: a {size}-byte header needs {expected!r})",
        )
    if klass is nib.Nifti2Header:  # nibabel refuses these too; all 0 is fixed quietly
        eol = tuple(int(b) for b in hdr["eol_check"])
        if eol not in ((13, 10, 26, 10), (0, 0, 0, 0)):
            raise NiftiError(
                path,
                f"corrupt NIfTI-2 header: EOL check bytes {eol}, not (13, 10, 26, 10); "
                f"the file was probably altered by a text-mode transfer",
            )

    dim = [int(d) for d in hdr["dim"]]
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise NiftiError(path, f"corrupt NIfTI header: dim[0] = {ndim} (must be 1..7)")
    full_shape = tuple(dim[1 : ndim + 1])
    if ndim < 3:
        raise NiftiError(path, f"data are {ndim}D with shape {full_shape}; expected a 3D volume")
    if ndim > 3 and any(d != 1 for d in full_shape[3:]):
        raise NiftiError(
            path,
            f"data are {ndim}D with shape {full_shape}; expected a 3D volume "
            f"(only trailing singleton axes are accepted)",
        )
    if any(d <= 0 for d in full_shape):
        raise NiftiError(path, f"shape {full_shape} has a zero or negative dimension")
    shape = full_shape[:3]
    nvox = shape[0] * shape[1] * shape[2]
    if nvox > max_voxels:
        raise NiftiError(
            path,
            f"header declares {nvox} voxels (shape {full_shape}), over the "
            f"limit of {max_voxels} (max_voxels)",
        )

    pixdim = [float(p) for p in hdr["pixdim"][1:4]]
    if not all(np.isfinite(pixdim)):
        raise NiftiError(path, f"voxel size {_format_sizes(pixdim)} is not finite")
    if any(p <= 0 for p in pixdim):
        raise NiftiError(path, f"voxel size {_format_sizes(pixdim)} has a zero or negative entry")

    try:
        dtype = hdr.get_data_dtype()
    except Exception as e:
        raise NiftiError(
            path, f"unsupported or corrupt data type code {int(hdr['datatype'])}"
        ) from e
    if dtype.kind not in "iuf" or dtype.itemsize > 8 or dtype.fields is not None:
        try:
            label = hdr.get_value_label("datatype")
        except Exception:
            label = str(dtype)
        raise NiftiError(
            path,
            f"unsupported data type {label} (datatype code "
            f"{int(hdr['datatype'])}; expected integers or floats)",
        )

    slope, inter = float(hdr["scl_slope"]), float(hdr["scl_inter"])
    if np.isinf(slope):
        raise NiftiError(path, f"corrupt scaling: scl_slope is {slope}")
    if slope == 0 or np.isnan(slope):
        slope = inter = None  # the standard's "no scaling"
    elif not np.isfinite(inter):
        raise NiftiError(path, f"corrupt scaling: scl_inter is {inter} with scl_slope {slope}")
    elif slope == 1 and inter == 0:
        slope = inter = None

    min_offset = hdr_size + 4
    vox_offset = float(hdr["vox_offset"])
    if not np.isfinite(vox_offset) or vox_offset != int(vox_offset) or vox_offset < min_offset:
        raise NiftiError(
            path,
            f"corrupt NIfTI header: vox_offset {vox_offset} (must be an integer >= {min_offset})",
        )
    vox_offset = int(vox_offset)
    if vox_offset - min_offset > _MAX_EXTENSION_BYTES:
        raise NiftiError(
            path,
            f"vox_offset {vox_offset} leaves over {_MAX_EXTENSION_BYTES} bytes "
            f"of header extensions; refused",
        )

    ext = _read_exact(f, vox_offset - hdr_size)
    if len(ext) < vox_offset - hdr_size:
        raise NiftiError(path, "file is truncated before the start of the data (vox_offset)")
    if ext[:1] != b"\x00" and len(ext) > 4:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                hdr.extensions = klass.exts_klass.from_fileobj(
                    io.BytesIO(ext[4:]), len(ext) - 4, hdr.endianness != native_code
                )
            except Exception as e:
                raise NiftiError(path, f"corrupt NIfTI header extension: {e}") from e
        for w in caught:  # nibabel's warnings, named and on one line
            logger.warning("%s: NIfTI header extension: %s", path, w.message)

    codes = int(hdr["qform_code"]), int(hdr["sform_code"])
    hdr = fixed_header(hdr, path)
    try:
        affine = np.asarray(hdr.get_best_affine(), dtype=np.float64)
    except Exception as e:
        raise NiftiError(path, f"corrupt orientation (qform/sform): {e}") from e
    if not np.all(np.isfinite(affine)):
        raise NiftiError(path, "orientation affine is not finite")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise NiftiError(path, "orientation affine is singular")
    if codes == (0, 0):
        logger.warning(
            "%s: qform_code and sform_code are both 0 (no orientation); "
            "using nibabel's fallback affine from the voxel sizes",
            path,
        )
    return _Parsed(
        path, is_gzip, hdr, shape, dtype, vox_offset, slope, inter, affine, tuple(pixdim)
    )


@contextlib.contextmanager
def _read_errors(p: Path, corrupt: str) -> Iterator[None]:
    """Turns the errors of reading ``p`` into one NiftiError naming it."""
    try:
        yield
    except NiftiError:
        raise
    except EOFError as e:
        raise NiftiError(p, f"file is truncated (compressed stream ended early): {e}") from e
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise NiftiError(p, f"cannot read file: {e.strerror or e}") from e
    except (OSError, zlib.error) as e:
        raise NiftiError(p, f"{corrupt}: {e}") from e


def _inspect(path: str | os.PathLike, max_voxels: int) -> _Parsed:
    """Checks the file and its header without reading any data."""
    p = Path(path)
    is_gzip = _check_path(p)
    with _read_errors(p, "corrupt file"):
        f = _open(p, is_gzip)
        try:
            return _parse_header(f, p, is_gzip, max_voxels)
        finally:
            _close(f)


def _read_raw(info: _Parsed) -> np.ndarray:
    """Reads the data to the end of the file: native byte order, Fortran order."""
    p = info.path
    nbytes = int(np.prod(info.shape, dtype=np.int64)) * info.dtype.itemsize
    try:
        size = p.stat().st_size
    except OSError as e:
        raise NiftiError(p, f"cannot read file: {e.strerror or e}") from None
    if not info.is_gzip:
        if size < info.data_offset + nbytes:
            raise NiftiError(
                p,
                f"file is truncated: {size - info.data_offset} data bytes, "
                f"header declares {nbytes}",
            )
        if size > info.data_offset + nbytes + _MAX_TRAILING_BYTES:
            raise NiftiError(
                p,
                f"file holds {size - info.data_offset - nbytes} bytes after "
                f"the image data; not a valid NIfTI file",
            )
    elif info.data_offset + nbytes > size * _MAX_DEFLATE_RATIO:
        raise NiftiError(
            p,
            f"file is truncated: {size} compressed bytes cannot hold the "
            f"{nbytes} data bytes the header declares",
        )
    buf = np.empty(nbytes, dtype=np.uint8)
    with _read_errors(p, "corrupt file (gzip data or checksum error)"):
        f = _open(p, info.is_gzip)
        try:
            f.seek(info.data_offset)
            got = _readinto_exact(f, memoryview(buf))
            if got < nbytes:
                raise NiftiError(
                    p, f"file is truncated: {got} data bytes, header declares {nbytes}"
                )
            trailing = 0
            while True:  # reading to EOF makes gzip verify its CRC and length
                chunk = f.read(2**20)
                if not chunk:
                    break
                trailing += len(chunk)
                if trailing > _MAX_TRAILING_BYTES:
                    raise NiftiError(
                        p,
                        "file holds more data after the image than its header "
                        "declares; not a valid NIfTI file",
                    )
        finally:
            _close(f)
    arr = buf.view(info.dtype)
    if not arr.dtype.isnative:
        arr.byteswap(inplace=True)
        arr = arr.view(arr.dtype.newbyteorder("="))
    return arr.reshape(info.shape, order="F")


def _scaled_slab(raw: np.ndarray, sl: slice, slope, inter) -> np.ndarray:
    chunk = raw[:, :, sl]
    if slope is None:
        return chunk
    return chunk.astype(np.float64) * slope + inter


def _check_finite(path: Path, values: np.ndarray, what: str) -> None:
    if values.dtype.kind == "f":
        bad = values.size - int(np.count_nonzero(np.isfinite(values)))
        if bad:
            raise NiftiError(path, f"{what} contain {bad} non-finite (NaN or infinite) voxels")


def _int16_result(info: _Parsed, raw: np.ndarray) -> np.ndarray | None:
    """The HU volume as int16 when the scaled values are exact int16, else None."""
    if raw.dtype.kind not in "iu":
        return None
    slope = 1.0 if info.slope is None else info.slope
    inter = 0.0 if info.inter is None else info.inter
    if not (slope.is_integer() and inter.is_integer()):
        return None
    lo, hi = int(raw.min()), int(raw.max())
    ends = (lo * int(slope) + int(inter), hi * int(slope) + int(inter))
    if min(ends) < _INT16.min or max(ends) > _INT16.max:
        return None
    if raw.dtype == np.int16 and info.slope is None:
        return raw
    out = np.empty(info.shape, dtype=np.int16, order="F")
    for sl in _slabs(info.shape):
        chunk = raw[:, :, sl]
        if info.slope is not None:
            chunk = chunk.astype(np.int64) * int(slope) + int(inter)
        out[:, :, sl] = chunk
    return out


def _to_hu(info: _Parsed, raw: np.ndarray, dtype) -> np.ndarray:
    if dtype is None:
        compact = _int16_result(info, raw)
        if compact is not None:
            return compact
        dtype = np.float32
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating type or None, got {dtype}")
    if raw.dtype == dtype and info.slope is None:
        for sl in _slabs(info.shape):
            _check_finite(info.path, raw[:, :, sl], "data")
        return raw
    if raw.dtype.kind in "iu" and info.slope is None:  # finite by construction
        return raw.astype(dtype, order="F")
    out = np.empty(info.shape, dtype=dtype, order="F")
    for sl in _slabs(info.shape):
        with np.errstate(over="ignore", invalid="ignore"):
            out[:, :, sl] = _scaled_slab(raw, sl, info.slope, info.inter)
        _check_finite(info.path, out[:, :, sl], "data (after scaling)")
    return out


def _format_values(values: set) -> str:
    shown = sorted(values)[:10]
    text = ", ".join(f"{int(v)}" if float(v).is_integer() else f"{v:g}" for v in shown)
    return text + (", ..." if len(values) > 10 else "")


def _to_labels(info: _Parsed, raw: np.ndarray) -> np.ndarray:
    if raw.dtype == np.uint8 and info.slope is None:
        counts = np.bincount(raw.ravel(order="K"), minlength=256)
        bad = {int(v) for v in np.flatnonzero(counts[len(LABEL_VALUES) :]) + len(LABEL_VALUES)}
        if bad:
            raise NiftiError(info.path, f"label values outside {{0, 1, 2}}: {_format_values(bad)}")
        return raw
    out = np.empty(info.shape, dtype=np.uint8, order="F")
    bad: set = set()
    fractional: set = set()
    for sl in _slabs(info.shape):
        v = _scaled_slab(raw, sl, info.slope, info.inter)
        _check_finite(info.path, v, "labels")
        if v.dtype.kind == "f":
            frac = v != np.round(v)
            if frac.any():
                fractional.update(np.unique(v[frac])[:11].tolist())
        outside = (v != 0) & (v != 1) & (v != 2)
        if outside.any():
            bad.update(np.unique(v[outside])[:11].tolist())
        if not bad:
            out[:, :, sl] = v
    if fractional:
        raise NiftiError(info.path, f"label values are not integers: {_format_values(fractional)}")
    if bad:
        raise NiftiError(info.path, f"label values outside {{0, 1, 2}}: {_format_values(bad)}")
    return out


@contextlib.contextmanager
def _memory_guard(info: _Parsed):
    """Turns a MemoryError while reading ``info``'s data into a NiftiError naming the file."""
    try:
        yield
    except MemoryError:
        nbytes = int(np.prod(info.shape, dtype=np.int64)) * info.dtype.itemsize
        raise NiftiError(
            info.path,
            f"out of memory reading the {info.shape} {info.dtype.name} "
            f"image ({nbytes / 2**30:.2f} GiB stored)",
        ) from None


def _volume(info: _Parsed, data: np.ndarray) -> NiftiVolume:
    return NiftiVolume(
        data=data,
        affine=info.affine.copy(),
        header=info.header,
        spacing=info.spacing,
        path=str(info.path),
    )


def read_header(path: str | os.PathLike, *, max_voxels: int = DEFAULT_MAX_VOXELS) -> NiftiVolume:
    """Validates a file's header only; returns a NiftiVolume whose ``data`` is empty.

    Cheap (reads a few hundred bytes): for checking shapes and spacing of a
    batch before loading anything.
    """
    info = _inspect(path, max_voxels)
    return _volume(info, np.empty((0, 0, 0), dtype=info.dtype.newbyteorder("=")))


def load_ct(
    path: str | os.PathLike, *, max_voxels: int = DEFAULT_MAX_VOXELS, dtype=np.float32
) -> NiftiVolume:
    """Reads a CT volume in HU (``scl_slope``/``scl_inter`` applied).

    ``dtype=None`` keeps int16 when the stored values are integers and the
    scaled values are integers within int16 range (half the memory of
    float32, for inference), else float32.
    """
    info = _inspect(path, max_voxels)
    with _memory_guard(info):
        return _volume(info, _to_hu(info, _read_raw(info), dtype))


def load_labels(path: str | os.PathLike, *, max_voxels: int = DEFAULT_MAX_VOXELS) -> NiftiVolume:
    """Reads a label map as uint8 with values in {0, 1, 2}.

    Any integer or float storage is accepted when the (scaled) values are
    exactly 0, 1 or 2; otherwise the offending values are listed.
    """
    info = _inspect(path, max_voxels)
    with _memory_guard(info):
        return _volume(info, _to_labels(info, _read_raw(info)))


def load_case(
    volume_path: str | os.PathLike,
    label_path: str | os.PathLike,
    *,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    dtype=np.float32,
    affine_atol: float = 1e-3,
) -> tuple[NiftiVolume, NiftiVolume]:
    """Reads a CT volume and its label map, checked to agree in shape and affine.

    Both headers are compared before any data are read. ``affine_atol`` is the
    tolerance in mm on every affine entry.
    """
    vinfo = _inspect(volume_path, max_voxels)
    linfo = _inspect(label_path, max_voxels)
    if vinfo.shape != linfo.shape:
        raise NiftiError(
            label_path,
            f"shape {linfo.shape} does not match the shape "
            f"{vinfo.shape} of volume {os.fspath(volume_path)}",
        )
    if not np.allclose(vinfo.affine, linfo.affine, rtol=0.0, atol=affine_atol):
        diff = float(np.max(np.abs(vinfo.affine - linfo.affine)))
        raise NiftiError(
            label_path,
            f"affine differs from that of volume {os.fspath(volume_path)} "
            f"(max difference {diff:.4g} > {affine_atol})",
        )
    with _memory_guard(vinfo):
        volume = _volume(vinfo, _to_hu(vinfo, _read_raw(vinfo), dtype))
    with _memory_guard(linfo):
        labels = _volume(linfo, _to_labels(linfo, _read_raw(linfo)))
    return volume, labels
