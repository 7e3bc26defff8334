"""The scan's geometry: slice thickness, the slab along the body, the field of
view and pixel size, the body's pose, and the voxel grid (``_Grid``) that maps
voxels to body-frame millimetres."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from liverseg.phantoms.external.body import _Body
from liverseg.phantoms.external.draws import _Options, _uniform
from liverseg.phantoms.external.sdf import _rot_z

COMMON_THICKNESSES = (0.7, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)


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
