"""A seeded mutation fuzzer of NIfTI inputs, and the check of one ``infer.py`` run over them.

Cases start from a few small good volumes (``SEEDS``: int16, uint8, uint16
scaled, float32, float64; little and big endian; NIfTI-1 and NIfTI-2;
``.nii`` and ``.nii.gz``; with and without a header extension) and stack 1
to 3 mutations: a header field set to a hostile value, flipped bits or
bytes, a truncation, junk appended or in place of the file, a damaged gzip
stream. Case ``i`` of fuzzer seed ``s`` is ``make_case(s, i)``, the same on
every machine; its ``describe()`` names the base volume and every operator
with its parameters.

``check_run`` holds one run of ``tools/infer.py`` over a directory of cases
to the invariant of issue 18: every input is either written (the output
reopens with nibabel, with the shape and affine the project's reader reads
from the input) or refused with exactly one ``ERROR <path>: ...`` line; no
traceback, no line that names no file, no temporary or partial file, no
output for a refused input, and the summary line agrees. Beyond the
invariant, nibabel must load every written input with the same shape and
affine as the project's reader (unless its compression belies its name,
which only the project's reader tolerates).
``tests/reliability/test_fuzz.py`` runs 200 cases; ``benchmarks/fuzz_campaign.py``
runs thousands with the same code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import logging
import math
import os
import re
import struct
import subprocess
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from tests.reliability import badfiles

ROOT = Path(__file__).resolve().parents[2]
_GZIP_MAGIC = b"\x1f\x8b"

# ----------------------------------------------------------------------------
# Seed volumes


@dataclasses.dataclass(frozen=True)
class Seed:
    """A good volume the mutations start from."""

    name: str
    dtype: str  # stored numpy type, without byte order
    endian: str  # "<" or ">"
    version: int  # NIfTI-1 or NIfTI-2
    gzip: bool
    shape: tuple[int, int, int]
    extension: bool = False
    scaling: tuple[float, float] | None = None  # (scl_slope, scl_inter)
    codes: tuple[int, int] = (1, 1)  # (qform_code, sform_code)
    oblique: bool = False

    @property
    def suffix(self) -> str:
        return ".nii.gz" if self.gzip else ".nii"

    @property
    def header_class(self):
        return nib.Nifti1Header if self.version == 1 else nib.Nifti2Header


SEEDS: tuple[Seed, ...] = (
    Seed("int16-le-n1-gz", "int16", "<", 1, True, (32, 32, 6)),
    Seed("int16-be-n1-ext", "int16", ">", 1, False, (32, 32, 6), extension=True),
    Seed("uint8-le-n1", "uint8", "<", 1, False, (32, 32, 8)),
    Seed("float32-le-n2-gz-oblique", "float32", "<", 2, True, (32, 32, 6), oblique=True),
    Seed("float64-be-n2-ext", "float64", ">", 2, False, (32, 32, 7), extension=True),
    Seed("uint16-le-n1-gz-scaled", "uint16", "<", 1, True, (32, 32, 6), scaling=(1.0, -1024.0)),
    Seed(
        "int16-be-n1-gz-scaled-qform",
        "int16",
        ">",
        1,
        True,
        (32, 32, 6),
        scaling=(2.0, -1000.0),
        codes=(1, 0),
    ),
    Seed(
        "float32-le-n1-gz-ext-sform",
        "float32",
        "<",
        1,
        True,
        (32, 32, 8),
        extension=True,
        codes=(0, 2),
    ),
    Seed("int16-le-n2-ext", "int16", "<", 2, False, (32, 32, 6), extension=True, codes=(2, 1)),
)


def _affine(seed: Seed) -> np.ndarray:
    zooms = np.array([0.8, 0.8, 2.5])
    affine = np.diag([*zooms, 1.0])
    if seed.oblique:
        c, s = math.cos(0.3), math.sin(0.3)
        affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag(zooms)
    affine[:3, 3] = [-12.5, 20.0, -300.0]
    return affine


def _stored_values(seed: Seed) -> np.ndarray:
    hu = badfiles.ct_values(seed.shape, seed=len(seed.name), dtype=np.float64)
    if seed.scaling is not None:
        slope, inter = seed.scaling
        hu = np.round((hu - inter) / slope)
    elif seed.dtype == "uint8":
        hu = np.clip(hu + 1000, 0, 255)
    return hu.astype(seed.dtype)


def _extension_block(endian: str) -> bytes:
    content = b"liverseg fuzz seed extension"
    esize = (8 + len(content) + 15) // 16 * 16
    return struct.pack(endian + "ii", esize, 6) + content.ljust(esize - 8, b"\x00")


@functools.cache
def seed_bytes(seed: Seed) -> bytes:
    """The seed volume as an uncompressed single-file NIfTI."""
    values = _stored_values(seed)
    hdr = seed.header_class(endianness=seed.endian)
    hdr.set_data_dtype(np.dtype(seed.dtype))
    hdr.set_data_shape(values.shape)
    affine = _affine(seed)
    hdr.set_qform(affine, code=seed.codes[0])
    hdr.set_sform(affine, code=seed.codes[1])
    hdr.set_xyzt_units("mm", "sec")
    if seed.scaling is not None:
        hdr["scl_slope"], hdr["scl_inter"] = seed.scaling
    ext = _extension_block(seed.endian) if seed.extension else b""
    hdr["vox_offset"] = len(hdr.binaryblock) + 4 + len(ext)
    flag = b"\x01\x00\x00\x00" if ext else b"\x00" * 4
    return hdr.binaryblock + flag + ext + values.astype(hdr.get_data_dtype()).tobytes(order="F")


# ----------------------------------------------------------------------------
# Hostile values


def _float_values(rng: np.random.Generator, original: float, wide: bool) -> float:
    choices = [
        0.0,
        -0.0,
        -1.0,
        1.0,
        math.nan,
        math.inf,
        -math.inf,
        1e-38,
        -1e-38,
        1e38,
        -1e38,
        float(np.finfo(np.float32).max),
        float(np.finfo(np.float32).tiny) / 4,  # subnormal
        1e300 if wide else 3.5e38,
        original * -1.0,
        original + 0.5,
        original * float(rng.uniform(0.5, 2.0)),
        float(rng.normal() * 10.0 ** rng.integers(-3, 7)),
    ]
    return choices[int(rng.integers(len(choices)))]


def _int_values(rng: np.random.Generator, original: int, dtype: np.dtype) -> int:
    info = np.iinfo(dtype)
    choices = [
        0,
        -1,
        1,
        2,
        3,
        4,
        7,
        8,
        16,
        int(info.min),
        int(info.max),
        int(info.min) + 1,
        int(info.max) - 1,
        original + 1,
        original - 1,
        original * 2,
        int(rng.integers(-10, 600)),
        int(rng.integers(int(info.min), int(info.max), endpoint=True)),
    ]
    value = choices[int(rng.integers(len(choices)))]
    return min(max(value, int(info.min)), int(info.max))


_DATATYPE_CODES = (0, 1, 2, 4, 8, 16, 32, 64, 128, 255, 256, 512, 768, 1024, 1280, 1536, 1792)
_DATATYPE_CODES += (2048, 2304, 999, -1, 32767, -32768)
_MAGICS = (b"n+1\x00", b"n+2\x00", b"ni1\x00", b"ni2\x00", b"\x00" * 4, b"n+1 ", b"N+1\x00")

# Field name -> relative weight; fields not listed get 1.
_FIELD_WEIGHTS = {
    "dim": 8,
    "pixdim": 6,
    "datatype": 5,
    "bitpix": 3,
    "vox_offset": 5,
    "scl_slope": 4,
    "scl_inter": 4,
    "qform_code": 3,
    "sform_code": 3,
    "quatern_b": 2,
    "quatern_c": 2,
    "quatern_d": 2,
    "qoffset_x": 2,
    "srow_x": 3,
    "srow_y": 3,
    "srow_z": 3,
    "magic": 3,
    "sizeof_hdr": 3,
    "dim_info": 2,
    "xyzt_units": 2,
    "intent_code": 2,
    "cal_min": 2,
    "cal_max": 2,
    "slice_code": 2,
    "slice_start": 2,
    "slice_end": 2,
    "slice_duration": 2,
}


def _hostile(rng, field: str, base: np.dtype, original, ctx: _Context):
    """A hostile value for one element of ``field`` (stored as ``base``)."""
    if field == "datatype" and rng.random() < 0.7:
        return _DATATYPE_CODES[int(rng.integers(len(_DATATYPE_CODES)))]
    if field == "vox_offset" and rng.random() < 0.6:
        shifts = (-4, -2, -1, 1, 2, 4, 16, 100, -ctx.data_offset, 4 - ctx.data_offset)
        return ctx.data_offset + shifts[int(rng.integers(len(shifts)))]
    if field == "sizeof_hdr" and rng.random() < 0.5:
        return (348, 540, 347, 349, 0, 1543569408, 469893120)[int(rng.integers(7))]
    if field == "dim" and rng.random() < 0.5:
        return (0, -1, 1, 2, 3, 4, 5, 8, 16, 31, 33, 64, 1024)[int(rng.integers(13))]
    if base.kind == "f":
        return _float_values(rng, float(original), base.itemsize == 8)
    if base.kind in "iu":
        return _int_values(rng, int(original), base)
    raise AssertionError(base)


@dataclasses.dataclass(frozen=True)
class _Context:
    seed: Seed
    hdr_size: int
    data_offset: int
    itemsize: int


# ----------------------------------------------------------------------------
# Operators. Each takes (rng, data, ctx) and returns (new data, parameters).


def field_view(buf: bytearray, header_class, endian: str, field: str) -> np.ndarray:
    """The elements of a numeric header ``field`` inside ``buf``: writable, in the file's byte order."""
    ftype, offset = header_class.template_dtype.fields[field][:2]
    count = int(np.prod(ftype.shape)) if ftype.shape else 1
    return np.ndarray((count,), dtype=ftype.base.newbyteorder(endian), buffer=buf, offset=offset)


def set_field(data: bytes, header_class, endian: str, field: str, value, index: int = 0) -> bytes:
    """``data`` with one element of a header field (bytes for text fields) set to ``value``,
    cast to the field's type as a C program writing the header would."""
    buf = bytearray(data)
    ftype, offset = header_class.template_dtype.fields[field][:2]
    if ftype.kind == "S":
        buf[offset : offset + ftype.itemsize] = value[: ftype.itemsize].ljust(ftype.itemsize, b"\0")
    else:
        view = field_view(buf, header_class, endian, field)
        with np.errstate(over="ignore", invalid="ignore"):
            view[index] = np.asarray(value).astype(view.dtype)
    return bytes(buf)


def _set_field(rng, data: bytes, ctx: _Context):
    klass, endian = ctx.seed.header_class, ctx.seed.endian
    dtype = klass.template_dtype
    names = list(dtype.names)
    weights = np.array([_FIELD_WEIGHTS.get(n, 1) for n in names], dtype=float)
    field = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    ftype = dtype.fields[field][0]
    if ftype.kind == "S":
        size = ftype.itemsize
        if field == "magic":
            value = _MAGICS[int(rng.integers(len(_MAGICS)))]
        else:
            kinds = (b"\x00" * size, rng.bytes(size), b"line one\nline two\r\n\x1b[31m")
            value = kinds[int(rng.integers(3))]
        value = value[:size].ljust(size, b"\x00")
        return set_field(data, klass, endian, field, value), {
            "field": field,
            "value": value.rstrip(b"\x00").hex(),
        }
    buf = bytearray(data)
    view = field_view(buf, klass, endian, field)
    index = int(rng.integers(view.size))
    if field == "dim" and rng.random() < 0.7:
        index = int(rng.integers(4))
    if field == "pixdim" and rng.random() < 0.8:
        index = int(rng.integers(4))
    value = _hostile(rng, field, view.dtype, view[index], ctx)
    if field.startswith("srow") and rng.random() < 0.2:
        view[:] = 0
        value = "row of zeros"
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            view[index] = np.asarray(value).astype(view.dtype)
    params = {"field": field, "value": _shown(value)}
    if view.size > 1:
        params["index"] = index
    return bytes(buf), params


def _shown(value):
    """A JSON-safe, repr-stable form of a value."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value)) if not math.isfinite(value) else float(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return value


def _set_extension(rng, data: bytes, ctx: _Context):
    at = ctx.hdr_size
    targets = ["flag"] + (["esize", "ecode"] if ctx.seed.extension else [])
    target = targets[int(rng.integers(len(targets)))]
    buf = bytearray(data)
    if target == "flag":
        value = (0, 1, 2, 255, int(rng.integers(256)))[int(rng.integers(5))]
        buf[at] = value
        if rng.random() < 0.3:
            buf[at + 1 : at + 4] = rng.bytes(3)
    else:
        value = _int_values(rng, 32, np.dtype(np.int32))
        off = at + 4 + (0 if target == "esize" else 4)
        buf[off : off + 4] = struct.pack(ctx.seed.endian + "i", value)
    return bytes(buf), {"target": target, "value": value}


def _flip_header_bits(rng, data: bytes, ctx: _Context):
    n = int(rng.integers(1, 9))
    bits = sorted(int(b) for b in rng.choice(ctx.hdr_size * 8, size=n, replace=False))
    buf = bytearray(data)
    for bit in bits:
        buf[bit // 8] ^= 1 << (bit % 8)
    return bytes(buf), {"bits": bits}


def _flip_data_bytes(rng, data: bytes, ctx: _Context):
    span = len(data) - ctx.data_offset
    n = min(int(rng.integers(1, 17)), span)
    where = sorted(int(p) + ctx.data_offset for p in rng.choice(span, size=n, replace=False))
    buf = bytearray(data)
    for p in where:
        buf[p] ^= int(rng.integers(1, 256))
    return bytes(buf), {"count": n, "first": where[0]}


def _poison_voxels(rng, data: bytes, ctx: _Context):
    stored = np.dtype(ctx.seed.dtype).newbyteorder(ctx.seed.endian)
    values = np.frombuffer(data, dtype=stored, offset=ctx.data_offset).copy()
    kind = int(rng.integers(4))
    if stored.kind == "f":
        value = (math.nan, math.inf, -math.inf, float(np.finfo(stored).max))[kind]
    else:
        info = np.iinfo(stored)
        value = (info.min, info.max, 0, info.max // 2)[kind]
    n = int(rng.integers(1, 6))
    values[rng.choice(values.size, size=n, replace=False)] = value
    return data[: ctx.data_offset] + values.tobytes(), {"count": n, "value": _shown(value)}


def _truncate(rng, data: bytes, ctx: _Context):
    points = (
        int(rng.integers(0, ctx.hdr_size)),
        ctx.hdr_size,
        ctx.data_offset,
        int(rng.integers(ctx.data_offset, max(ctx.data_offset + 1, len(data)))),
        len(data) - 1,
        len(data) - ctx.itemsize,
    )
    length = max(0, min(points[int(rng.integers(len(points)))], len(data) - 1))
    return data[:length], {"length": length, "of": len(data)}


def _junk(rng, kind: str, n: int) -> bytes:
    if kind == "zeros":
        return b"\x00" * n
    if kind == "text":
        return (b"not image data\n" * (n // 15 + 1))[:n]
    return rng.bytes(n)


def _append(rng, data: bytes, ctx: _Context):
    kinds = ["zeros", "random", "text", "copy"]
    if ctx.seed.gzip:
        kinds.append("17MiB-zeros")  # over the 16 MiB of tolerated trailing bytes
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "17MiB-zeros":
        return data + b"\x00" * (17 * 2**20), {"kind": kind}
    if kind == "copy":
        return data + data[ctx.data_offset :], {"kind": kind}
    n = int(rng.integers(1, 65536))
    return data + _junk(rng, kind, n), {"kind": kind, "bytes": n}


def _replace_with_junk(rng, data: bytes, ctx: _Context):
    kinds = ("empty", "random", "text", "gzip-magic", "gzip-random", "gzip-empty", "header-only")
    kind = kinds[int(rng.integers(len(kinds)))]
    n = int(rng.integers(1, 4097))
    if kind == "empty":
        return b"", {"kind": kind}
    if kind in ("random", "text"):
        return _junk(rng, kind, n), {"kind": kind, "bytes": n}
    if kind == "gzip-magic":
        return _GZIP_MAGIC + rng.bytes(n), {"kind": kind, "bytes": n}
    if kind == "gzip-random":
        return gzip.compress(rng.bytes(n), mtime=0), {"kind": kind, "bytes": n}
    if kind == "gzip-empty":
        return gzip.compress(b"", mtime=0), {"kind": kind}
    return data[: ctx.data_offset], {"kind": kind}


def _recompress(rng, data: bytes, ctx: _Context):
    """Marks the case for the other compression; its name keeps the seed's suffix."""
    return data, {"to": "plain" if ctx.seed.gzip else "gzip"}


# gzip member: 10-byte header (no optional fields, as gzip.compress writes it),
# deflate data, CRC32 and ISIZE.


def _flip_deflate(rng, blob: bytes, ctx: _Context):
    n = int(rng.integers(1, 5))
    where = sorted(int(p) for p in rng.choice(np.arange(10, len(blob) - 8), size=n, replace=False))
    buf = bytearray(blob)
    for p in where:
        buf[p] ^= int(rng.integers(1, 256))
    return bytes(buf), {"bytes": where}


def _cut_stream(rng, blob: bytes, ctx: _Context):
    points = (
        int(rng.integers(1, 10)),
        int(rng.integers(10, max(11, len(blob) - 8))),
        len(blob) - int(rng.integers(1, 9)),
    )
    length = max(0, min(points[int(rng.integers(3))], len(blob) - 1))
    return blob[:length], {"length": length, "of": len(blob)}


def _corrupt_trailer(rng, blob: bytes, ctx: _Context):
    which = ("crc", "isize")[int(rng.integers(2))]
    mode = ("xor1", "random", "zero")[int(rng.integers(3))]
    at = len(blob) - (8 if which == "crc" else 4)
    buf = bytearray(blob)
    if mode == "xor1":
        buf[at] ^= 1
    elif mode == "random":
        buf[at : at + 4] = rng.bytes(4)
    else:
        buf[at : at + 4] = b"\x00" * 4
    return bytes(buf), {"field": which, "mode": mode}


def _concat_streams(rng, blob: bytes, ctx: _Context):
    kinds = ("same", "empty", "random", "zeros", "cut")
    kind = kinds[int(rng.integers(len(kinds)))]
    if kind == "same":
        second = blob
    elif kind == "empty":
        second = gzip.compress(b"", mtime=0)
    elif kind == "random":
        second = gzip.compress(rng.bytes(int(rng.integers(1, 4096))), mtime=0)
    elif kind == "zeros":
        second = gzip.compress(b"\x00" * int(rng.integers(1, 65536)), mtime=0)
    else:
        second = blob[: len(blob) // 2]
    return blob + second, {"second": kind}


def _gzip_header(rng, blob: bytes, ctx: _Context):
    kinds = ("flags", "fname", "fextra-garbage", "method", "xfl-os")
    kind = kinds[int(rng.integers(len(kinds)))]
    buf = bytearray(blob)
    if kind == "flags":
        value = int(rng.integers(1, 256))
        buf[3] = value
        return bytes(buf), {"kind": kind, "flg": value}
    if kind == "fname":
        buf[3] |= 0x08
        return bytes(buf[:10]) + b"volume \xff\n.nii\x00" + bytes(buf[10:]), {"kind": kind}
    if kind == "fextra-garbage":
        buf[3] |= 0x04
        xlen = int(rng.integers(0, 65536))
        return bytes(buf[:10]) + struct.pack("<H", xlen) + bytes(buf[10:]), {
            "kind": kind,
            "xlen": xlen,
        }
    if kind == "method":
        value = int(rng.integers(0, 256))
        buf[2] = value
        return bytes(buf), {"kind": kind, "cm": value}
    buf[8], buf[9] = int(rng.integers(256)), int(rng.integers(256))
    return bytes(buf), {"kind": kind}


def _junk_after_stream(rng, blob: bytes, ctx: _Context):
    kinds = ("random", "zeros", "text")
    kind = kinds[int(rng.integers(3))]
    n = int(rng.integers(1, 2049))
    return blob + _junk(rng, kind, n), {"kind": kind, "bytes": n}


@dataclasses.dataclass(frozen=True)
class Operator:
    """A mutation: ``apply(rng, data, ctx) -> (data, parameters)`` at one stage of the file.

    Stages, applied in this order: "header" and "data" edit the uncompressed
    NIfTI in place, "length" cuts or extends it, "container" switches the
    compression, "gzip" damages the compressed stream, "file" replaces the bytes.
    """

    name: str
    stage: str
    weight: float
    apply: Callable
    gzip_only: bool = False


OPERATORS: tuple[Operator, ...] = (
    Operator("set_field", "header", 12, _set_field),
    Operator("set_extension", "header", 2, _set_extension),
    Operator("flip_header_bits", "header", 4, _flip_header_bits),
    Operator("flip_data_bytes", "data", 3, _flip_data_bytes),
    Operator("poison_voxels", "data", 2, _poison_voxels),
    Operator("truncate", "length", 3, _truncate),
    Operator("append", "length", 2, _append),
    Operator("recompress", "container", 1, _recompress),
    Operator("flip_deflate", "gzip", 2, _flip_deflate, gzip_only=True),
    Operator("corrupt_trailer", "gzip", 2, _corrupt_trailer, gzip_only=True),
    Operator("gzip_header", "gzip", 2, _gzip_header, gzip_only=True),
    Operator("concat_streams", "gzip", 2, _concat_streams, gzip_only=True),
    Operator("junk_after_stream", "gzip", 2, _junk_after_stream, gzip_only=True),
    Operator("cut_stream", "gzip", 2, _cut_stream, gzip_only=True),
    Operator("replace_with_junk", "file", 1, _replace_with_junk),
)
_ORDER = {op.name: i for i, op in enumerate(OPERATORS)}
_STAGES = ("header", "data", "length", "container", "gzip", "file")


# ----------------------------------------------------------------------------
# Cases


@dataclasses.dataclass(frozen=True)
class Case:
    """One fuzzed input: where it came from, what was done to it, its bytes."""

    fuzz_seed: int
    index: int
    base: str
    name: str
    ops: tuple[tuple[str, dict], ...]
    data: bytes = dataclasses.field(repr=False, compare=False)

    def describe(self) -> str:
        ops = " + ".join(
            f"{name}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
            for name, params in self.ops
        )
        return f"make_case({self.fuzz_seed}, {self.index}): {self.base}: {ops or 'unchanged'}"

    def write(self, directory: Path) -> Path:
        path = directory / self.name
        path.write_bytes(self.data)
        return path


def _pick_operators(rng, seed: Seed) -> list[Operator]:
    """1 to 3 operators, in stage order; a recompressed file gets no gzip damage and
    junk replacing the file comes alone."""
    count = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
    chosen: list[Operator] = []
    for _ in range(count):
        names = {op.name for op in chosen}
        if "replace_with_junk" in names:
            break
        gzip_damage = any(op.stage == "gzip" for op in chosen)
        allowed = [
            op
            for op in OPERATORS
            if not (op.gzip_only and (not seed.gzip or "recompress" in names))
            and not (op.name == "recompress" and ("recompress" in names or gzip_damage))
            and not (op.name == "replace_with_junk" and chosen)
        ]
        weights = np.array([op.weight for op in allowed])
        chosen.append(allowed[int(rng.choice(len(allowed), p=weights / weights.sum()))])
    return sorted(chosen, key=lambda op: (_STAGES.index(op.stage), _ORDER[op.name]))


def make_case(fuzz_seed: int, index: int) -> Case:
    """Case ``index`` of fuzzer seed ``fuzz_seed``: the same bytes on every run."""
    rng = np.random.default_rng([fuzz_seed, index])
    seed = SEEDS[int(rng.integers(len(SEEDS)))]
    data = seed_bytes(seed)
    itemsize = np.dtype(seed.dtype).itemsize
    hdr_size = seed.header_class.template_dtype.itemsize
    ctx = _Context(seed, hdr_size, len(data) - int(np.prod(seed.shape)) * itemsize, itemsize)
    compress, encoded, ops = seed.gzip, False, []
    for op in _pick_operators(rng, seed):
        if op.stage == "container":
            compress = not compress
        elif op.stage in ("gzip", "file") and not encoded:
            data, encoded = (gzip.compress(data, mtime=0) if compress else data), True
        data, params = op.apply(rng, data, ctx)
        ops.append((op.name, params))
    if compress and not encoded:
        data = gzip.compress(data, mtime=0)
    return Case(fuzz_seed, index, seed.name, f"volume-{index}{seed.suffix}", tuple(ops), data)


def make_cases(fuzz_seed: int, start: int, count: int) -> list[Case]:
    return [make_case(fuzz_seed, i) for i in range(start, start + count)]


# ----------------------------------------------------------------------------
# Checking one infer.py run

VIOLATION_KINDS = (
    "traceback",  # "Traceback" anywhere in the output
    "partial_file",  # a temporary or unexpected file in the output directory
    "not_reopening",  # an output nibabel (or the project's load_labels) cannot load
    "wrong_geometry",  # an output whose shape, affine or labels differ from the input's
    "output_for_refused",  # an output for an input that was refused
    "unnamed_line",  # a stderr / stdout line that is neither a known line nor names a file
    "missing_line",  # an input with no output and no error line
    "several_lines",  # an input with more than one error line
    "unexpected_error",  # an error line reporting an unexpected exception (a bug)
    "reader_disagrees",  # written, but the project's reader refuses the input
    "nibabel_disagrees",  # written, but nibabel refuses the input or reads another geometry
    "summary",  # exit status or summary line not matching the counts
)

# Refusal reason classes, first match wins (the problem text after "<path>: ").
REASON_CLASSES: tuple[tuple[str, str], ...] = (
    ("unexpected exception (bug)", r"^unexpected |internal error"),
    ("empty file", r"^file is empty"),
    ("truncated", r"truncated|cannot hold"),
    ("not NIfTI (size or magic)", r"not a NIfTI file|\.hdr/\.img pair"),
    ("header extension", r"extension"),
    ("NIfTI-2 EOL check bytes", r"EOL check"),
    ("dimensions", r"dim\[0\]|zero or negative dimension|expected a 3D volume|over the limit"),
    ("voxel size", r"voxel size"),
    ("data type", r"data type"),
    ("vox_offset", r"vox_offset"),
    ("non-finite voxels", r"non-finite"),
    ("scaling", r"corrupt scaling"),
    ("orientation", r"orientation|affine"),
    ("trailing data", r"after the image"),
    ("too small for the cascade", r"slice\(s\)|at least 16x16|at least 3"),
    ("written file would not reopen", r"would not reopen|reopens with shape"),
    ("corrupt gzip stream", r"corrupt file|gzip|decompress|CRC|checksum"),
    ("other", r""),
)

_STDOUT_OK = (
    re.compile(r"^post-processing: .*; grid: .*$"),
    re.compile(r"^volume \d+/\d+  failed \d+  [\d.]+ volumes/s  ETA .*$"),
)
_SUMMARY = re.compile(r"^(\d+) written, (\d+) skipped, (\d+) failed -> (.*)$")
_INFO_OK = (
    re.compile(r"^INFO \d+/\d+ (\S+) -> (\S+): "),  # a written case, by file name
    re.compile(r"^INFO \d+/\d+ \w+ \d+/\d+  "),  # a stage's progress within a case
    re.compile(r"^INFO done in \S+: \d+ written, \d+ skipped, \d+ failed$"),
)
_LEVEL = re.compile(r"^(ERROR|WARNING|INFO) (.*)$")


def reason_class(problem: str) -> str:
    for name, pattern in REASON_CLASSES:
        if re.search(pattern, problem):
            return name
    return "other"


@dataclasses.dataclass
class Violation:
    kind: str
    detail: str
    case: Case | None = None

    def __str__(self) -> str:
        where = f" [{self.case.describe()}]" if self.case is not None else ""
        return f"{self.kind}: {self.detail}{where}"


@dataclasses.dataclass
class Outcome:
    """What one run did with its cases."""

    written: list[Case] = dataclasses.field(default_factory=list)
    refused: list[tuple[Case, str]] = dataclasses.field(default_factory=list)  # (case, problem)
    warned: int = 0  # inputs with at least one WARNING line
    violations: list[Violation] = dataclasses.field(default_factory=list)

    def report(self, limit: int = 30) -> str:
        lines = [str(v) for v in self.violations[:limit]]
        more = len(self.violations) - len(lines)
        return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))


def _named(rest: str, paths: dict[str, Case]) -> tuple[Case, str] | None:
    """``(case, problem)`` when ``rest`` is ``<known path>: <problem>``."""
    head, sep, problem = rest.partition(": ")
    if sep and head in paths:
        return paths[head], problem
    return None


@contextlib.contextmanager
def quiet_nibabel():
    """nibabel's header-check messages and Python warnings dropped meanwhile.

    (nibabel's own ``LoggingOutputSuppressor`` removes its handler for good
    and lets the messages reach the root logger's handlers.)
    """
    log = logging.getLogger("nibabel.global")
    disabled, log.disabled = log.disabled, True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.disabled = disabled


def _check_output(case: Case, src: Path, output: Path) -> Violation | None:
    from liverseg.data import nifti
    from liverseg.errors import NiftiError

    try:
        with quiet_nibabel():
            image = nib.load(output)
            labels = np.asarray(image.dataobj)
            affine = image.affine
    except Exception as exc:
        return Violation("not_reopening", f"{output.name}: {type(exc).__name__}: {exc}", case)
    try:
        nifti.load_labels(output)  # as evaluate.py reads it
    except NiftiError as exc:
        return Violation("not_reopening", f"load_labels: {exc}", case)
    try:
        source = nifti.load_ct(src / case.name, dtype=None)
    except NiftiError as exc:
        return Violation("reader_disagrees", f"written, but load_ct says: {exc}", case)
    if case.data.startswith(_GZIP_MAGIC) == case.name.endswith(".gz"):  # nibabel goes by name
        try:
            with quiet_nibabel():
                theirs = nib.load(src / case.name)
            shape, their_affine = theirs.shape, theirs.affine
        except Exception as exc:
            return Violation("nibabel_disagrees", f"input: {type(exc).__name__}: {exc}", case)
        if shape[:3] != source.shape or any(d != 1 for d in shape[3:]):
            return Violation("nibabel_disagrees", f"input shape {shape}, ours {source.shape}", case)
        if not np.allclose(their_affine, source.affine, rtol=1e-5, atol=1e-4):
            return Violation(
                "nibabel_disagrees",
                f"input affine {their_affine.tolist()}, ours {source.affine}",
                case,
            )
    if tuple(labels.shape) != tuple(source.shape[:3]) or labels.shape != image.shape:
        return Violation(
            "wrong_geometry", f"output shape {labels.shape}, input {source.shape}", case
        )
    if affine is None or not np.allclose(affine, source.affine, rtol=1e-5, atol=1e-4):
        return Violation(
            "wrong_geometry", f"output affine {affine.tolist()} != input {source.affine}", case
        )
    if labels.size and not set(np.unique(labels).tolist()) <= {0, 1, 2}:
        return Violation("wrong_geometry", "labels outside {0, 1, 2}", case)
    return None


def check_run(
    cases: Sequence[Case],
    src: Path,
    out: Path,
    returncode: int,
    stdout: str,
    stderr: str,
    output_name: Callable[[str], str],
) -> Outcome:
    """Holds one ``infer.py --input_dir=src --output_dir=out`` run to the invariant.

    ``src`` and ``out`` are the directories as given on the command line;
    ``output_name`` maps an input file name to its label map's name.
    """
    outcome = Outcome()
    by_input = {str(src / c.name): c for c in cases}
    outputs = {c.name: out / output_name(c.name) for c in cases}
    by_output = {str(outputs[c.name]): c for c in cases}
    by_name = {c.name: c for c in cases}
    bad = outcome.violations

    for stream, text in (("stdout", stdout), ("stderr", stderr)):
        if "Traceback" in text:
            bad.append(Violation("traceback", f"{stream}: {text[text.index('Traceback') :][:800]}"))

    errors: dict[str, list[str]] = {c.name: [] for c in cases}
    warned: set[str] = set()
    info_named: set[str] = set()
    summary = None
    for line in stdout.splitlines():
        match = _SUMMARY.match(line)
        if match:
            summary = tuple(int(match.group(i)) for i in (1, 2, 3))
        elif not any(p.match(line) for p in _STDOUT_OK):
            bad.append(Violation("unnamed_line", f"stdout: {line[:300]!r}"))
    for line in stderr.splitlines():
        match = _LEVEL.match(line)
        if match is None:
            bad.append(Violation("unnamed_line", f"stderr: {line[:300]!r}"))
            continue
        level, rest = match.groups()
        if level == "INFO":
            written = _INFO_OK[0].match(line)
            if written and written.group(1) in by_name:
                info_named.add(written.group(1))
            elif not any(p.match(line) for p in _INFO_OK[1:]):
                bad.append(Violation("unnamed_line", f"stderr: {line[:300]!r}"))
            continue
        named = _named(rest, by_input) or _named(rest, by_output)
        if named is None:
            bad.append(Violation("unnamed_line", f"stderr: {line[:300]!r}"))
            continue
        case, problem = named
        if level == "ERROR":
            errors[case.name].append(problem)
        else:
            warned.add(case.name)
    outcome.warned = len(warned)

    listing = set(os.listdir(out)) if out.is_dir() else set()
    expected_files = {"inference_options.json"}
    for case in cases:
        output = outputs[case.name]
        problems = errors[case.name]
        exists = output.name in listing
        if exists:
            expected_files.add(output.name)
        if len(problems) > 1:
            bad.append(Violation("several_lines", " | ".join(problems)[:600], case))
        if problems:
            for problem in problems:
                if reason_class(problem) == "unexpected exception (bug)":
                    bad.append(Violation("unexpected_error", problem[:400], case))
            if exists:
                bad.append(Violation("output_for_refused", output.name, case))
            outcome.refused.append((case, problems[0]))
            continue
        if not exists:
            bad.append(Violation("missing_line", "no output and no ERROR line", case))
            continue
        if case.name not in info_named:
            bad.append(Violation("missing_line", "written without its INFO line", case))
        violation = _check_output(case, src, output)
        if violation is None:
            outcome.written.append(case)
        else:
            bad.append(violation)
    for extra in sorted(listing - expected_files):
        bad.append(Violation("partial_file", f"{out / extra}"))

    counts = (len(outcome.written), 0, len(outcome.refused))
    if summary is None:
        bad.append(Violation("summary", "no 'N written, N skipped, N failed' line on stdout"))
    elif summary[0] + summary[2] != len(cases) or summary[2] != len(outcome.refused):
        bad.append(Violation("summary", f"summary {summary}, counted {counts}"))
    if returncode != (1 if outcome.refused else 0):
        bad.append(Violation("summary", f"exit status {returncode} with {counts}"))
    return outcome


def run_infer(
    cases: Sequence[Case],
    root: Path,
    liver_model: Path,
    tumor_model: Path,
    output_name: Callable[[str], str],
    timeout: int = 3000,
) -> Outcome:
    """Writes ``cases`` to ``root/in``, runs ``tools/infer.py`` on them once and checks the run."""
    src, out = root / "in", root / "out"
    src.mkdir(parents=True)
    for case in cases:
        case.write(src)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
    )
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "infer.py"),
            f"--input_dir={src}",
            f"--output_dir={out}",
            f"--liver_model={liver_model}",
            f"--tumor_model={tumor_model}",
        ],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        env=env,
        cwd=str(ROOT),
        timeout=timeout,
        check=False,
    )
    return check_run(cases, src, out, done.returncode, done.stdout, done.stderr, output_name)
