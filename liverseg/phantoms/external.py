"""External-validation CT phantoms, built independently of the training generator.

This family exists to measure generalisation: never train on it and never tune
the training generator (or any hyper-parameter) against it. It shares no code
with ``liverseg.phantoms.training``, only the LiTS file layout.

Construction: every phantom is an abdomen built in 3D, in millimetres of a
body frame with RAS axes (+x the patient's right, +y anterior, +z superior,
origin on the midline at the height of the right hemidiaphragm's dome). Each
organ is an approximate signed-distance function (superellipses, ellipsoids,
smooth unions of lobes, capsule chains and z-swept tubes for vessels and bowel),
some displaced along their normals by low-frequency 3D noise. The functions are
evaluated on their bounding boxes of the voxel grid; voxels near a surface are
supersampled (1-3 samples per axis, by voxel size) for partial-volume edges. Organs are laid down in a fixed
priority (a later organ carves the earlier ones), each with a mean HU drawn
for the contrast phase and a smooth texture. The image is then blurred by an
anisotropic point-spread function, given correlated noise and quantised, and
stored with a random axis order / flips (with the matching affine), data type
and suffix. See ``docs/EXTERNAL_PHANTOMS.md`` for every distribution.

Phantom ``index`` of ``seed`` depends only on ``(seed, index, options)``;
files are byte-identical across runs.
"""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from liverseg.errors import ConfigError, OutputError
from liverseg.utils.atomic import atomic_path, check_can_write, safe_output_path

logger = logging.getLogger(__name__)

PHASES = ("noncontrast", "arterial", "portal", "delayed")
PHASE_WEIGHTS = (0.15, 0.2, 0.5, 0.15)
DTYPES = ("int16", "uint16", "float32")
DTYPE_WEIGHTS = (0.45, 0.25, 0.3)
SUFFIXES = (".nii", ".nii.gz")
TUMOUR_KINDS = ("hypodense", "hyperdense", "cystic", "rim")
TUMOUR_WEIGHTS = (0.45, 0.2, 0.15, 0.2)
HU_MIN, HU_MAX = -1024, 3071
COMMON_THICKNESSES = (0.7, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)

_SALT = 0x45585450  # separates this family's random streams from any other generator's
_STREAMS = ("storage", "contrast", "body", "geometry", "fields", "organs", "tumours", "scan")

STATIC_HU = {
    "air": (-1000.0, -990.0),
    "fat": (-120.0, -80.0),
    "muscle": (40.0, 60.0),
    "lung": (-900.0, -800.0),
    "cortical": (700.0, 1200.0),
    "cancellous": (300.0, 450.0),
    "rib": (350.0, 700.0),
    "disc": (70.0, 100.0),
    "cartilage": (100.0, 200.0),
    "csf": (0.0, 15.0),
    "bile": (0.0, 20.0),
    "urine": (0.0, 15.0),
    "fluid": (0.0, 25.0),
    "gas": (-1000.0, -950.0),
    "stool": (-150.0, 50.0),
    "table_shell": (150.0, 300.0),
    "table_core": (-950.0, -850.0),
}
"""Mean HU range of the tissues that do not enhance."""

PHASE_HU = {
    "liver": ((50, 65), (65, 85), (100, 130), (80, 100)),
    "spleen": ((40, 55), (90, 130), (110, 135), (85, 105)),
    "kidney_cortex": ((30, 40), (150, 220), (150, 190), (130, 160)),
    "kidney_medulla": ((25, 35), (60, 100), (140, 180), (130, 170)),
    "aorta": ((35, 50), (250, 400), (150, 200), (100, 140)),
    "heart": ((35, 50), (200, 350), (140, 190), (100, 130)),
    "ivc": ((35, 50), (70, 110), (120, 160), (100, 130)),
    "portal_vein": ((35, 50), (100, 160), (160, 210), (110, 140)),
    "hepatic_vein": ((35, 50), (50, 80), (130, 180), (100, 130)),
    "pancreas": ((35, 50), (100, 140), (80, 110), (60, 85)),
    "bowel_wall": ((30, 45), (60, 100), (80, 110), (70, 95)),
}
"""Mean HU range per contrast phase, in the order of PHASES."""

EXCRETION_HU = (300.0, 900.0)
"""Contrast in the renal collecting system (delayed phase only, probability 0.6)."""

_TEXTURE = {  # HU amplitude of the smooth texture: ((field index, amplitude), ...)
    "fat": ((2, 4.0), (4, 3.0)),
    "muscle": ((2, 4.0), (5, 3.0)),
    "lung": ((3, 15.0), (4, 25.0)),
    "liver": ((1, 3.0), (2, 4.0)),
    "spleen": ((2, 5.0),),
    "kidney": ((3, 4.0),),
    "blood": ((2, 2.0),),
    "pancreas": ((3, 4.0), (5, 10.0)),
    "bone": ((4, 40.0), (3, 25.0)),
    "stool": ((4, 70.0), (5, 50.0)),
    "fluid": ((3, 2.0),),
    "wall": ((5, 5.0),),
}
_FIELD_WAVELENGTHS = (60.0, 40.0, 24.0, 18.0, 8.0, 6.0)  # mm; 0-1 shape wobble, 2-5 texture
_LATTICE = 20


# ----------------------------------------------------------------------------
# Public types


@dataclasses.dataclass(frozen=True)
class Drawn:
    """What was drawn for one phantom (for reports, tests and stratified metrics)."""

    seed: int
    index: int
    phase: str
    axcodes: tuple[str, str, str]
    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    dtype: str
    suffix: str
    xform: str  # "both", "sform" or "qform": which header transforms are set
    fov_circle: bool
    padding: int  # HU outside the reconstruction circle (when fov_circle)
    fov_mode: str  # "fit" (whole body in view) or "zoom" (targeted reconstruction)
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    slab_mm: tuple[float, float]  # inferior, superior end (body z; 0 = right dome)
    body_width_mm: float
    liver_scale: float
    liver_hu: float
    noise_sd: float
    num_tumours: int
    num_tumours_labelled: int
    tumour_kinds: tuple[str, ...]
    tumour_diameters_mm: tuple[float, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class ExternalPhantom:
    """One phantom as stored: raw data, labels, affine and what was drawn.

    ``data`` has the stored dtype and axis order; HU = data * scl_slope + scl_inter
    (``hu``). ``labels`` (uint8: 0 background, 1 liver, 2 tumour) share the
    orientation; ``spacing`` is the voxel size of the stored axes.
    """

    data: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    scl_slope: float
    scl_inter: float
    drawn: Drawn

    @property
    def hu(self) -> np.ndarray:
        """The stored values in HU (float32)."""
        return self.data.astype(np.float32) * np.float32(self.scl_slope) + np.float32(
            self.scl_inter
        )

    @property
    def info(self) -> dict:
        """``drawn`` as a plain dict."""
        return dataclasses.asdict(self.drawn)


@dataclasses.dataclass(frozen=True)
class _Options:
    size: int
    num_slices: int
    spacing_range: tuple[float, float]
    thickness_range: tuple[float, float]
    max_tumours: int


def _options(size, num_slices, spacing_range, thickness_range, max_tumours) -> _Options:
    if int(size) != size or size < 16 or size > 1024:
        raise ConfigError(f"size must be an integer in 16..1024, got {size}")
    if int(num_slices) != num_slices or num_slices < 2 or num_slices > 1024:
        raise ConfigError(f"num_slices must be an integer in 2..1024, got {num_slices}")
    for name, rng in (("spacing_range", spacing_range), ("thickness_range", thickness_range)):
        if len(rng) != 2 or not 0.1 <= rng[0] <= rng[1] <= 20.0:
            raise ConfigError(
                f"{name} must be (low, high) with 0.1 <= low <= high <= 20 mm, got {tuple(rng)}"
            )
    if int(max_tumours) != max_tumours or not 0 <= max_tumours <= 50:
        raise ConfigError(f"max_tumours must be an integer in 0..50, got {max_tumours}")
    return _Options(
        int(size),
        int(num_slices),
        tuple(map(float, spacing_range)),
        tuple(map(float, thickness_range)),
        int(max_tumours),
    )


def _streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """Independent generators per concern, so forcing one (e.g. storage) moves nothing else."""
    if int(seed) != seed or int(index) != index or seed < 0 or index < 0:
        raise ConfigError(f"seed and index must be non-negative integers, got {seed}, {index}")
    return {
        name: np.random.default_rng([_SALT, int(seed), int(index), k])
        for k, name in enumerate(_STREAMS)
    }


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _choice(rng: np.random.Generator, items: Sequence, weights: Sequence[float]):
    return items[int(rng.choice(len(items), p=np.asarray(weights) / np.sum(weights)))]


# ----------------------------------------------------------------------------
# Smooth random fields


def _bspline_weights(t: np.ndarray) -> tuple[np.ndarray, ...]:
    return (
        (1 - t) ** 3 / 6,
        (3 * t**3 - 6 * t**2 + 4) / 6,
        (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6,
        t**3 / 6,
    )


def _bspline_rms() -> float:
    """RMS of a cubic B-spline sum of unit-variance lattice values, averaged over 3D."""
    w = _bspline_weights(np.linspace(0, 1, 1001))
    return float(np.sqrt(np.mean(sum(wi**2 for wi in w)) ** 3))


_FIELD_NORM = 1.0 / _bspline_rms()


@dataclasses.dataclass(frozen=True, eq=False)
class _Field:
    """A periodic smooth random field of unit variance (cubic B-spline of a random lattice)."""

    coeffs: np.ndarray
    wavelength: float

    def _taps(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lattice indices and weights (len(coords), 4) of the four B-spline taps."""
        t = np.asarray(coords, dtype=np.float64) / self.wavelength
        base = np.floor(t)
        index = (base.astype(np.int64)[:, None] - 1 + np.arange(4)) % self.coeffs.shape[0]
        return index, np.stack(_bspline_weights(t - base), axis=1)

    def _matrix(self, coords: np.ndarray) -> np.ndarray:
        index, weights = self._taps(coords)
        m = np.zeros((len(coords), self.coeffs.shape[0]))
        np.add.at(m, (np.arange(len(coords))[:, None], index), weights)
        return m

    def on_axes(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
        """Values on the grid spanned by three coordinate vectors (mm), float32."""
        n = self.coeffs.shape[0]
        v = (self._matrix(xs) @ self.coeffs.reshape(n, n * n)).reshape(-1, n, n)  # (nx, n, n)
        v = np.matmul(self._matrix(ys), v).astype(np.float32)  # (nx, ny, n)
        index, weights = self._taps(zs)
        weights = (weights * _FIELD_NORM).astype(np.float32)
        out = v[:, :, index[:, 0]] * weights[:, 0]
        for k in range(1, 4):  # only four taps per z: cheaper than a dense product
            out += v[:, :, index[:, k]] * weights[:, k]
        return out


def _draw_fields(rng: np.random.Generator) -> tuple[_Field, ...]:
    return tuple(_Field(rng.standard_normal((_LATTICE,) * 3), w) for w in _FIELD_WAVELENGTHS)


# ----------------------------------------------------------------------------
# Implicit shapes: approximate signed distances in mm, negative inside


def _smin(a, b, k: float):
    """Smooth minimum (union) with blend radius ``k`` mm."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.minimum(np.maximum(0.5 + 0.5 * (b - a) / k, 0.0), 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smax(a, b, k: float):
    """Smooth maximum (intersection) with blend radius ``k`` mm."""
    return -_smin(-a, -b, k)


def _local(x, y, z, c, rot):
    """Coordinates in a shape's frame (Python floats keep float32 arrays float32)."""
    dx, dy, dz = x - float(c[0]), y - float(c[1]), z - float(c[2])
    if rot is None:
        return dx, dy, dz
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = np.asarray(rot, float).tolist()
    return (
        r00 * dx + r10 * dy + r20 * dz,
        r01 * dx + r11 * dy + r21 * dz,
        r02 * dx + r12 * dy + r22 * dz,
    )


def _ellipsoid(x, y, z, c, r, rot=None):
    """First-order distance to an ellipsoid (centre ``c``, semi-axes ``r``, rotation ``rot``)."""
    u, v, w = _local(x, y, z, c, rot)
    r0, r1, r2 = map(float, r)
    qu, qv, qw = u / r0, v / r1, w / r2
    q = np.sqrt(qu * qu + qv * qv + qw * qw)
    gu, gv, gw = qu / r0, qv / r1, qw / r2
    grad = np.sqrt(gu * gu + gv * gv + gw * gw) / np.maximum(q, 1e-9)
    return (q - 1.0) / np.maximum(grad, 1e-9)


def _superellipse(x, y, a, b: float, p: int):
    """First-order distance to the 2D superellipse |x/a|^p + |y/b|^p = 1 (p = 2 or 3).

    ``a`` may vary along z: the powers of x and y are taken before it is
    broadcast, and the integer exponent avoids slow general powers.
    """
    ax, ay = np.abs(x) + 1e-9, np.abs(y) + 1e-9
    ax1, ay1 = (ax, ay) if p == 2 else (ax * ax, ay * ay)
    inv_a = np.asarray(a, dtype=np.float32) ** -p
    total = ax1 * ax * inv_a + ay1 * ay * float(b) ** -p
    q = np.sqrt(total) if p == 2 else np.cbrt(total)
    grad = (q / total) * np.sqrt((ax1 * inv_a) ** 2 + (ay1 * float(b) ** -p) ** 2)
    return (q - 1.0) / np.maximum(grad, 1e-12)


def _ellipse(x, y, cx, cy, rx, ry):
    """First-order distance to an axis-aligned 2D ellipse (a z-invariant column)."""
    qx, qy = (x - cx) / rx, (y - cy) / ry
    q = np.sqrt(qx * qx + qy * qy)
    grad = np.sqrt((qx / rx) ** 2 + (qy / ry) ** 2) / np.maximum(q, 1e-9)
    return (q - 1.0) / np.maximum(grad, 1e-9)


def _capsule(x, y, z, a, b, ra: float, rb: float):
    """Distance to a segment a-b swept by a radius going from ``ra`` to ``rb``."""
    a0, a1, a2 = map(float, a)
    e0, e1, e2 = (float(v) - w for v, w in zip(b, (a0, a1, a2)))
    dx, dy, dz = x - a0, y - a1, z - a2
    t = (dx * e0 + dy * e1 + dz * e2) / (e0 * e0 + e1 * e1 + e2 * e2)
    t = np.minimum(np.maximum(t, 0.0), 1.0)
    dx, dy, dz = dx - t * e0, dy - t * e1, dz - t * e2
    return np.sqrt(dx * dx + dy * dy + dz * dz) - (ra + t * (rb - ra))


def _chain(x, y, z, points, radii, k: float = 0.0):
    """Union of capsules through consecutive ``points`` (a swept tube)."""
    d = None
    for i in range(len(points) - 1):
        di = _capsule(x, y, z, points[i], points[i + 1], radii[i], radii[i + 1])
        d = di if d is None else _smin(d, di, k)
    return d


def _ztube(x, y, z, knots_z, xs, ys, rx, ry):
    """A tube swept along z: centre and radii interpolated between knots (z increasing)."""
    cx, cy = np.interp(z, knots_z, xs), np.interp(z, knots_z, ys)
    return _ellipse(x, y, cx, cy, np.interp(z, knots_z, rx), np.interp(z, knots_z, ry))


def _slab(z, lo: float, hi: float):
    return np.maximum(lo - z, z - hi)


def _frame(axis_w, axis_u) -> np.ndarray:
    """Rotation whose columns are (u, v, w): w along ``axis_w``, u close to ``axis_u``."""
    w = np.asarray(axis_w, float) / np.linalg.norm(axis_w)
    u = np.asarray(axis_u, float) - (np.dot(axis_u, w)) * w
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(w, u), w], axis=1)


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


# ----------------------------------------------------------------------------
# Body, diaphragm and grid


@dataclasses.dataclass(frozen=True)
class _Body:
    """Body outline and the landmarks the organs are placed from (mm, body frame)."""

    half_width: float
    half_depth: float
    exponent: int  # of the superellipse outline: 2 (ellipse) or 3 (squarer)
    fat: float
    muscle: float
    hip: float
    wobble: float
    liver_scale: float
    left_dome: float  # height of the left dome's apex (<= 0)
    dome_x: float
    dome_y: float
    dome_rx: float
    dome_ry_front: float
    dome_ry_back: float
    spine_y: float  # centre of the vertebral bodies
    crest: float  # height of the iliac crests; the lumbar spine ends just below

    @property
    def cavity_a(self) -> float:
        return self.half_width - self.fat - self.muscle

    @property
    def cavity_b(self) -> float:
        return self.half_depth - self.fat - self.muscle

    @property
    def liver_bottom(self) -> float:
        return -165.0 * self.liver_scale

    def width_at(self, z) -> np.ndarray | float:
        """Half-width of the body at height ``z``: constant above the hips."""
        z = np.asarray(z)
        if self.hip == 0 or np.all(z >= -200.0):
            return self.half_width
        s = np.clip((-200.0 - z) / 120.0, 0.0, 1.0)
        return self.half_width * (1.0 + self.hip * s * s * (3 - 2 * s))

    def outline(self, x, y, z, field) -> np.ndarray:
        """Skin: a superellipse widening at the hips, displaced by noise."""
        return _superellipse(
            x, y, self.width_at(z), self.half_depth, self.exponent
        ) + self.wobble * field(0)

    def cavity(self, x, y, z, field) -> np.ndarray:
        """Inner surface of the muscle wall."""
        return self.outline(x, y, z, field) + self.fat + self.muscle

    def dome(self, x, y) -> np.ndarray:
        """Height of the diaphragm: two paraboloid domes, posterior recesses deeper."""
        ry = np.where(y > self.dome_y, self.dome_ry_front, self.dome_ry_back)
        back = (y - self.dome_y) ** 2 / (2 * ry)
        right = -((x - self.dome_x) ** 2) / (2 * self.dome_rx) - back
        left = self.left_dome - (x + self.dome_x) ** 2 / (2 * self.dome_rx) - back
        return _smax(right, left, 15.0)


def _draw_body(rng: np.random.Generator) -> _Body:
    """Body size and shape, fat and muscle thickness, liver scale, diaphragm and spine."""
    a = _uniform(rng, (135, 200))
    b = a * _uniform(rng, (0.62, 0.85))
    fat = _uniform(rng, (5, 15)) + (a - 135) / 65 * _uniform(rng, (0, 25))
    muscle = _uniform(rng, (6, 15))
    cavity_a = a - fat - muscle
    cavity_b = b - fat - muscle
    return _Body(
        half_width=a,
        half_depth=b,
        exponent=_choice(rng, (2, 3), (0.35, 0.65)),
        fat=fat,
        muscle=muscle,
        hip=_uniform(rng, (0.0, 0.12)),
        wobble=_uniform(rng, (2, 6)),
        liver_scale=_uniform(rng, (0.78, 1.3)),
        left_dome=-_uniform(rng, (5, 25)),
        dome_x=0.45 * cavity_a,
        dome_y=0.1 * cavity_b,
        dome_rx=_uniform(rng, (90, 160)),
        dome_ry_front=_uniform(rng, (120, 250)),
        dome_ry_back=(1.1 * cavity_b) ** 2 / (2 * _uniform(rng, (50, 90))),
        spine_y=-b + fat + _uniform(rng, (60, 72)),
        crest=-_uniform(rng, (250, 280)),
    )


def _subsample_offsets(spacing) -> np.ndarray:
    """Offsets (in voxels) of the samples averaged in surface voxels: 1-3 per axis."""
    per_axis = []
    for s in spacing:
        m = int(np.clip(math.ceil(s / 1.5), 1, 3))
        per_axis.append((np.arange(m) + 0.5) / m - 0.5)
    return np.array(list(itertools.product(*per_axis)))


@dataclasses.dataclass(frozen=True, eq=False)
class _Grid:
    """The canonical (RAS-ordered) voxel grid and where the body lies in it."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: np.ndarray  # world position of voxel (0, 0, 0)
    body_origin: np.ndarray  # world position of the body frame's origin
    angle: float  # rotation of the body about z (radians)
    fov_mode: str
    slab: tuple[float, float]

    @property
    def affine(self) -> np.ndarray:
        a = np.diag([*self.spacing, 1.0])
        a[:3, 3] = self.origin
        return a

    @property
    def band(self) -> float:
        """Half-width (mm) of the surface band that is supersampled."""
        return 0.5 * float(np.linalg.norm(self.spacing)) + 0.3

    def axis(self, a: int, sl: slice = slice(None)) -> np.ndarray:
        """World coordinates (float32) of the voxel centres along axis ``a``."""
        return (self.origin[a] + self.spacing[a] * np.arange(self.shape[a])[sl]).astype(np.float32)

    def to_body(self, x, y, z):
        c, s = math.cos(self.angle), math.sin(self.angle)
        ox, oy, oz = map(float, self.body_origin)
        dx, dy = x - ox, y - oy
        return c * dx + s * dy, -s * dx + c * dy, z - oz

    def box(self, lo, hi) -> tuple[slice, slice, slice] | None:
        """Grid slices covering a body-frame bounding box (infinite bounds allowed)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        if np.all(np.isfinite([lo[0], lo[1], hi[0], hi[1]])):
            corners = np.array([[x, y] for x in (lo[0], hi[0]) for y in (lo[1], hi[1])])
            wx = c * corners[:, 0] - s * corners[:, 1] + self.body_origin[0]
            wy = s * corners[:, 0] + c * corners[:, 1] + self.body_origin[1]
            wlo, whi = [wx.min(), wy.min()], [wx.max(), wy.max()]
        else:
            wlo, whi = [-np.inf, -np.inf], [np.inf, np.inf]
        wlo.append(lo[2] + self.body_origin[2])
        whi.append(hi[2] + self.body_origin[2])
        out = []
        for a in range(3):
            i0 = (wlo[a] - self.origin[a]) / self.spacing[a] - 1
            i1 = (whi[a] - self.origin[a]) / self.spacing[a] + 2
            i0 = 0 if not np.isfinite(i0) else max(0, math.floor(i0))
            i1 = self.shape[a] if not np.isfinite(i1) else min(self.shape[a], math.ceil(i1))
            if i1 <= i0:
                return None
            out.append(slice(i0, i1))
        return tuple(out)

    def body_coords(self, box):
        x = self.axis(0, box[0])[:, None, None]
        y = self.axis(1, box[1])[None, :, None]
        z = self.axis(2, box[2])[None, None, :]
        return self.to_body(x, y, z)

    def subsamples(self, box, idx):
        """Body-frame coordinates of the subsamples of each voxel ``idx`` of ``box``."""
        offsets = _subsample_offsets(self.spacing)
        pts = []
        for a in range(3):
            centre = self.axis(a, box[a])[idx[a]]
            step = (self.spacing[a] * offsets[None, :, a]).astype(np.float32)
            pts.append(centre[:, None] + step)
        return self.to_body(*pts)


# ----------------------------------------------------------------------------
# Organs


@dataclasses.dataclass(frozen=True, eq=False)
class _Organ:
    """One layer: a shape, its mean HU and texture, and whether it is liver."""

    name: str
    lo: tuple[float, float, float]  # body-frame bounding box (mm), may be infinite
    hi: tuple[float, float, float]
    sdf: Callable[..., np.ndarray]  # (x, y, z, field) -> signed distance (mm)
    hu: float
    texture: tuple[tuple[int, float], ...] = ()
    liver: bool = False
    within: str | None = None  # clipped to that (earlier) organ
    offset: float = 0.0  # mm added to ``sdf``: layers of one shape share its evaluation


def _around(c, r, pad: float = 3.0):
    """Bounding box of a sphere-bounded shape (centre ``c``, largest radius ``r``)."""
    return tuple(float(v - r - pad) for v in c), tuple(float(v + r + pad) for v in c)


def _points_box(points, radius: float):
    pts = np.asarray(points, float)
    return (
        tuple(float(v) for v in pts.min(0) - radius - 3),
        tuple(float(v) for v in pts.max(0) + radius + 3),
    )


_INF = float("inf")


@dataclasses.dataclass(frozen=True)
class _Contrast:
    phase: str
    hu: dict
    excretion: float | None


def _draw_contrast(rng: np.random.Generator) -> _Contrast:
    """The phase and every tissue's mean HU; one enhancement level is shared by all organs."""
    phase = _choice(rng, PHASES, PHASE_WEIGHTS)
    p = PHASES.index(phase)
    level = rng.uniform()  # one enhancement level shared by all organs of the scan
    hu = {name: _uniform(rng, bounds) for name, bounds in STATIC_HU.items()}
    for name, ranges in PHASE_HU.items():
        lo, hi = ranges[p]
        hu[name] = lo + (hi - lo) * float(np.clip(0.6 * level + 0.4 * rng.uniform(), 0, 1))
    excreted = phase == "delayed" and rng.uniform() < 0.6
    return _Contrast(phase, hu, _uniform(rng, EXCRETION_HU) if excreted else None)


def _wall_organs(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Table, skin/fat, muscle wall and visceral fat."""
    organs = []
    if rng.uniform() < 0.7:
        top = -body.half_depth - _uniform(rng, (0, 12))
        bend = 1.0 / (2 * _uniform(rng, (500, 900)))
        half = body.half_width + 60

        shell = _uniform(rng, (3, 7))

        def table(x, y, z, f):
            centre = top - 22 + bend * x * x
            return np.maximum(np.abs(y - centre) - 22, np.abs(x) - half)

        box = ((-half - 5, top - 60, -_INF), (half + 5, top + 5 + bend * half**2, _INF))
        organs.append(_Organ("table shell", *box, table, hu["table_shell"]))
        organs.append(_Organ("table core", *box, table, hu["table_core"], offset=shell))
    a, b = body.width_at(-400.0) + 2 * body.wobble + 5, body.half_depth + 2 * body.wobble + 5
    box = ((-a, -b, -_INF), (a, b, _INF))
    organs += [
        _Organ("subcutaneous fat", *box, body.outline, hu["fat"], _TEXTURE["fat"]),
        _Organ(
            "muscle wall", *box, body.outline, hu["muscle"], _TEXTURE["muscle"], offset=body.fat
        ),
        _Organ(
            "visceral fat",
            *box,
            body.outline,
            hu["fat"] + _uniform(rng, (-5, 10)),
            _TEXTURE["fat"],
            offset=body.fat + body.muscle,
        ),
    ]
    return organs


def _thorax(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Diaphragm, lungs and heart: laid after the abdominal organs, so they carve their tops."""
    a, b = body.width_at(-400.0) + 2 * body.wobble + 5, body.half_depth + 2 * body.wobble + 5
    drop = (body.cavity_a + body.dome_x) ** 2 / (2 * body.dome_rx) + (
        body.cavity_b + body.dome_y
    ) ** 2 / (2 * body.dome_ry_back)
    top = ((-a, -b, body.left_dome - drop - 10), (a, b, _INF))

    def thorax(x, y, z, f):
        return _smax(body.cavity(x, y, z, f), body.dome(x, y) - z, 3.0)

    organs = [
        _Organ("diaphragm", *top, thorax, hu["muscle"], _TEXTURE["muscle"]),
        _Organ(
            "lung", *top, thorax, hu["lung"], _TEXTURE["lung"], offset=_uniform(rng, (3.5, 5.0))
        ),
    ]
    ca, cb = body.cavity_a, body.cavity_b
    c = (-0.2 * ca, 0.25 * cb, body.left_dome + _uniform(rng, (50, 65)))
    r = (0.45 * ca * _uniform(rng, (0.85, 1.1)), 0.42 * cb, _uniform(rng, (55, 70)))
    organs.append(
        _Organ(
            "heart",
            *_around(c, max(r)),
            lambda x, y, z, f: _smax(_ellipsoid(x, y, z, c, r), body.dome(x, y) + 5 - z, 4.0),
            hu["heart"],
            _TEXTURE["blood"],
        )
    )
    return organs


def _gut(name, rng, points, radius, wall, hu, contents, gas_prob, k=8.0) -> list[_Organ]:
    """A hollow tube (capsule chain): wall, contents and, sometimes, gas above a level."""
    pts = [tuple(float(v) for v in p) for p in points]
    radii = list(radius)
    box = _points_box(pts, max(radii))
    lumen_r = [max(r - wall, 1.0) for r in radii]

    def outer(x, y, z, f):
        return _chain(x, y, z, pts, radii, k)

    def lumen(x, y, z, f):
        return _chain(x, y, z, pts, lumen_r, k)

    organs = [
        _Organ(f"{name} wall", *box, outer, hu["bowel_wall"], _TEXTURE["wall"]),
        _Organ(f"{name} contents", *box, lumen, contents[0], contents[1]),
    ]
    if rng.uniform() < gas_prob:
        ys = np.asarray(pts)[:, 1]
        level = _uniform(rng, (ys.min() - max(radii), ys.max() + 0.5 * max(radii)))
        organs.append(
            _Organ(
                f"{name} gas",
                *box,
                lambda x, y, z, f: _smax(lumen(x, y, z, f), level - y, 1.0),
                hu["gas"],
                ((4, 5.0),),
            )
        )
    return organs


def _jitter(rng, point, amount: float):
    return tuple(float(v) for v in np.asarray(point) + rng.uniform(-amount, amount, 3))


def _small_bowel(rng, body: _Body, hu: dict) -> list[_Organ]:
    """8-20 short loops below the liver: fluid-filled, gas-filled or collapsed."""
    ca, cb = body.cavity_a, body.cavity_b
    organs = []
    top = min(-110.0, body.liver_bottom + 40)
    for i in range(int(rng.integers(8, 21))):
        c = np.array(
            [rng.uniform(-0.55, 0.55) * ca, rng.uniform(-0.1, 0.65) * cb, rng.uniform(-330, top)]
        )
        d = rng.standard_normal(3)
        d *= _uniform(rng, (15, 35)) / np.linalg.norm(d)
        r = _uniform(rng, (9, 14))
        state = _choice(rng, ("fluid", "gas", "collapsed"), (0.6, 0.15, 0.25))
        wall = r - 2.0 if state == "collapsed" else _uniform(rng, (1.5, 3.0))
        contents = (hu["fluid"], _TEXTURE["fluid"])
        organs += _gut(
            f"small bowel {i}",
            rng,
            (c - d, c + d),
            (r, r),
            wall,
            hu,
            contents,
            1.0 if state == "gas" else 0.2 if state == "fluid" else 0.0,
        )
    return organs


def _liver_shape(rng, body: _Body, kidney: _Kidney):
    """The liver: a smooth union of lobes displaced by noise, under the dome, in the cavity.

    Behind and around the right ``kidney`` it is cut away (the renal impression), so the
    kidney lies posterior to the liver rather than inside it.
    """
    ca, cb, s = body.cavity_a, body.cavity_b, body.liver_scale

    def jit(v, amount=0.1):
        return tuple(float(x * _uniform(rng, (1 - amount, 1 + amount))) for x in v)

    r_right = jit((70 * s, 85 * s, 82 * s))
    ivc = (22.0, body.spine_y + 28.0)
    lobes = [((ca - 0.85 * r_right[0], -0.05 * cb, -0.8 * r_right[2]), r_right)]
    lobes.append(
        ((lobes[0][0][0] - 55 * s, 0.35 * cb, -0.6 * r_right[2]), jit((45 * s, 50 * s, 50 * s)))
    )
    left = _uniform(rng, (0.5, 1.3))
    lobes.append(
        (
            (-0.25 * ca * left, 0.35 * cb, body.left_dome - 35 * s),
            jit((55 * s * left, 38 * s, 28 * s)),
        )
    )
    lobes.append(((ivc[0] - 12, ivc[1] + 25, -45 * s), jit((22 * s, 22 * s, 35 * s))))
    if rng.uniform() < 0.15:  # Riedel's lobe
        lobes.append(((lobes[0][0][0] + 10, 0.0, -150 * s), jit((30 * s, 40 * s, 55 * s))))
    lobes = [(_jitter(rng, c, 6.0), r) for c, r in lobes]
    k = _uniform(rng, (12, 22))
    wobble = _uniform(rng, (3, 8))
    gap = _uniform(rng, (2, 6))
    back = 60.0
    fossa_c = (kidney.centre[0], kidney.centre[1] - back, kidney.centre[2])
    fossa_r = (kidney.radii[0] + gap, kidney.radii[1] + back + gap, kidney.radii[2] + gap)

    def sdf(x, y, z, f):
        d = None
        for c, r in lobes:
            e = _ellipsoid(x, y, z, c, r)
            d = e if d is None else _smin(d, e, k)
        d = d + wobble * f(1)
        d = _smax(d, body.cavity(x, y, z, f) + 2.0, 6.0)
        d = _smax(d, -_ellipsoid(x, y, z, fossa_c, fossa_r), 4.0)
        return _smax(d, z - body.dome(x, y), 4.0)

    lo = np.min([np.subtract(c, r) for c, r in lobes], axis=0) - k - wobble - 5
    hi = np.max([np.add(c, r) for c, r in lobes], axis=0) + k + wobble + 5
    return sdf, (tuple(lo), tuple(hi)), lobes


def _liver_organs(rng, body: _Body, hu: dict, kidney: _Kidney) -> list[_Organ]:
    """The liver and its veins (hepatic veins to the IVC, portal branches from the hilum)."""
    sdf, box, lobes = _liver_shape(rng, body, kidney)
    organs = [_Organ("liver", *box, sdf, hu["liver"], _TEXTURE["liver"], liver=True)]
    s, ca, cb = body.liver_scale, body.cavity_a, body.cavity_b
    right, medial = lobes[0][0], lobes[1][0]
    ivc_top = (22.0, body.spine_y + 28.0, -12.0)
    size = _uniform(rng, (0.8, 1.25))
    veins = [
        _jitter(rng, p, 8.0)
        for p in (
            (right[0] + 30 * s, body.spine_y + 40, -70 * s),
            (medial[0], 0.35 * cb, -75 * s),
            (-0.15 * ca, 0.3 * cb, -45 * s),
        )
    ]
    hilum = _jitter(rng, ((right[0] + medial[0]) / 2, body.spine_y + 70, -65 * s), 6.0)
    branches = [
        _jitter(rng, p, 8.0)
        for p in (
            (right[0] + 15, 0.0, -80 * s),
            (-0.1 * ca, 0.35 * cb, -50 * s),
            (right[0], 0.2 * cb, -110 * s),
        )
    ]

    def hepatic(x, y, z, f):
        return _union([_capsule(x, y, z, ivc_top, p, 6 * size, 2 * size) for p in veins])

    def portal(x, y, z, f):
        return _union([_capsule(x, y, z, hilum, p, 6 * size, 2.5 * size) for p in branches])

    organs.append(
        _Organ(
            "hepatic veins",
            *box,
            hepatic,
            hu["hepatic_vein"],
            _TEXTURE["blood"],
            liver=True,
            within="liver",
        )
    )
    organs.append(
        _Organ(
            "portal branches",
            *box,
            portal,
            hu["portal_vein"],
            _TEXTURE["blood"],
            liver=True,
            within="liver",
        )
    )
    return organs


def _union(distances):
    return np.minimum.reduce(np.broadcast_arrays(*distances))


def _spleen(rng, body: _Body, contrast: _Contrast) -> list[_Organ]:
    """A crescent under the left dome, mottled in the arterial phase."""
    hu = contrast.hu
    s = _uniform(rng, (0.8, 1.4))
    r = (35 * s, 55 * s, 55 * s)
    c = (-(body.cavity_a - 0.8 * r[0]), -0.35 * body.cavity_b, body.left_dome - 45 * s)
    c = _jitter(rng, c, 8.0)
    rot = _rot_z(math.radians(_uniform(rng, (-40, -20))))
    hollow = (c[0] + 1.5 * r[0], c[1] + 0.6 * r[0], c[2])
    r_hollow = (1.1 * r[0], 1.1 * r[1], 1.3 * r[2])

    def sdf(x, y, z, f):
        d = _smax(_ellipsoid(x, y, z, c, r, rot), -_ellipsoid(x, y, z, hollow, r_hollow), 5.0)
        return _smax(d, body.cavity(x, y, z, f) + 2.0, 5.0)

    tex = _TEXTURE["spleen"] + (((3, 20.0),) if contrast.phase == "arterial" else ())
    return [_Organ("spleen", *_around(c, max(r)), sdf, hu["spleen"], tex)]


def _stomach(rng, body: _Body, hu: dict) -> list[_Organ]:
    """A J-shaped tube under the left dome (fundus to pylorus), usually with a gas cap."""
    ca, cb, z0 = body.cavity_a, body.cavity_b, body.left_dome
    fill = _uniform(rng, (0.6, 1.15))
    pts = [
        _jitter(rng, p, 8.0)
        for p in (
            (-0.45 * ca, -0.05 * cb, z0 - 30),
            (-0.35 * ca, 0.3 * cb, z0 - 75),
            (0.0, 0.5 * cb, z0 - 105),
            (0.15 * ca, 0.4 * cb, z0 - 100),
        )
    ]
    radii = [40 * fill, 35 * fill, 22 * fill, 12.0]
    contents = (hu["fluid"] + _uniform(rng, (0, 30)), _TEXTURE["fluid"] + ((5, 8.0),))
    return _gut("stomach", rng, pts, radii, _uniform(rng, (3, 5)), hu, contents, 0.85, k=12)


@dataclasses.dataclass(frozen=True)
class _Kidney:
    name: str
    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    rot: np.ndarray
    cortex: float  # thickness, mm


def _draw_kidneys(rng, body: _Body) -> tuple[_Kidney, _Kidney]:
    """Left and right kidney beside the spine, the right one lower; long axes tilted."""
    kidneys = []
    left_z = -100 - _uniform(rng, (0, 20))
    for side, z in ((-1, left_z), (1, left_z - _uniform(rng, (5, 25)))):
        r = tuple(v * _uniform(rng, (0.85, 1.15)) for v in (27.0, 20.0, 57.0))
        c = _jitter(rng, (side * _uniform(rng, (55, 72)), body.spine_y + 8, z), 5.0)
        turn, tilt = math.radians(_uniform(rng, (20, 40))), math.radians(_uniform(rng, (5, 20)))
        medial = (-side * math.cos(turn), math.sin(turn), 0.0)
        rot = _frame((-side * math.sin(tilt), -0.3 * math.sin(tilt), math.cos(tilt)), medial)
        kidneys.append(
            _Kidney("right kidney" if side > 0 else "left kidney", c, r, rot, _uniform(rng, (5, 8)))
        )
    return tuple(kidneys)


def _kidney_organs(kidneys, contrast: _Contrast) -> list[_Organ]:
    """Cortex, medulla and sinus (fat, or excreted contrast) of each kidney."""
    hu = contrast.hu
    organs = []
    for k in kidneys:
        sinus_c = tuple(float(v) for v in np.add(k.centre, 0.6 * k.radii[0] * k.rot[:, 0]))
        sinus_r = (0.5 * k.radii[0], 0.45 * k.radii[1], 0.5 * k.radii[2])

        def shape(x, y, z, f, k=k):
            return _ellipsoid(x, y, z, k.centre, k.radii, k.rot)

        box = _around(k.centre, max(k.radii))
        organs += [
            _Organ(f"{k.name} cortex", *box, shape, hu["kidney_cortex"], _TEXTURE["kidney"]),
            _Organ(
                f"{k.name} medulla",
                *box,
                shape,
                hu["kidney_medulla"],
                _TEXTURE["kidney"],
                offset=k.cortex,
            ),
            _Organ(
                f"{k.name} sinus",
                *box,
                lambda x, y, z, f, c=sinus_c, r=sinus_r, q=k.rot: _ellipsoid(x, y, z, c, r, q),
                contrast.excretion if contrast.excretion else hu["fat"],
                _TEXTURE["fat"],
            ),
        ]
    return organs


def _pancreas(rng, body: _Body, hu: dict) -> list[_Organ]:
    """A tapering tube from the splenic hilum across the aorta to the head."""
    ca, y0 = body.cavity_a, body.spine_y
    pts = [
        _jitter(rng, p, 6.0)
        for p in (
            (-0.55 * ca, y0 + 40, -70),
            (-10, y0 + 62, -80),
            (35, y0 + 60, -100),
            (22, y0 + 45, -115),
        )
    ]
    radii = [_uniform(rng, (7, 10)), _uniform(rng, (9, 12)), _uniform(rng, (12, 16)), 9.0]
    box = _points_box(pts, max(radii))
    return [
        _Organ(
            "pancreas",
            *box,
            lambda x, y, z, f: _chain(x, y, z, pts, radii, 8.0),
            hu["pancreas"],
            _TEXTURE["pancreas"],
        )
    ]


def _colon(rng, body: _Body, hu: dict) -> list[_Organ]:
    """The frame of the abdomen (caecum to rectum): stool, and gas above a level."""
    ca, cb = body.cavity_a, body.cavity_b
    flexure = min(body.liver_bottom + 15, -120.0)
    path = (
        (0.55 * ca, 0.2 * cb, -270),
        (0.6 * ca, 0.05 * cb, flexure),
        (0.25 * ca, 0.55 * cb, flexure - 35),
        (-0.25 * ca, 0.55 * cb, flexure - 25),
        (-0.62 * ca, 0.0, body.left_dome - 100),
        (-0.65 * ca, -0.05 * cb, -250),
        (-0.3 * ca, 0.2 * cb, -330),
        (0.0, -0.45 * cb, -390),
    )
    pts = [_jitter(rng, p, 10.0) for p in path]
    radii = [_uniform(rng, (16, 25)) for _ in pts]
    contents = (hu["stool"], _TEXTURE["stool"])
    return _gut("colon", rng, pts, radii, _uniform(rng, (2, 3)), hu, contents, 0.9)


def _gallbladder(rng, body: _Body, hu: dict) -> list[_Organ]:
    """A tilted ellipsoid of bile under the liver (absent with p = 0.15)."""
    if rng.uniform() >= 0.85:
        return []
    s = body.liver_scale
    c = _jitter(rng, (0.45 * body.cavity_a - 30 * s, 0.25 * body.cavity_b, -105 * s), 8.0)
    r = tuple(v * _uniform(rng, (0.7, 1.3)) for v in (16.0, 38.0, 18.0))
    rot = _rot_x(math.radians(-_uniform(rng, (20, 45))))
    return [
        _Organ(
            "gallbladder",
            *_around(c, max(r)),
            lambda x, y, z, f: _ellipsoid(x, y, z, c, r, rot),
            hu["bile"],
            _TEXTURE["fluid"],
        )
    ]


def _arteries(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Aorta (a z-swept tube, left of the midline) and the iliac arteries below its fork."""
    y0 = body.spine_y
    fork = -_uniform(rng, (230, 280))
    r = _uniform(rng, (9, 13))
    x0 = -_uniform(rng, (8, 18))
    knots, xs, ys = (fork, -50.0, 400.0), (x0, x0 - 2, x0 - 12), (y0 + 35, y0 + 30, y0 + 10)
    radii = (0.85 * r, r, 1.1 * r)

    def aorta(x, y, z, f):
        return np.maximum(_ztube(x, y, z, knots, xs, ys, radii, radii), fork - z)

    ends = [(side * _uniform(rng, (45, 60)), y0 + 20, fork - 130) for side in (-1, 1)]
    start = (x0, y0 + 35, fork + 3)
    ri = _uniform(rng, (5.5, 7.5))

    def iliac(x, y, z, f):
        return np.minimum(
            _capsule(x, y, z, start, ends[0], ri, ri), _capsule(x, y, z, start, ends[1], ri, ri)
        )

    column = ((-60.0, y0 - 20, fork - 10), (60.0, y0 + 60, 420.0))
    return [
        _Organ("aorta", *column, aorta, hu["aorta"], _TEXTURE["blood"]),
        _Organ(
            "iliac arteries",
            *_points_box([start, *ends], ri),
            iliac,
            hu["aorta"],
            _TEXTURE["blood"],
        ),
    ]


def _veins(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Inferior vena cava (flattened, right of the midline, through the liver) and portal vein."""
    y0, s = body.spine_y, body.liver_scale
    vx, vr = _uniform(rng, (18, 28)), _uniform(rng, (0.8, 1.2))
    bottom = body.crest - _uniform(rng, (0, 20))

    def ivc(x, y, z, f):
        d = _ztube(
            x,
            y,
            z,
            (bottom, 20.0),
            (vx, vx + 4),
            (y0 + 28, y0 + 32),
            (13 * vr, 15 * vr),
            (9 * vr, 12 * vr),
        )
        return np.maximum(d, _slab(z, bottom, 20.0))

    hilum = ((0.45 * body.cavity_a - 25 * s), y0 + 70, -65 * s)
    confluence = (5.0, y0 + 55, -95.0)
    rp = _uniform(rng, (6.5, 9))
    return [
        _Organ(
            "ivc",
            (-60.0, y0 - 20, bottom - 5),
            (60.0, y0 + 60, 25.0),
            ivc,
            hu["ivc"],
            _TEXTURE["blood"],
        ),
        _Organ(
            "portal vein",
            *_points_box([hilum, confluence], rp),
            lambda x, y, z, f: _capsule(x, y, z, confluence, hilum, rp, rp),
            hu["portal_vein"],
            _TEXTURE["blood"],
        ),
    ]


def _muscles(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Paraspinal muscles, and the psoas widening downwards from the kidneys."""
    y0 = body.spine_y
    px, py = _uniform(rng, (28, 36)), _uniform(rng, (40, 50))
    pr = (_uniform(rng, (24, 32)), _uniform(rng, (18, 24)))

    def paraspinal(x, y, z, f):
        return np.minimum(_ellipse(x, y, px, y0 - py, *pr), _ellipse(x, y, -px, y0 - py, *pr))

    grow = _uniform(rng, (0.08, 0.12))
    zk = (-420.0, -300.0, -200.0, -80.0)
    rk = tuple(min(25.0, 4 + grow * (-80 - z)) for z in zk)
    xk = tuple(26 + 0.15 * (-80 - z) for z in zk)

    def psoas(x, y, z, f):
        d = np.minimum(
            _ztube(x, y, z, zk, xk, (y0,) * 4, rk, rk),
            _ztube(x, y, z, zk, tuple(-v for v in xk), (y0,) * 4, rk, rk),
        )
        return np.maximum(d, z + 80)

    return [
        _Organ(
            "paraspinal muscles",
            (-px - pr[0] - 3, y0 - py - pr[1] - 3, -_INF),
            (px + pr[0] + 3, y0 - py + pr[1] + 3, _INF),
            paraspinal,
            hu["muscle"],
            _TEXTURE["muscle"],
        ),
        _Organ(
            "psoas",
            (-110.0, y0 - 30, -430.0),
            (110.0, y0 + 30, -75.0),
            psoas,
            hu["muscle"],
            _TEXTURE["muscle"],
        ),
    ]


def _spine(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Vertebral bodies (cortex, marrow) between discs, arches and canal, down to the sacrum."""
    y0 = body.spine_y
    rx, ry = 22 * _uniform(rng, (0.9, 1.15)), 17 * _uniform(rng, (0.9, 1.15))
    period, disc = _uniform(rng, (28, 36)), _uniform(rng, (5, 9))
    phase = _uniform(rng, (0, period))
    shell = _uniform(rng, (1.5, 2.5))

    end = body.crest - 25  # the lumbosacral junction

    def gaps(z, extra=0.0):
        w = np.mod(z - phase + period / 2, period) - period / 2
        return np.maximum(np.abs(w) - (period - disc) / 2 + extra, end - z)

    def discs(x, y, z, f):
        return np.maximum(_ellipse(x, y, 0.0, y0, rx, ry), end - z)

    def body_col(x, y, z, f):
        return np.maximum(_ellipse(x, y, 0.0, y0, rx, ry), gaps(z))

    def arch(x, y, z, f):
        spinous = _capsule(x, y, 0.0, (0, y0 - ry, 0), (0, y0 - ry - 42, 0), 6.0, 5.0)
        transverse = _capsule(x, y, 0.0, (-34, y0 - ry - 8, 0), (34, y0 - ry - 8, 0), 5.0, 5.0)
        return np.maximum(np.minimum(spinous, transverse), gaps(z, 4.0))

    def canal(x, y, z, f):
        return np.maximum(_ellipse(x, y, 0.0, y0 - ry - 10, 9.0, 8.0), end - z)

    col = ((-rx - 4, y0 - ry - 4, end - 5), (rx + 4, y0 + ry + 4, _INF))
    back = ((-45.0, y0 - ry - 55, end - 5), (45.0, y0 - ry + 2, _INF))
    return [
        _Organ("discs", *col, discs, hu["disc"]),
        _Organ("vertebral cortex", *col, body_col, hu["cortical"], _TEXTURE["bone"]),
        _Organ(
            "vertebral marrow",
            *col,
            lambda x, y, z, f: body_col(x, y, z, f) + shell,
            hu["cancellous"],
            _TEXTURE["bone"],
        ),
        _Organ("vertebral arches", *back, arch, hu["cortical"], _TEXTURE["bone"]),
        _Organ("spinal canal", *back, canal, hu["csf"]),
    ]


def _ribs(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Ribs in the muscle wall, sloping down anteriorly, the last two floating; cartilage."""
    period = _uniform(rng, (24, 32))
    lowest = -_uniform(rng, (110, 150))
    count = int(math.ceil((120 - lowest) / period))
    top = lowest + (count - 1) * period
    slope = _uniform(rng, (20, 35))
    rr, rz = _uniform(rng, (3.5, 5)), _uniform(rng, (5, 8))
    depth = body.fat + 0.5 * body.muscle
    reach = np.full(count, 2.6)
    reach[-2:] = (1.6, 1.1)  # floating ribs end laterally
    bone_end = 2.0

    def rib(x, y, z, f, lo, hi):
        u = np.arctan2(np.abs(x), -y)
        n = np.clip(np.rint((top - slope * u - z) / period), 0, count - 1)
        zc = top - n * period - slope * u
        radial = body.outline(x, y, z, f) + depth
        e = np.sqrt((radial / rr) ** 2 + ((z - zc) / rz) ** 2)
        rho = np.sqrt(x * x + y * y)
        end = np.minimum(reach[n.astype(np.int64)], hi)
        return np.maximum((e - 1) * min(rr, rz), np.maximum(rho * (lo - u), rho * (u - end)))

    a, b = body.half_width + 10, body.half_depth + 10
    box = ((-a, -b, lowest - slope * 2.7 - 10), (a, b, top + 10))
    front = ((box[0][0], 0.0, box[0][2]), box[1])  # the cartilage lies where u > 2 rad
    return [
        _Organ(
            "ribs",
            *box,
            lambda x, y, z, f: rib(x, y, z, f, 0.3, bone_end),
            hu["rib"],
            _TEXTURE["bone"],
        ),
        _Organ(
            "costal cartilage",
            *front,
            lambda x, y, z, f: rib(x, y, z, f, bone_end, 9.0),
            hu["cartilage"],
        ),
    ]


def _pelvis(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Bladder, iliac wings and sacrum (cortex and marrow)."""
    ca, cb = body.cavity_a, body.cavity_b
    organs = []
    c = (0.0, 0.3 * cb, -_uniform(rng, (380, 410)))
    r = tuple(v * _uniform(rng, (0.5, 1.3)) for v in (45.0, 35.0, 40.0))
    organs.append(
        _Organ(
            "bladder",
            *_around(c, max(r)),
            lambda x, y, z, f: _ellipsoid(x, y, z, c, r),
            hu["urine"],
            _TEXTURE["fluid"],
        )
    )
    crest = body.crest
    for side in (-1, 1):
        wc = (side * 0.62 * ca, -0.2 * cb, crest - 55)
        wr = (12.0, 55.0, 55.0)
        rot = _rot_z(side * math.radians(_uniform(rng, (25, 40))))
        for name, grow, key in (("cortex", 0.0, "cortical"), ("marrow", 3.0, "cancellous")):
            organs.append(
                _Organ(
                    f"iliac wing {name}",
                    *_around(wc, 60.0),
                    lambda x, y, z, f, c=wc, r=wr, q=rot, g=grow: _ellipsoid(x, y, z, c, r, q) + g,
                    hu[key],
                    _TEXTURE["bone"],
                )
            )
    sc, sr = (0.0, body.spine_y - 5, crest - 70), (45.0, 20.0, 60.0)
    srot = _rot_x(math.radians(_uniform(rng, (20, 35))))
    for name, grow, key in (("cortex", 0.0, "cortical"), ("marrow", 3.0, "cancellous")):
        organs.append(
            _Organ(
                f"sacrum {name}",
                *_around(sc, 60.0),
                lambda x, y, z, f, g=grow: _ellipsoid(x, y, z, sc, sr, srot) + g,
                hu[key],
                _TEXTURE["bone"],
            )
        )
    return organs


def _build_organs(rng, body: _Body, contrast: _Contrast) -> list[_Organ]:
    """Every organ but the tumours, in priority order (later ones carve earlier ones)."""
    hu = contrast.hu
    kidneys = _draw_kidneys(rng, body)
    return (
        _wall_organs(rng, body, hu)
        + _spleen(rng, body, contrast)
        + _small_bowel(rng, body, hu)
        + _colon(rng, body, hu)
        + _liver_organs(rng, body, hu, kidneys[1])
        + _stomach(rng, body, hu)
        + _kidney_organs(kidneys, contrast)
        + _pancreas(rng, body, hu)
        + _gallbladder(rng, body, hu)
        + _pelvis(rng, body, hu)
        + _thorax(rng, body, hu)
        + _veins(rng, body, hu)
        + _arteries(rng, body, hu)
        + _muscles(rng, body, hu)
        + _spine(rng, body, hu)
        + _ribs(rng, body, hu)
    )


# ----------------------------------------------------------------------------
# Rendering


class _FieldCache:
    """Smooth fields and shared shapes on grid boxes; the most recent ones are kept.

    At most ``max_bytes`` are kept (the oldest go first), so large grids recompute
    rather than hold a dozen full-size arrays.
    """

    def __init__(self, fields, grid: _Grid, max_bytes: int = 128 * 2**20):
        self.grid = grid
        self._fields, self._max_bytes = fields, max_bytes
        self._cache: dict[tuple, np.ndarray] = {}

    def _remember(self, key, make: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self._cache:
            value = make()
            while self._cache and (
                sum(v.nbytes for v in self._cache.values()) + value.nbytes > self._max_bytes
            ):
                del self._cache[next(iter(self._cache))]
            self._cache[key] = value
        return self._cache[key]

    def get(self, j: int, box) -> np.ndarray:
        axes = [self.grid.axis(a, box[a]) for a in range(3)]
        return self._remember((j, _box_key(box)), lambda: self._fields[j].on_axes(*axes))

    def on(self, box) -> Callable[[int], np.ndarray]:
        return lambda j: self.get(j, box)

    def shape_on(self, sdf, box) -> np.ndarray:
        """``sdf`` at the voxel centres of ``box`` (shared by layers that only offset it)."""
        shape = tuple(s.stop - s.start for s in box)
        return self._remember(
            (sdf, _box_key(box)),
            lambda: np.broadcast_to(sdf(*self.grid.body_coords(box), self.on(box)), shape),
        )


def _box_key(box) -> tuple:
    return tuple((s.start, s.stop) for s in box)


def _intersect(box, outer):
    """``box`` cut to ``outer``, and the same region relative to ``outer``; or None."""
    cut = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(box, outer))
    if any(s.stop <= s.start for s in cut):
        return None
    return cut, tuple(slice(c.start - b.start, c.stop - b.start) for c, b in zip(cut, outer))


def _occupancy(organ: _Organ, fields: _FieldCache, parents: dict):
    """(box, fraction of each voxel inside the organ, the box's fields) or None."""
    grid = fields.grid
    box = grid.box(organ.lo, organ.hi)
    if box is None:
        return None
    if organ.within is not None:
        if organ.within not in parents:
            return None
        parent_box, parent_occ = parents[organ.within]
        cut = _intersect(box, parent_box)
        if cut is None:
            return None
        box, relative = cut
    field = fields.on(box)
    f = fields.shape_on(organ.sdf, box) + np.float32(organ.offset)
    occ = (f < 0).astype(np.float32)
    band = np.nonzero(np.abs(f) < grid.band)
    if band[0].size:
        sub = organ.sdf(*grid.subsamples(box, band), lambda j: field(j)[band][:, None])
        inside = np.broadcast_to(sub + organ.offset < 0, (band[0].size, sub.shape[-1]))
        occ[band] = np.mean(inside, axis=1)
    if organ.within is not None:
        occ = np.minimum(occ, parent_occ[relative])
    return box, occ, field


def _texture(organ: _Organ, field: Callable[[int], np.ndarray]) -> np.ndarray | float:
    """The organ's HU on its box: mean plus its smooth texture."""
    out = np.float32(organ.hu)
    for j, amplitude in organ.texture:
        out = out + np.float32(amplitude) * field(j)
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class _Canvas:
    """The image being composited, the liver label and the liver's share of each voxel."""

    image: np.ndarray
    liver: np.ndarray  # bool: the top layer (occupancy >= 0.5) belongs to the liver
    liver_share: np.ndarray


def _render(organs: list[_Organ], fields: _FieldCache, air: float) -> _Canvas:
    """Lays every organ in order on an air-filled canvas."""
    shape = fields.grid.shape
    canvas = _Canvas(
        np.full(shape, air, np.float32), np.zeros(shape, bool), np.zeros(shape, np.float32)
    )
    parents: dict[str, tuple] = {}
    needed = {o.within for o in organs if o.within}
    for organ in organs:
        out = _occupancy(organ, fields, parents)
        if out is None:
            continue
        box, occ, field = out
        if organ.name in needed:
            parents[organ.name] = (box, occ)
        _paint(canvas, box, occ, _texture(organ, field), organ.liver)
    return canvas


def _paint(canvas: _Canvas, box, occ: np.ndarray, hu, liver: bool) -> None:
    """Lays a layer over the canvas ("over" compositing) and updates the liver label."""
    img = canvas.image[box]
    img += occ * (hu - img)
    share = canvas.liver_share[box]
    share += occ * (float(liver) - share)
    top = canvas.liver[box]
    top[occ >= 0.5] = liver


# ----------------------------------------------------------------------------
# Tumours


@dataclasses.dataclass(frozen=True)
class _Tumour:
    kind: str
    centre: tuple[float, float, float]  # body frame
    radii: tuple[float, float, float]
    rot: np.ndarray
    lobulation: float
    hu: float
    rim_hu: float | None
    rim: float


def _tumour_centres(rng, liver: np.ndarray, grid: _Grid, radii) -> list:
    """Centres inside the liver label: deep enough for most, on the border for some."""
    crop = tuple(slice(max(0, i.min() - 1), i.max() + 2) for i in np.nonzero(liver))
    depth = np.zeros(liver.shape)
    depth[crop] = ndimage.distance_transform_edt(liver[crop], sampling=grid.spacing)
    border = np.nonzero(liver & (depth <= 1.01 * max(grid.spacing)))
    centres = []
    for r in radii:
        if rng.uniform() < 0.2 and border[0].size:
            pick = border
        else:
            pick = np.nonzero(depth >= min(0.6 * r, 0.8 * depth.max()))
        k = int(rng.integers(pick[0].size))
        world = [
            grid.axis(a)[pick[a][k]] + grid.spacing[a] * rng.uniform(-0.5, 0.5) for a in range(3)
        ]
        centres.append(tuple(float(v) for v in grid.to_body(*world)))
    return centres


def _tumour_hu(rng, kind: str, liver_hu: float, radius: float) -> tuple:
    """(mean HU, rim HU or None, rim thickness mm) of one tumour kind."""
    if kind == "hypodense":
        return max(10.0, liver_hu - _uniform(rng, (20, 70))), None, 0.0
    if kind == "hyperdense":
        return liver_hu + _uniform(rng, (15, 60)), None, 0.0
    if kind == "cystic":
        return _uniform(rng, (0, 20)), None, 0.0
    core = max(5.0, liver_hu - _uniform(rng, (40, 80)))
    return core, liver_hu + _uniform(rng, (0, 40)), min(_uniform(rng, (1.5, 4)), 0.3 * radius)


def _draw_tumours(
    rng, liver: np.ndarray, grid: _Grid, liver_hu: float, max_tumours: int
) -> list[_Tumour]:
    """0 (p = 0.25) or 1..max_tumours tumours, 3-35 mm (log-uniform), centred in the liver."""
    count = 0
    if rng.uniform() >= 0.25 and max_tumours > 0:
        count = int(rng.integers(1, max_tumours + 1))
    if liver.sum() < 20:
        count = 0
    radii = [0.5 * math.exp(_uniform(rng, (math.log(3.0), math.log(35.0)))) for _ in range(count)]
    centres = _tumour_centres(rng, liver, grid, radii) if count else []
    tumours = []
    for r, c in zip(radii, centres):
        kind = _choice(rng, TUMOUR_KINDS, TUMOUR_WEIGHTS)
        hu, rim_hu, rim = _tumour_hu(rng, kind, liver_hu, r)
        axes = (r, r * _uniform(rng, (0.75, 1.0)), r * _uniform(rng, (0.75, 1.0)))
        tumours.append(
            _Tumour(
                kind=kind,
                centre=c,
                radii=axes,
                rot=_frame(rng.standard_normal(3), rng.standard_normal(3)),
                hu=hu,
                rim_hu=rim_hu,
                rim=rim,
                lobulation=0.0 if kind == "cystic" or r < 6 else 0.12 * r,
            )
        )
    return tumours


def _tumour_layers(t: _Tumour, index: int) -> list[_Organ]:
    """The layers of one tumour: its body, or a rim and a core."""

    def outer(x, y, z, f):
        return _ellipsoid(x, y, z, t.centre, t.radii, t.rot) + t.lobulation * f(4 + index % 2)

    box = _around(t.centre, max(t.radii) + t.lobulation * 4)
    tex = ((3, 1.0),) if t.kind == "cystic" else ((5, _tumour_texture(t)),)
    if t.rim_hu is None:
        return [_Organ(f"tumour {index}", *box, outer, t.hu, tex)]
    return [
        _Organ(f"tumour {index} rim", *box, outer, t.rim_hu, tex),
        _Organ(f"tumour {index}", *box, lambda x, y, z, f: outer(x, y, z, f) + t.rim, t.hu, tex),
    ]


def _tumour_texture(t: _Tumour) -> float:
    """HU amplitude of the fine texture: larger tumours are more heterogeneous."""
    return 3.0 + 7.0 * min(1.0, max(t.radii) / 15.0)


def _add_tumours(canvas: _Canvas, tumours: list[_Tumour], fields: _FieldCache) -> tuple:
    """Paints the tumours within the liver; returns (labels, tumours with label voxels)."""
    labels = canvas.liver.astype(np.uint8)
    liver = canvas.liver.copy()
    labelled = 0
    for i, t in enumerate(tumours):
        hit = False
        for organ in _tumour_layers(t, i):
            out = _occupancy(organ, fields, {})
            if out is None:
                continue
            box, occ, field = out
            occ = np.minimum(occ, canvas.liver_share[box])
            img = canvas.image[box]
            img += occ * (_texture(organ, field) - img)
            inside = (occ >= 0.5) & liver[box]
            labels[box][inside] = 2
            hit = hit or bool(inside.any())
        labelled += hit
    return labels, labelled


# ----------------------------------------------------------------------------
# Geometry of the scan


def _draw_thickness(rng, bounds) -> float:
    """A common reconstruction thickness (p = 0.7) or any value of the range."""
    common = [t for t in COMMON_THICKNESSES if bounds[0] <= t <= bounds[1]]
    if common and rng.uniform() < 0.7:
        return float(common[int(rng.integers(len(common)))])
    return float(np.clip(round(_uniform(rng, bounds), 2), *bounds))


def _f32(v: float) -> float:
    return float(np.float32(v))


def _draw_slab(rng, body: _Body, length: float) -> tuple[float, float]:
    """Body-frame z range of the scan: mostly through the liver, else anywhere in the abdomen."""
    if rng.uniform() < 0.75:
        centre = _uniform(rng, (body.liver_bottom + 15, 5.0))
    else:
        lo, hi = -400 + length / 2, 80 - length / 2
        centre = _uniform(rng, (lo, hi)) if lo < hi else -160.0
    return centre - length / 2, centre + length / 2


def _draw_view(rng, body: _Body, opts: _Options, slab) -> tuple:
    """Pixel size, in-plane shape and the body-frame point at the centre of the view."""
    half_width = float(np.max(body.width_at(np.array(slab))))
    margin = _uniform(rng, (8, 40))
    fit = (2 * half_width + 2 * margin) / opts.size
    mode = "zoom" if rng.uniform() < 0.2 else "fit"
    pixel = fit * (_uniform(rng, (0.6, 0.95)) if mode == "zoom" else 1.0)
    pixel = _f32(round(float(np.clip(pixel, *opts.spacing_range)), 4))
    nx = ny = opts.size
    if mode == "fit" and rng.uniform() < 0.3:
        ny = min(opts.size, 4 * math.ceil((2 * body.half_depth + 2 * margin) / pixel / 4))
    if mode == "zoom":  # a targeted reconstruction, centred towards the liver
        view = (
            _uniform(rng, (0.2, 0.6)) * body.cavity_a,
            _uniform(rng, (-0.1, 0.2)) * body.cavity_b,
        )
    else:
        slack_x = max(0.0, nx * pixel / 2 - half_width)
        slack_y = max(0.0, ny * pixel / 2 - body.half_depth)
        view = (_uniform(rng, (-0.8, 0.8)) * slack_x, _uniform(rng, (-0.8, 0.8)) * slack_y)
    return mode, pixel, (nx, ny), view


def _draw_grid(rng, body: _Body, opts: _Options) -> _Grid:
    """Slice thickness, slab, field of view and the body's pose in scanner coordinates."""
    dz = _f32(_draw_thickness(rng, opts.thickness_range))
    slab = _draw_slab(rng, body, dz * opts.num_slices)
    mode, pixel, (nx, ny), view = _draw_view(rng, body, opts, slab)
    angle = math.radians(_uniform(rng, (-6, 6)))
    body_origin = np.array(
        [_uniform(rng, (-25, 25)), _uniform(rng, (-120, 40)), _uniform(rng, (-900, 100))]
    )
    centre = _rot_z(angle) @ np.array([view[0], view[1], (slab[0] + slab[1]) / 2]) + body_origin
    shape = (nx, ny, opts.num_slices)
    spacing = (pixel, pixel, dz)
    origin = centre - np.array([(n - 1) * s / 2 for n, s in zip(shape, spacing)])
    origin = np.array([_f32(round(v, 3)) for v in origin])
    return _Grid(shape, spacing, origin, body_origin, angle, mode, slab)


# ----------------------------------------------------------------------------
# Scanner: blur, noise, quantisation


def _scan(rng, image: np.ndarray, grid: _Grid, body: _Body) -> tuple[np.ndarray, float]:
    """Point-spread blur (in-plane kernel, slice profile), correlated noise, integer HU."""
    sx, sy, sz = grid.spacing
    psf = _uniform(rng, (0.4, 0.8))
    sigma = [psf / sx, psf / sy, _uniform(rng, (0.2, 0.45))]
    sigma = [s if s >= 0.2 else 0.0 for s in sigma]
    out = ndimage.gaussian_filter(image, sigma, mode="nearest")
    sd = _uniform(rng, (8, 20)) * (body.half_width / 165) ** 1.5 * math.sqrt(2.5 / max(sz, 0.7))
    sd = float(np.clip(sd, 5.0, 30.0))
    grain = _uniform(rng, (0.5, 0.9))
    noise = rng.standard_normal(grid.shape, dtype=np.float32)
    corr = [grain / sx, grain / sy, 0.0]
    if corr[0] >= 0.3:
        noise = ndimage.gaussian_filter(noise, corr, mode="wrap")
    noise *= np.float32(sd / max(float(noise.std()), 1e-6))
    out += noise
    return np.clip(np.rint(out), HU_MIN, HU_MAX), sd


# ----------------------------------------------------------------------------
# Storage


@dataclasses.dataclass(frozen=True)
class _Storage:
    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    dtype: str
    suffix: str
    xform: str
    fov_circle: bool
    padding: int


def _draw_storage(rng) -> _Storage:
    """Axis order and flips (any of 48), data type, suffix, header transforms, FOV circle."""
    perms = list(itertools.permutations(range(3)))
    if rng.uniform() < 0.9:
        perm = _choice(rng, [(0, 1, 2), (1, 0, 2)], (0.5, 0.5))
    else:
        perm = _choice(rng, [p for p in perms if p[2] != 2], (1,) * 4)
    flips = tuple(bool(v) for v in rng.uniform(size=3) < 0.5)
    dtype = _choice(rng, DTYPES, DTYPE_WEIGHTS)
    suffix = _choice(rng, SUFFIXES, (0.4, 0.6))
    xform = _choice(rng, ("both", "sform", "qform"), (0.7, 0.15, 0.15))
    circle = bool(rng.uniform() < 0.25)
    padding = -2048 if circle and dtype != "uint16" and rng.uniform() < 0.3 else -1024
    return _Storage(tuple(perm), flips, dtype, suffix, xform, circle, padding)


def _override_storage(storage: _Storage, orientation, dtype, suffix) -> _Storage:
    changes = {}
    if orientation is not None:
        perm, flips = orientation
        if sorted(perm) != [0, 1, 2] or len(flips) != 3:
            raise ConfigError(
                f"orientation must be (permutation of 0,1,2, three flips), got {orientation}"
            )
        changes.update(permutation=tuple(int(p) for p in perm), flips=tuple(bool(f) for f in flips))
    if dtype is not None:
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        changes["dtype"] = dtype
        if dtype == "uint16":
            changes["padding"] = -1024
    if suffix is not None:
        if suffix not in SUFFIXES:
            raise ConfigError(f"suffix must be one of {SUFFIXES}, got {suffix!r}")
        changes["suffix"] = suffix
    return dataclasses.replace(storage, **changes)


def _fov_circle(grid: _Grid) -> np.ndarray:
    """True outside the reconstruction circle inscribed in the in-plane field of view."""
    x = (np.arange(grid.shape[0]) - (grid.shape[0] - 1) / 2) * grid.spacing[0]
    y = (np.arange(grid.shape[1]) - (grid.shape[1] - 1) / 2) * grid.spacing[1]
    radius = min(grid.shape[0] * grid.spacing[0], grid.shape[1] * grid.spacing[1]) / 2
    return (x[:, None] ** 2 + y[None, :] ** 2) > radius**2


def _reorient(array: np.ndarray, storage: _Storage) -> np.ndarray:
    """The canonical (RAS) array in the stored axis order and directions."""
    out = np.transpose(array, storage.permutation)
    for a, flip in enumerate(storage.flips):
        if flip:
            out = np.flip(out, axis=a)
    return np.ascontiguousarray(out)


def _stored_affine(grid: _Grid, storage: _Storage) -> np.ndarray:
    """The affine of the stored array: world positions are unchanged by the reordering."""
    index_map = np.zeros((4, 4))
    index_map[3, 3] = 1.0
    for a, (p, flip) in enumerate(zip(storage.permutation, storage.flips)):
        index_map[p, a] = -1.0 if flip else 1.0
        index_map[p, 3] = grid.shape[p] - 1 if flip else 0.0
    affine = grid.affine @ index_map
    return affine.astype(np.float32).astype(np.float64)


def _encode(hu: np.ndarray, dtype: str) -> tuple[np.ndarray, float, float]:
    """(stored array, scl_slope, scl_inter): uint16 stores HU + 1024 with intercept -1024."""
    if dtype == "uint16":
        return (hu - HU_MIN).astype(np.uint16), 1.0, float(HU_MIN)
    return hu.astype(np.dtype(dtype)), 1.0, 0.0


# ----------------------------------------------------------------------------
# Public API


def make_external_phantom(
    seed: int,
    index: int,
    *,
    size: int = 96,
    num_slices: int = 32,
    spacing_range: tuple[float, float] = (0.6, 4.0),
    thickness_range: tuple[float, float] = (0.7, 5.0),
    max_tumours: int = 10,
    orientation=None,
    dtype: str | None = None,
    suffix: str | None = None,
) -> ExternalPhantom:
    """Builds phantom ``index`` of family ``seed``.

    The in-plane shape is at most ``size`` x ``size`` (the pixel size is chosen so
    the body fits, within ``spacing_range``), with ``num_slices`` slices of a
    thickness drawn in ``thickness_range``. ``orientation`` ((permutation, flips)
    of the canonical RAS axes), ``dtype`` and ``suffix`` force the storage; the
    anatomy and image do not change with them.
    """
    opts = _options(size, num_slices, spacing_range, thickness_range, max_tumours)
    rngs = _streams(seed, index)
    storage = _override_storage(_draw_storage(rngs["storage"]), orientation, dtype, suffix)
    contrast = _draw_contrast(rngs["contrast"])
    body = _draw_body(rngs["body"])
    grid = _draw_grid(rngs["geometry"], body, opts)
    fields = _FieldCache(_draw_fields(rngs["fields"]), grid)
    canvas = _render(_build_organs(rngs["organs"], body, contrast), fields, contrast.hu["air"])
    tumours = _draw_tumours(
        rngs["tumours"], canvas.liver, grid, contrast.hu["liver"], opts.max_tumours
    )
    labels, labelled = _add_tumours(canvas, tumours, fields)
    hu, noise_sd = _scan(rngs["scan"], canvas.image, grid, body)
    if storage.fov_circle:
        outside = _fov_circle(grid)
        hu[outside] = storage.padding
        labels[outside] = 0
    data, slope, inter = _encode(hu, storage.dtype)
    affine = _stored_affine(grid, storage)
    drawn = Drawn(
        seed=int(seed),
        index=int(index),
        phase=contrast.phase,
        axcodes=tuple(nib.aff2axcodes(affine)),
        permutation=storage.permutation,
        flips=storage.flips,
        dtype=storage.dtype,
        suffix=storage.suffix,
        xform=storage.xform,
        fov_circle=storage.fov_circle,
        padding=storage.padding,
        fov_mode=grid.fov_mode,
        shape=tuple(int(grid.shape[p]) for p in storage.permutation),
        spacing=tuple(float(grid.spacing[p]) for p in storage.permutation),
        slab_mm=(round(grid.slab[0], 1), round(grid.slab[1], 1)),
        body_width_mm=round(2 * body.half_width, 1),
        liver_scale=round(body.liver_scale, 3),
        liver_hu=round(contrast.hu["liver"], 1),
        noise_sd=round(noise_sd, 1),
        num_tumours=len(tumours),
        num_tumours_labelled=labelled,
        tumour_kinds=tuple(t.kind for t in tumours),
        tumour_diameters_mm=tuple(round(2 * max(t.radii), 1) for t in tumours),
    )
    return ExternalPhantom(
        data=_reorient(data, storage),
        labels=_reorient(labels, storage),
        affine=affine,
        spacing=drawn.spacing,
        scl_slope=slope,
        scl_inter=inter,
        drawn=drawn,
    )


def _header(phantom: ExternalPhantom, dtype, slope: float, inter: float) -> nib.Nifti1Header:
    """A NIfTI-1 header for the phantom's volume or labels (units mm, transforms as drawn)."""
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(phantom.data.shape)
    hdr.set_data_dtype(dtype)
    xform = phantom.drawn.xform
    hdr.set_qform(phantom.affine, code=0 if xform == "sform" else 1)
    hdr.set_sform(phantom.affine, code=0 if xform == "qform" else 1)
    hdr.set_zooms(phantom.spacing)
    hdr.set_xyzt_units("mm", "sec")
    hdr["scl_slope"], hdr["scl_inter"] = slope, inter
    d = phantom.drawn
    hdr["descrip"] = (
        f"liverseg external phantom seed={d.seed} index={d.index} phase={d.phase}"
    ).encode()[:79]
    hdr["vox_offset"] = 0
    return hdr


def _write_nifti(path: Path, data: np.ndarray, hdr: nib.Nifti1Header, overwrite: bool) -> None:
    """Atomic write; gzip output has mtime 0 and no name, so it is byte-deterministic."""
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "wb") as raw:
        out = (
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
            if path.name.endswith(".gz")
            else raw
        )
        hdr.write_to(out)
        out.write(np.asarray(data, dtype=hdr.get_data_dtype()).tobytes(order="F"))
        if out is not raw:
            out.close()
        raw.flush()
        os.fsync(raw.fileno())


def write_phantom(
    phantom: ExternalPhantom, volume_path, segmentation_path, *, overwrite: bool = False
) -> None:
    """Writes one phantom's volume and label map (same affine, header transforms and suffix)."""
    _write_nifti(
        Path(segmentation_path), phantom.labels, _header(phantom, np.uint8, 1.0, 0.0), overwrite
    )
    _write_nifti(
        Path(volume_path),
        phantom.data,
        _header(phantom, phantom.data.dtype, phantom.scl_slope, phantom.scl_inter),
        overwrite,
    )


def _case_paths(output_dir: Path, index: int, suffix: str) -> tuple[Path, Path]:
    return (
        safe_output_path(output_dir, f"volume-{index}{suffix}"),
        safe_output_path(output_dir, f"segmentation-{index}{suffix}"),
    )


def _check_outputs(output_dir: Path, indices, suffixes, overwrite: bool) -> list[Path]:
    """Refuses existing cases unless ``overwrite``; returns the other-suffix files to remove."""
    stale = []
    if output_dir.exists() and not output_dir.is_dir():
        raise OutputError(output_dir, "output directory is not a directory")
    for index, suffix in zip(indices, suffixes):
        for s in SUFFIXES:
            for path in _case_paths(output_dir, index, s):
                check_can_write(path, overwrite)
                if s != suffix and (path.exists() or path.is_symlink()):
                    stale.append(path)
    return stale


def write_external_phantoms(
    output_dir,
    num: int,
    seed: int,
    *,
    start_index: int = 0,
    size: int = 96,
    num_slices: int = 32,
    overwrite: bool = False,
    **options,
) -> list[tuple[Path, Path]]:
    """Writes phantoms ``start_index .. start_index + num - 1`` of ``seed`` in LiTS layout.

    Files are ``volume-N`` / ``segmentation-N`` with each phantom's drawn suffix.
    Existing cases (either suffix) are refused before anything is written unless
    ``overwrite``; then a case's file under the other suffix is removed, so the
    directory never holds two files for one index. ``options`` go to
    :func:`make_external_phantom`. Returns (volume, segmentation) paths.
    """
    if int(num) != num or num < 0:
        raise ConfigError(f"num must be a non-negative integer, got {num}")
    if int(start_index) != start_index or start_index < 0:
        raise ConfigError(f"start_index must be a non-negative integer, got {start_index}")
    out = Path(output_dir)
    indices = range(int(start_index), int(start_index) + int(num))
    suffixes = [
        options.get("suffix") or _draw_storage(_streams(seed, i)["storage"]).suffix for i in indices
    ]
    stale = _check_outputs(out, indices, suffixes, overwrite)
    written = []
    for index in indices:
        phantom = make_external_phantom(seed, index, size=size, num_slices=num_slices, **options)
        volume, segmentation = _case_paths(out, index, phantom.drawn.suffix)
        write_phantom(phantom, volume, segmentation, overwrite=overwrite)
        written.append((volume, segmentation))
        logger.info(
            "%s: %s phase, %s %s, %d tumour(s)",
            volume,
            phantom.drawn.phase,
            "".join(phantom.drawn.axcodes),
            phantom.drawn.dtype,
            phantom.drawn.num_tumours,
        )
    for path in stale:
        path.unlink()
        logger.info("removed %s (replaced under the other suffix)", path)
    return written
