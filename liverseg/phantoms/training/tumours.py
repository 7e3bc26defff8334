"""Tumour placement inside the final liver (after the organs that carve it):
the narrow style's 0-4 round-ish tumours and the wide style's 0-15 of mixed
kinds and sizes, found on a coarse grid of the painted liver."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from liverseg.phantoms.training.anatomy import _Anatomy
from liverseg.phantoms.training.paint import _paint_slice, _wall_shapes
from liverseg.phantoms.training.shapes import _Blob, _Canvas, _harmonics
from liverseg.phantoms.training.tissues import LIVER_TISSUES, Tissue

TUMOUR_KINDS = ("hypodense", "rim-enhancing", "hyperdense", "cystic")
# Probabilities of a phantom's main tumour kind (order of TUMOUR_KINDS).
_KIND_P = {"arterial": (0.3, 0.15, 0.35, 0.2)}
_KIND_P_DEFAULT = (0.45, 0.2, 0.1, 0.25)
#: the wide style's smallest first (index) lesion, in mm across
_INDEX_LESION_MM = 10.0


class _CoarseLiver:
    """Final liver masks (after every organ that carves it) on a coarse grid, per slice."""

    def __init__(self, an: _Anatomy, u: np.ndarray, v: np.ndarray):
        step = max(1, math.ceil(max(u.size, v.size) / 96))
        self.an = an
        self.u, self.v = u[::step], v[::step]
        self.pixel_mm = an.spacing[0] * step
        uu, vv = self.u[:, None], self.v[None, :]
        self.rho = np.sqrt(uu * uu + vv * vv)
        self.theta = np.arctan2(vv, uu)
        self.shapes = _wall_shapes(an, self.theta)
        self._masks: dict[int, np.ndarray] = {}
        self._room: dict[int, np.ndarray] = {}

    def liver(self, k: int) -> np.ndarray:
        if k not in self._masks:
            canvas = _Canvas(self.u, self.v)
            _paint_slice(self.an, canvas, k, self.rho, self.theta, *self.shapes, liver_only=True)
            self._masks[k] = np.isin(canvas.tissue, [int(t) for t in LIVER_TISSUES])
        return self._masks[k]

    def room(self, k: int) -> np.ndarray:
        """Distance (mm) from each liver pixel of slice ``k`` to the liver's outline."""
        if k not in self._room:
            self._room[k] = ndimage.distance_transform_edt(self.liver(k)) * self.pixel_mm
        return self._room[k]

    def blob(self, blob: _Blob, k: int) -> np.ndarray:
        canvas = _Canvas(self.u, self.v)
        canvas.paint_blob(blob, self.an.t(k), Tissue.TUMOUR)
        return canvas.tissue == Tissue.TUMOUR


def _place_tumours(rng: np.random.Generator, an: _Anatomy, coarse: _CoarseLiver) -> list[_Blob]:
    """0-4 round-ish tumours lying inside the final liver, apart from each other.

    The in-plane radius runs from a few pixels (at least 3) up to 16% of the
    liver's largest in-plane extent. Centres are drawn among liver pixels far
    enough from the liver's edge (after kidneys, gallbladder, vessels and
    spine have carved it) for the whole tumour to fit; along z the tumour is a
    sphere flattened at both ends (scaled to the liver's slab), so it does not
    end in one-pixel caps.
    """
    count = int(rng.choice(5, p=[0.12, 0.25, 0.25, 0.2, 0.18]))
    a, b, s = an.a, an.b, an.spacing[0]
    nz = an.shape[2]
    t0, t1 = an.liver_t
    right = an.liver_lobes[0]
    liver_mm = 2.0 * max(right.ru * a, right.rv * b)
    r_hi = 0.16 * liver_mm
    r_lo = min(max(3.0 * s, 0.07 * liver_mm), 0.85 * r_hi)
    slices = [
        k for k in range(nz) if t0 + 0.15 * (t1 - t0) <= (k + 0.5) / nz <= t1 - 0.15 * (t1 - t0)
    ] or [min(nz - 1, int((t0 + t1) / 2 * nz))]
    taken: dict[int, np.ndarray] = {}
    tumours: list[_Blob] = []
    for _ in range(count):
        r_mm = r_lo + (r_hi - r_lo) * math.sqrt(rng.random())
        for _try in range(40):
            k = int(rng.choice(slices))
            liver = coarse.liver(k)
            room = ndimage.distance_transform_edt(liver) * coarse.pixel_mm
            if k in taken:
                room[taken[k]] = 0
            ok = np.argwhere(room >= 1.15 * r_mm + 0.5 * coarse.pixel_mm)
            if ok.size == 0:
                r_mm = max(r_lo, 0.9 * r_mm)
                continue
            i, j = ok[rng.integers(len(ok))]
            t = (k + 0.5) / nz
            rt = r_mm / liver_mm * (t1 - t0)
            tumour = _Blob(
                cu=float(coarse.u[i]),
                cv=float(coarse.v[j]),
                ru=r_mm / a * rng.uniform(0.9, 1.05),
                rv=r_mm / b * rng.uniform(0.9, 1.05),
                t0=t - rt,
                t1=t + rt,
                angle=rng.uniform(0, np.pi),
                harmonics=_harmonics(rng, 0.12, (2, 3)),
                profile="lens",
            )
            span = [kk for kk in range(nz) if tumour.scale((kk + 0.5) / nz) > 0]
            masks = {kk: coarse.blob(tumour, kk) for kk in span}
            if all(
                m.sum() == 0
                or (
                    np.mean(coarse.liver(kk)[m]) >= 0.97
                    and not (kk in taken and (taken[kk] & m).any())
                )
                for kk, m in masks.items()
            ):
                for kk, m in masks.items():
                    grown = ndimage.binary_dilation(m, iterations=1)
                    taken[kk] = grown if kk not in taken else taken[kk] | grown
                tumours.append(tumour)
                break
    return tumours


def _tumour_count(rng: np.random.Generator) -> int:
    """0 (25%), 1-3 (35%), 4-7 (20%) or 8-15 (20%)."""
    r = rng.random()
    if r < 0.25:
        return 0
    lo, hi = (1, 4) if r < 0.6 else (4, 8) if r < 0.8 else (8, 16)
    return int(rng.integers(lo, hi))


def _place_wide_tumours(rng: np.random.Generator, an: _Anatomy, coarse: _CoarseLiver) -> None:
    """0-15 tumours, 2-40 mm across (log-uniform), apart from each other; the
    first (the index lesion) is 10-40 mm, as a liver with tumours in LiTS has at
    least one lesion of a centimetre or more.

    Most are of the phantom's main kind. One in five sits on the liver's edge
    and is clipped to the liver when painted; the others fit inside the
    liver's section at their centre slice (shrinking until they do).
    """
    count = _tumour_count(rng)
    main = TUMOUR_KINDS[rng.choice(4, p=_KIND_P.get(an.phase, _KIND_P_DEFAULT))]
    t0, t1 = an.liver_t
    span = t1 - t0
    nz = an.shape[2]
    slices = [k for k in range(nz) if t0 + 0.1 * span <= an.t(k) <= t1 - 0.1 * span] or [
        k for k in range(nz) if t0 <= an.t(k) <= t1
    ]
    placed: list[tuple[float, float, float, float]] = []
    for n in range(count):
        kind = main if rng.random() < 0.7 else TUMOUR_KINDS[rng.integers(4)]
        smallest = _INDEX_LESION_MM if n == 0 else 2.0
        r_mm = 0.5 * math.exp(rng.uniform(math.log(smallest), math.log(40.0)))
        rim = rng.uniform(0.55, 0.8)
        found = _fit_tumour(rng, an, coarse, slices, r_mm, rng.random() < 0.2, placed)
        if found is None:
            continue
        x, y, z, r_mm = found
        tumour = _Blob(
            cu=x / an.a,
            cv=y / an.b,
            ru=r_mm / an.a * rng.uniform(0.9, 1.1),
            rv=r_mm / an.b * rng.uniform(0.9, 1.1),
            t0=(z - r_mm) / an.z_len,
            t1=(z + r_mm) / an.z_len,
            angle=rng.uniform(0, np.pi),
            harmonics=_harmonics(rng, 0.04 if kind == "cystic" else 0.12, (2, 3)),
            profile="ellipsoid",
        )
        an.tumours.append(tumour)
        an.tumour_kinds.append(kind)
        an.tumour_rims.append(rim)
        an.tumour_mm.append(2.0 * r_mm)


def _fit_tumour(
    rng: np.random.Generator,
    an: _Anatomy,
    coarse: _CoarseLiver,
    slices: list[int],
    r_mm: float,
    border: bool,
    placed: list,
):
    """``(x, y, z, radius)`` in mm for one tumour, or None after 15 tries."""
    for _ in range(15 if slices else 0):
        k = slices[rng.integers(len(slices))]
        room = coarse.room(k)
        if border:
            ok = (room > 0) & (room <= max(0.8 * r_mm, coarse.pixel_mm))
        else:
            ok = room >= r_mm + 0.5 * coarse.pixel_mm
        cand = np.argwhere(ok)
        if cand.size == 0:
            if not border and room.max() > 0:
                r_mm = max(1.0, 0.85 * r_mm)
            continue
        i, j = cand[rng.integers(len(cand))]
        jx, jy = rng.uniform(-0.5, 0.5, 2) * coarse.pixel_mm  # sub-pixel position
        x, y = float(coarse.u[i]) * an.a + jx, float(coarse.v[j]) * an.b + jy
        z = an.t(k) * an.z_len
        if all(
            (x - px) ** 2 + (y - py) ** 2 + (z - pz) ** 2 > (r_mm + pr + 1.0) ** 2
            for px, py, pz, pr in placed
        ):
            placed.append((x, y, z, r_mm))
            return x, y, z, r_mm
    return None
