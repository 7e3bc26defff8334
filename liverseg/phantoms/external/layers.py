"""The layer every organ and tumour is made of (``_Organ``: a shape, its mean
HU and texture) and the bounding boxes its shape is evaluated on."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np


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
