"""Geometry primitives of the training generator: smooth waves, star-shaped
blobs moving along the slab, and the canvas a slice is painted on.

Shapes live in "body units": u = x / a (negative: the patient's right),
v = y / b (negative: anterior), with a, b the body half-axes in mm; t in
[0, 1] runs from the slab's first (inferior) to last slice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from liverseg.phantoms.training.tissues import Tissue


@dataclasses.dataclass(frozen=True)
class _Wave:
    """A smooth random function of t: a sum of a few slow sinusoids."""

    amps: tuple[float, ...]
    freqs: tuple[float, ...]
    phases: tuple[float, ...]

    @staticmethod
    def draw(rng: np.random.Generator, amp: float, n: int = 2, max_freq: float = 1.5) -> _Wave:
        return _Wave(
            tuple(rng.uniform(0.3, 1.0, n) * amp / n),
            tuple(rng.uniform(0.2, max_freq, n)),
            tuple(rng.uniform(0, 2 * np.pi, n)),
        )

    def __call__(self, t: float) -> float:
        return float(
            sum(
                a * math.sin(2 * math.pi * f * t + p)
                for a, f, p in zip(self.amps, self.freqs, self.phases)
            )
        )


@dataclasses.dataclass(frozen=True)
class _Blob:
    """A smooth star-shaped 2D outline moving and changing along t.

    Inside when ``rho <= 1 + sum_k amp_k cos(k theta + phase_k(t))`` in the
    blob's own frame (centre, radii, rotation), within ``[t0, t1]`` where its
    size follows ``profile``.
    """

    cu: float
    cv: float
    ru: float
    rv: float
    t0: float = 0.0
    t1: float = 1.0
    angle: float = 0.0
    harmonics: tuple[tuple[int, float, float], ...] = ()
    drift_u: _Wave | None = None
    drift_v: _Wave | None = None
    slope_u: float = 0.0
    slope_v: float = 0.0
    phase_drift: float = 0.0
    profile: str = "flat"  # "flat", "ellipsoid", "lens", "liver", "rise", "fall"
    peak: float = 0.5

    def scale(self, t: float) -> float:
        if not self.t0 <= t <= self.t1:
            return 0.0
        s = (t - self.t0) / max(self.t1 - self.t0, 1e-9)
        if self.profile == "flat":
            return 1.0
        if self.profile == "lens":  # a sphere flattened at both ends
            return (1.0 - abs(2 * s - 1) ** 3) ** (1.0 / 3.0)
        if self.profile == "ellipsoid":
            return math.sqrt(max(0.0, 1.0 - (2 * s - 1) ** 2))
        if self.profile == "liver":  # a small inferior tip, widest near `peak`, a dome on top
            p = math.log(0.5) / math.log(self.peak)
            return 0.15 + 0.85 * math.sin(math.pi * s**p) ** 0.5
        if self.profile == "rise":
            return 0.35 + 0.65 * math.sin(0.5 * math.pi * s) ** 0.7
        if self.profile == "fall":
            return 0.35 + 0.65 * math.cos(0.5 * math.pi * s) ** 0.7
        raise ValueError(self.profile)

    def centre(self, t: float) -> tuple[float, float]:
        s = (t - self.t0) / max(self.t1 - self.t0, 1e-9)
        cu = self.cu + self.slope_u * s + (self.drift_u(t) if self.drift_u else 0.0)
        cv = self.cv + self.slope_v * s + (self.drift_v(t) if self.drift_v else 0.0)
        return cu, cv

    def reach(self) -> float:
        return 1.0 + sum(abs(a) for _, a, _ in self.harmonics)

    def depth(self, u: np.ndarray, v: np.ndarray, t: float) -> np.ndarray:
        """rho / r(theta): <= 1 inside, larger outside (inf where absent)."""
        sc = self.scale(t)
        if sc <= 0:
            return np.full(np.broadcast(u, v).shape, np.inf, dtype=np.float32)
        cu, cv = self.centre(t)
        du, dv = u - cu, v - cv
        if self.angle:
            c, s = math.cos(self.angle), math.sin(self.angle)
            du, dv = c * du + s * dv, -s * du + c * dv
        du = du / (self.ru * sc)
        dv = dv / (self.rv * sc)
        rho = np.sqrt(du * du + dv * dv)
        if not self.harmonics:
            return rho
        theta = np.arctan2(dv, du)
        r = np.ones_like(rho)
        for k, amp, phase in self.harmonics:
            r += amp * np.cos(k * theta + (phase + self.phase_drift * t))
        return rho / r

    def box(self, t: float, grow: float = 1.0) -> tuple[float, float, float, float] | None:
        sc = self.scale(t) * grow
        if sc <= 0:
            return None
        cu, cv = self.centre(t)
        ext = self.reach() * sc * max(self.ru, self.rv) if self.angle else None
        eu = ext if ext is not None else self.reach() * sc * self.ru
        ev = ext if ext is not None else self.reach() * sc * self.rv
        return cu - eu, cu + eu, cv - ev, cv + ev


def _harmonics(
    rng: np.random.Generator, amp: float, orders: Sequence[int] = (2, 3, 4)
) -> tuple[tuple[int, float, float], ...]:
    return tuple(
        (k, float(rng.uniform(0.3, 1.0) * amp / len(orders)), float(rng.uniform(0, 2 * np.pi)))
        for k in orders
    )


class _Canvas:
    """One slice being painted: tissue ids and clean HU, with body-unit axes."""

    def __init__(self, u: np.ndarray, v: np.ndarray):
        self.u, self.v = u, v
        self.tissue = np.zeros((u.size, v.size), dtype=np.uint8)

    def window(self, box) -> tuple[slice, slice] | None:
        u0, u1, v0, v1 = box
        i0, i1 = np.searchsorted(self.u, [u0, u1])
        j0, j1 = np.searchsorted(self.v, [v0, v1])
        i1, j1 = min(i1 + 1, self.u.size), min(j1 + 1, self.v.size)
        if i1 <= i0 or j1 <= j0:
            return None
        return slice(i0, i1), slice(j0, j1)

    def blob_depth(self, blob: _Blob, t: float, grow: float = 1.0):
        """(window, depth) of ``blob`` over its box grown by ``grow`` (depth <= 1 inside)."""
        box = blob.box(t, grow)
        win = None if box is None else self.window(box)
        if win is None:
            return None, None
        return win, blob.depth(self.u[win[0], None], self.v[None, win[1]], t)

    def blob_mask(self, blob: _Blob, t: float, shrink: float = 1.0):
        win, d = self.blob_depth(blob, t, max(1.0, shrink))
        return (None, None) if win is None else (win, d <= shrink)

    def paint(self, win, mask, tissue: Tissue, where: Sequence[Tissue] | None = None) -> None:
        if win is None:
            return
        target = self.tissue[win]
        if where is not None:
            mask = mask & np.isin(target, [int(w) for w in where])
        target[mask] = int(tissue)

    def paint_blob(
        self,
        blob: _Blob,
        t: float,
        tissue: Tissue,
        shrink: float = 1.0,
        where: Sequence[Tissue] | None = None,
    ) -> None:
        win, mask = self.blob_mask(blob, t, shrink)
        self.paint(win, mask, tissue, where)


def _union_box(boxes):
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        max(b[1] for b in boxes),
        min(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
