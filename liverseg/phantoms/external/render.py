"""Composites the organs in priority order: each layer's occupancy of its
voxels (supersampled near the surface), its textured HU laid "over" the
canvas, and the liver label."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from liverseg.phantoms.external.grid import _Grid
from liverseg.phantoms.external.layers import _Organ


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
