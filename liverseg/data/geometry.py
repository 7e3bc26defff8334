"""Orientation and in-plane pixel spacing of a model's training data, and the
grid transform that brings any volume to them and a result back.

A network learns anatomy in the orientation and at the pixel size it was
trained on: a CT stored with two axes flipped, or with pixels 5 times smaller,
looks like something else to it. A model therefore records a
:class:`Geometry` (orientation codes and in-plane pixel spacing, the median of
its training volumes as nnU-Net's target spacing), and inference moves every
input to that grid with :class:`GridTransform` and the result back.

Grids:

* storage grid: the array as stored (``NiftiVolume.data``, x, y, z);
* reoriented grid: the same voxels, axes permuted and flipped so that they
  point to ``Geometry.orientation`` (nibabel axis codes; an oblique volume
  takes its closest axes). Always a numpy view;
* model grid: the reoriented grid resampled in-plane (axes 0 and 1) to
  ``Geometry.pixel_spacing``; the slice axis (2) is never resampled.

Resampling keeps the field of view: an axis of ``n`` pixels of ``s`` mm
becomes ``round(n * s / target)`` pixels (at least 16, the networks'
minimum) that cover the same extent, so the model spacing is
``s * n / m``, within half a pixel over the field of view of the target.
Pixel areas are aligned (output pixel ``j`` is centred on input coordinate
``(j + 0.5) * n / m - 0.5``: ``scipy.ndimage.zoom(grid_mode=True)`` and
TensorFlow's half-pixel-centre resize). An axis whose spacing is within 1 %
of the target is not resampled; when neither is, the arrays are views.

Interpolation (``order``):

* 1 (images, probabilities): linear interpolation at the output pixel
  centres; when downsampling, after a low-pass on the input grid (a
  symmetric triangle kernel reaching one output pixel to each side, cut at
  the image and renormalised there; edge values extend, ``mode="nearest"``).
  Reducing 0.8 mm CT to 3.9 mm by two-tap interpolation would keep most of
  the per-pixel noise and alias it (white noise of sd 20 HU comes out at
  13 HU; with the low-pass at 2.7 HU, as a coarser scanner's pixel averages
  it, like TensorFlow's antialiased resize).
  The low-pass is symmetric about input pixels, so linear ramps stay exact
  away from the edges (TensorFlow's antialiased resize, a tent centred on the
  output pixel, is not exact at non-integer factors); upsampling is plain
  linear interpolation (``scipy.ndimage.zoom(order=1, grid_mode=True,
  mode="nearest")``).
* 0 (labels): the input pixel under each output pixel's centre; values and
  dtype are kept.

Both are separable: each in-plane axis is a small matrix of weights
(output x input), applied slab by slab in float32 so memory stays near the
output's size.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Iterable, Sequence

import numpy as np
from nibabel import orientations as ornt_lib

from liverseg.errors import ConfigError

AXIS_CODE_PAIRS = (("L", "R"), ("P", "A"), ("I", "S"))
"""nibabel's anatomical axis codes (world axes x, y, z of RAS+ space)."""

SAME_SPACING_RTOL = 0.01
"""An axis whose spacing is this close (relative) to the target is not resampled."""

MIN_MODEL_PIXELS = 16
"""Smallest in-plane size a resampled axis gets (the networks' minimum input)."""

ORDERS = (0, 1)

_SLAB_VOXELS = 2**22  # voxels resampled at a time (16 MiB of float32)
_BLOCK_ROWS = 16  # output pixels per block of a banded weight matrix (measured best)


# ----------------------------------------------------------------------------
# Geometry


def _config_error(field: str, value, why: str) -> ConfigError:
    return ConfigError(f"geometry {field} {value!r}: {why}")


def _checked_orientation(value) -> str:
    if not isinstance(value, str) or len(value) != 3:
        raise _config_error("orientation", value, "expected three axis codes such as 'RAS'")
    codes = value.upper()
    for pair in AXIS_CODE_PAIRS:
        if sum(c in pair for c in codes) != 1:
            raise _config_error(
                "orientation",
                value,
                f"needs exactly one of {'/'.join(pair)} (codes: L/R, P/A, I/S, one per axis)",
            )
    return codes


def _checked_spacing(value) -> tuple[float, float] | None:
    if value is None:
        return None
    why = "expected two positive finite pixel sizes in mm (or None: no resampling)"
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise _config_error("pixel_spacing", value, why)
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise _config_error("pixel_spacing", value, why)
        if not (math.isfinite(float(v)) and float(v) > 0):
            raise _config_error("pixel_spacing", value, why)
        out.append(float(v))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Grid a model was trained on: orientation and in-plane pixel spacing.

    ``orientation``: three nibabel axis codes, the anatomical direction each
    voxel axis points to (``"LPS"``: axis 0 towards the patient's left, ...).
    ``pixel_spacing``: mm of voxel axes 0 and 1 after reorientation; None
    keeps every volume's own spacing (reorientation only).
    """

    orientation: str
    pixel_spacing: tuple[float, float] | None = None

    def __post_init__(self):
        object.__setattr__(self, "orientation", _checked_orientation(self.orientation))
        object.__setattr__(self, "pixel_spacing", _checked_spacing(self.pixel_spacing))

    def to_dict(self) -> dict:
        """JSON-able form (``from_dict`` reads it back)."""
        spacing = None if self.pixel_spacing is None else list(self.pixel_spacing)
        return {"orientation": self.orientation, "pixel_spacing": spacing}

    @classmethod
    def from_dict(cls, data) -> Geometry:
        """A Geometry from ``to_dict``'s form; ConfigError on anything else."""
        if not isinstance(data, dict):
            raise ConfigError(f"geometry must be a mapping, got {type(data).__name__}")
        keys = set(data)
        if keys != {"orientation", "pixel_spacing"}:
            missing = sorted({"orientation", "pixel_spacing"} - keys)
            unknown = sorted(keys - {"orientation", "pixel_spacing"}, key=str)
            raise ConfigError(
                f"geometry needs keys 'orientation' and 'pixel_spacing'"
                f"{'; missing ' + ', '.join(missing) if missing else ''}"
                f"{'; unknown ' + ', '.join(map(repr, unknown)) if unknown else ''}"
            )
        return cls(data["orientation"], data["pixel_spacing"])


def axis_codes(affine: np.ndarray) -> str:
    """Orientation codes of the voxel axes of ``affine`` (closest axes for obliques)."""
    codes = ornt_lib.aff2axcodes(np.asarray(affine, dtype=np.float64))
    if None in codes:
        raise ValueError(f"affine has no clear axis directions (codes {codes}): is it singular?")
    return "".join(codes)


def _orientation_transform(affine: np.ndarray, target: str) -> np.ndarray:
    """nibabel orientation transform (input axis -> target axis, flip) of ``affine``."""
    start = ornt_lib.axcodes2ornt(axis_codes(affine))
    return ornt_lib.ornt_transform(start, ornt_lib.axcodes2ornt(target))


def _apply(array: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """``array`` reoriented by ``transform``: a view, or ``array`` itself for the identity."""
    if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
        return array
    return ornt_lib.apply_orientation(array, transform)


def _reoriented(values: Sequence, transform: np.ndarray) -> tuple:
    """Per-axis ``values`` of the input, in the reoriented axis order."""
    out = [None] * len(values)
    for axis, (new_axis, _) in enumerate(transform):
        out[int(new_axis)] = values[axis]
    return tuple(out)


def _default_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0)))


def infer_training_geometry(
    items: Iterable[tuple[np.ndarray, Sequence[int], Sequence[float]]],
) -> Geometry:
    """Geometry of a training set from its volumes' ``(affine, shape, spacing)``.

    Orientation: the most common one (ties: the first seen). Pixel spacing:
    per in-plane axis, the median over all volumes after bringing each to
    that orientation (nnU-Net's target spacing).
    """
    volumes = []
    for affine, shape, spacing in items:
        if len(shape) != 3 or len(spacing) != 3:
            raise ValueError(f"expected 3D shape and spacing, got {shape} and {spacing}")
        volumes.append((axis_codes(affine), tuple(float(s) for s in spacing)))
    if not volumes:
        raise ValueError("no training volumes to infer a geometry from")
    orientation = collections.Counter(codes for codes, _ in volumes).most_common(1)[0][0]
    in_plane = [
        _reoriented(
            spacing,
            ornt_lib.ornt_transform(
                ornt_lib.axcodes2ornt(codes), ornt_lib.axcodes2ornt(orientation)
            ),
        )[:2]
        for codes, spacing in volumes
    ]
    median = np.median(np.asarray(in_plane, dtype=np.float64), axis=0)
    return Geometry(orientation, (float(median[0]), float(median[1])))


# ----------------------------------------------------------------------------
# Resampling weights


def resampled_size(n: int, spacing: float, target: float) -> int:
    """Pixels of an axis of ``n`` pixels of ``spacing`` mm resampled to ``target`` mm.

    ``n`` when the spacings agree within ``SAME_SPACING_RTOL``; otherwise
    ``round(n * spacing / target)``, at least ``MIN_MODEL_PIXELS``.
    """
    if abs(spacing / target - 1.0) <= SAME_SPACING_RTOL:
        size = n
    else:
        size = int(math.floor(n * spacing / target + 0.5))
    return max(size, MIN_MODEL_PIXELS) if size != n else n


def _centres(n_in: int, n_out: int) -> np.ndarray:
    """Input coordinates of the output pixel centres (pixel areas aligned)."""
    return (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """Input pixel under each output pixel's centre."""
    idx = np.floor((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.intp)
    return np.clip(idx, 0, n_in - 1)


def _tent_rows(centres: np.ndarray, n_in: int, half: float) -> np.ndarray:
    """Rows of a triangle kernel of half-width ``half`` around integer ``centres``,
    cut at the image's edges and renormalised (half 1: identity rows)."""
    w = np.maximum(1.0 - np.abs(np.arange(n_in)[None, :] - centres[:, None]) / half, 0.0)
    return w / w.sum(axis=1, keepdims=True)


def linear_weights(n_in: int, n_out: int) -> np.ndarray:
    """float32 (n_out, n_in) weights of linear resampling, rows summing to 1.

    Linear interpolation at the output pixel centres (edge values extend),
    after a low-pass when downsampling: a triangle kernel as wide as one output
    pixel on each side, centred on input pixels. Being symmetric, it keeps
    linear ramps exact away from the edges.
    """
    c = np.clip(_centres(n_in, n_out), 0.0, n_in - 1.0)
    i0 = np.minimum(np.floor(c), max(n_in - 2, 0))
    d = (c - i0)[:, None]
    i1 = np.minimum(i0 + 1, n_in - 1)
    half = max(n_in / n_out, 1.0)
    w = (1.0 - d) * _tent_rows(i0, n_in, half) + d * _tent_rows(i1, n_in, half)
    return w.astype(np.float32)


@dataclasses.dataclass(frozen=True)
class _Banded:
    """Weights of one axis (output x input) cut into blocks of output rows, each
    with the band of input pixels it reads: the products skip the zeros."""

    weights: np.ndarray
    blocks: tuple[tuple[slice, slice], ...]

    @classmethod
    def linear(cls, n_in: int, n_out: int) -> _Banded:
        w = linear_weights(n_in, n_out)
        blocks = []
        for r0 in range(0, n_out, _BLOCK_ROWS):
            rows = slice(r0, min(r0 + _BLOCK_ROWS, n_out))
            used = np.flatnonzero(w[rows].any(axis=0))
            blocks.append((rows, slice(int(used[0]), int(used[-1]) + 1)))
        return cls(w, tuple(blocks))

    def along_last(self, x: np.ndarray) -> np.ndarray:
        """(r, n_in) -> (r, n_out)."""
        out = np.empty((x.shape[0], self.weights.shape[0]), np.float32)
        for rows, cols in self.blocks:
            np.matmul(x[:, cols], self.weights[rows, cols].T, out=out[:, rows])
        return out

    def along_first(self, x: np.ndarray) -> np.ndarray:
        """(n_in, r) -> (n_out, r)."""
        out = np.empty((self.weights.shape[0], x.shape[1]), np.float32)
        for rows, cols in self.blocks:
            np.matmul(self.weights[rows, cols], x[cols], out=out[rows])
        return out


def _slab_length(*shapes: Sequence[int]) -> int:
    """Slices per slab: ``_SLAB_VOXELS`` voxels of the larger of the planes."""
    return max(1, _SLAB_VOXELS // max(int(s[0]) * int(s[1]) for s in shapes))


def _resample_plane(src: np.ndarray, out: np.ndarray, weights: tuple) -> None:
    """Writes ``src`` (x, y, z) resampled in-plane with ``weights`` (``_Banded`` of
    axes 0 and 1; None: identity) into ``out``, slab by slab in float32.

    A slab is laid out (plane axis, z, plane axis), the faster-varying axis of
    ``src`` last, so that each axis is one matrix product over the whole slab.
    """
    first, last = (1, 0) if abs(src.strides[0]) < abs(src.strides[1]) else (0, 1)
    back = (2, 0, 1) if first == 1 else (0, 2, 1)
    step = _slab_length(src.shape, out.shape)
    for z0 in range(0, src.shape[2], step):
        sl = slice(z0, min(z0 + step, src.shape[2]))
        slab = np.empty((src.shape[first], sl.stop - sl.start, src.shape[last]), np.float32)
        slab[...] = src[:, :, sl].transpose(first, 2, last)
        a, k, b = slab.shape
        if weights[last] is not None:
            slab = weights[last].along_last(slab.reshape(a * k, b)).reshape(a, k, -1)
        if weights[first] is not None:
            slab = weights[first].along_first(slab.reshape(a, -1)).reshape(-1, k, slab.shape[2])
        out[:, :, sl] = slab.transpose(back)


def _resample_linear(src: np.ndarray, out: np.ndarray) -> None:
    """Writes ``src`` linearly resampled in-plane to ``out``'s shape into ``out``."""
    weights = tuple(
        None if n == m else _Banded.linear(n, m) for n, m in zip(src.shape[:2], out.shape[:2])
    )
    _resample_plane(src, out, weights)


def _resample_nearest(src: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    i0 = nearest_indices(src.shape[0], shape[0])
    i1 = nearest_indices(src.shape[1], shape[1])
    return src[i0[:, None], i1[None, :]]


def _check_order(order: int) -> None:
    if order not in ORDERS:
        raise ValueError(f"order must be 0 (nearest, labels) or 1 (linear), got {order!r}")


# ----------------------------------------------------------------------------
# Grid transform


@dataclasses.dataclass(frozen=True, eq=False)
class GridTransform:
    """Storage grid of one volume <-> the model grid of a :class:`Geometry`.

    Build it with :meth:`for_volume`. ``forward`` takes arrays of the
    volume's storage shape to ``model_shape``; ``backward`` takes arrays of
    ``model_shape`` back to exactly the storage shape.
    """

    input_shape: tuple[int, int, int]
    input_affine: np.ndarray
    input_spacing: tuple[float, float, float]
    target: Geometry
    transform: np.ndarray  # nibabel orientation transform, storage -> reoriented
    reoriented_shape: tuple[int, int, int]
    reoriented_spacing: tuple[float, float, float]
    model_shape: tuple[int, int, int]

    @classmethod
    def for_volume(
        cls,
        affine: np.ndarray,
        shape: Sequence[int],
        spacing: Sequence[float] | None,
        target: Geometry,
    ) -> GridTransform:
        """The transform of a volume of ``shape`` with ``affine`` and voxel ``spacing``
        (mm; None: the affine's column lengths) to ``target``."""
        affine = np.array(affine, dtype=np.float64)
        shape = tuple(int(n) for n in shape)
        if affine.shape != (4, 4) or len(shape) != 3 or min(shape) < 1:
            raise ValueError(
                f"expected a 4x4 affine and a 3D shape, got {affine.shape} and {shape}"
            )
        spacing = _default_spacing(affine) if spacing is None else tuple(map(float, spacing))
        if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"spacing must be three positive finite sizes, got {spacing}")
        transform = _orientation_transform(affine, target.orientation)
        r_shape, r_spacing = _reoriented(shape, transform), _reoriented(spacing, transform)
        in_plane = (
            r_shape[:2]
            if target.pixel_spacing is None
            else tuple(
                resampled_size(n, s, t) for n, s, t in zip(r_shape, r_spacing, target.pixel_spacing)
            )
        )
        return cls(
            shape, affine, spacing, target, transform, r_shape, r_spacing, in_plane + r_shape[2:]
        )

    @classmethod
    def for_nifti(cls, volume, target: Geometry) -> GridTransform:
        """The transform of a loaded ``NiftiVolume`` (its affine and header spacing)."""
        return cls.for_volume(volume.affine, volume.shape, volume.spacing, target)

    @property
    def resamples(self) -> bool:
        """Whether the model grid differs from the reoriented grid (in-plane size)."""
        return self.model_shape != self.reoriented_shape

    @property
    def model_spacing(self) -> tuple[float, float, float]:
        """mm of the model grid's axes: the field of view over the pixels in-plane,
        from the given spacing (the header's pixdim); the slice axis as is."""
        return tuple(
            s * n / m
            for s, n, m in zip(self.reoriented_spacing, self.reoriented_shape, self.model_shape)
        )

    @property
    def model_affine(self) -> np.ndarray:
        """Voxel -> world affine of the model grid (same world as the input)."""
        reoriented = self.input_affine @ ornt_lib.inv_ornt_aff(self.transform, self.input_shape)
        scale = np.eye(4)
        for axis in range(3):
            f = self.reoriented_shape[axis] / self.model_shape[axis]
            scale[axis, axis] = f
            scale[axis, 3] = (f - 1.0) / 2.0
        return reoriented @ scale

    def forward(self, array: np.ndarray, order: int = 1) -> np.ndarray:
        """``array`` (storage grid) on the model grid.

        Without resampling: a view of ``array``. Otherwise a new array:
        float32 for ``order`` 1, ``array``'s dtype for ``order`` 0.
        """
        _check_order(order)
        array = self._checked(array, self.input_shape, "forward")
        return self._resample(_apply(array, self.transform), self.model_shape, order)

    def backward(self, array: np.ndarray, order: int = 1) -> np.ndarray:
        """``array`` (model grid) on the storage grid, exactly ``input_shape``.

        Without resampling: a view of ``array``. Otherwise a new array, for
        ``order`` 1 float32 and Fortran-ordered as ``NiftiVolume.data`` (threshold
        probabilities after this, on the input's grid), for ``order`` 0 of
        ``array``'s dtype.
        """
        _check_order(order)
        array = self._checked(array, self.model_shape, "backward")
        if order == 1 and self.resamples:
            out = np.empty(self.input_shape, np.float32, order="F")
            _resample_linear(array, _apply(out, self.transform))
            return out
        inverse = ornt_lib.ornt_transform(
            ornt_lib.axcodes2ornt(self.target.orientation),
            ornt_lib.axcodes2ornt(axis_codes(self.input_affine)),
        )
        return _apply(self._resample(array, self.reoriented_shape, order), inverse)

    @staticmethod
    def _checked(array: np.ndarray, shape: tuple, what: str) -> np.ndarray:
        array = np.asarray(array)
        if array.shape != shape:
            raise ValueError(f"{what}: array shape {array.shape}, expected {shape}")
        return array

    @staticmethod
    def _resample(src: np.ndarray, shape: tuple, order: int) -> np.ndarray:
        """``src`` resampled in-plane to ``shape`` (``src`` itself when it has it)."""
        if src.shape == shape:
            return src
        if order == 0:
            return _resample_nearest(src, shape[:2])
        out = np.empty(shape, np.float32, order="F")
        _resample_linear(src, out)
        return out
