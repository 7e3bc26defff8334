"""Tumours: drawn after the liver is rendered (centres inside its label),
painted within it by its share of each voxel, and labelled 2."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from liverseg.phantoms.external.draws import _choice, _uniform
from liverseg.phantoms.external.grid import _Grid
from liverseg.phantoms.external.layers import _around, _Organ
from liverseg.phantoms.external.render import _Canvas, _FieldCache, _occupancy, _texture
from liverseg.phantoms.external.sdf import _ellipsoid, _frame

TUMOUR_KINDS = ("hypodense", "hyperdense", "cystic", "rim")
TUMOUR_WEIGHTS = (0.45, 0.2, 0.15, 0.2)


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
