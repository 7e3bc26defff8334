"""Synthetic abdominal CT phantoms in LiTS format, for tests and demos.

Each phantom is an axial slab of a contrast-enhanced (portal venous) abdomen:
air and a CT couch outside an elliptical body; skin, subcutaneous fat and an
abdominal muscle wall; visceral fat with mesenteric vessels; lung bases and
ribs in the upper slices; a vertebra (cortical and cancellous bone, discs,
spinal canal, posterior elements), paraspinal and psoas muscles; aorta and
inferior vena cava; kidneys, spleen, stomach (wall, fluid, gas), pancreas,
small bowel and colon; a liver (label 1) made of three smoothly perturbed
lobes, with enhanced vessels and a gallbladder beside it; and 0-4 hypodense
round-ish tumours (label 2) placed inside the final liver mask (after the
other organs have carved it), so they never leave the liver.

Intensities (HU, jittered per phantom) are chosen so that intensity alone
cannot separate the targets: the spleen and the inferior vena cava overlap
the enhanced liver (95-115 HU, portal venous phase) and fluid in the stomach,
bowel, gallbladder and spinal canal overlaps the tumours (25-38 HU). Images get a slight blur (partial volume) and
correlated Gaussian noise (10-20 HU), and are stored as int16 HU.

Geometry and orientation (LiTS-like): array axis 0 runs from the patient's
right to left, axis 1 from anterior to posterior, axis 2 from inferior to
superior; the affine is ``diag(-s, -s, dz)`` plus a translation. Displaying
``data[:, :, k].T`` gives the radiological view, with the liver on the
image's left. The in-plane spacing is 0.6-0.9 mm scaled by 512/X, so every
image size shows a body about 30-36 cm wide; the slice thickness (1-5 mm) is
picked so the slab covers about 18-26 cm where it can. Along z the anatomy
is laid out relative to the slab, not in millimetres: the liver always spans
about 60-80% of the slices (the first and last slices never hold liver), so
small phantoms stay useful whatever their slice thickness.

Phantom ``i`` of seed ``s`` depends only on ``(s, i)``; files are
byte-identical across runs (gzip with mtime 0).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from liverseg.data import nifti
from liverseg.errors import ConfigError
from liverseg.utils.atomic import check_can_write, safe_output_path

MIN_SHAPE = (16, 16, 4)
_SLICE_THICKNESSES = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
_BLUR_PX = 0.7  # in-plane Gaussian blur (partial volume and noise correlation), pixels
_HU_MIN, _HU_MAX = -1024, 3071


class Tissue(enum.IntEnum):
    """Tissue classes painted into a phantom (``Phantom.tissue``)."""

    AIR = 0
    COUCH = 1
    SKIN = 2
    FAT = 3
    MUSCLE = 4
    LUNG = 5
    CORTICAL_BONE = 6
    CANCELLOUS_BONE = 7
    DISC = 8
    CSF = 9
    BOWEL_WALL = 10
    BOWEL_CONTENT = 11
    GAS = 12
    STOMACH_WALL = 13
    STOMACH_CONTENT = 14
    PANCREAS = 15
    LIVER = 16
    LIVER_VESSEL = 17
    GALLBLADDER = 18
    SPLEEN = 19
    KIDNEY = 20
    RENAL_SINUS = 21
    IVC = 22
    AORTA = 23
    TUMOUR = 24
    VESSEL = 25


LIVER_TISSUES = (Tissue.LIVER, Tissue.LIVER_VESSEL)

# Mean HU ranges; one value per tissue is drawn for each phantom.
_HU_RANGES: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (-1000, -1000),
    Tissue.COUCH: (150, 300),
    Tissue.SKIN: (20, 40),
    Tissue.FAT: (-115, -85),
    Tissue.MUSCLE: (45, 60),
    Tissue.LUNG: (-870, -820),
    Tissue.CORTICAL_BONE: (750, 1000),
    Tissue.CANCELLOUS_BONE: (250, 350),
    Tissue.DISC: (70, 100),
    Tissue.CSF: (5, 15),
    Tissue.BOWEL_WALL: (45, 70),
    Tissue.BOWEL_CONTENT: (15, 35),
    Tissue.GAS: (-950, -850),
    Tissue.STOMACH_WALL: (45, 65),
    Tissue.STOMACH_CONTENT: (8, 25),
    Tissue.PANCREAS: (70, 95),
    Tissue.LIVER: (95, 115),
    Tissue.LIVER_VESSEL: (150, 190),
    Tissue.GALLBLADDER: (0, 15),
    Tissue.SPLEEN: (100, 122),
    Tissue.KIDNEY: (140, 190),
    Tissue.RENAL_SINUS: (-60, -20),
    Tissue.IVC: (100, 130),
    Tissue.AORTA: (140, 190),
    Tissue.TUMOUR: (25, 38),
    Tissue.VESSEL: (130, 170),
}


@dataclasses.dataclass(frozen=True, eq=False)
class Phantom:
    """One phantom: int16 HU, uint8 labels (0, 1, 2) and optional tissue map, x-y-z order."""

    hu: np.ndarray
    labels: np.ndarray
    tissue: np.ndarray | None
    affine: np.ndarray
    spacing: tuple[float, float, float]
    tissue_hu: dict[Tissue, float]
    num_tumours: int


# ----------------------------------------------------------------------------
# Geometry helpers. Shapes live in "body units": u = x / a (negative: patient's
# right), v = y / b (negative: anterior), with a, b the body half-axes in mm;
# t in [0, 1] runs from the slab's first (inferior) to last slice.


@dataclasses.dataclass(frozen=True)
class _Wave:
    """A smooth random function of t: a sum of a few slow sinusoids."""

    amps: tuple[float, ...]
    freqs: tuple[float, ...]
    phases: tuple[float, ...]

    @staticmethod
    def draw(rng: np.random.Generator, amp: float, n: int = 2, max_freq: float = 1.5) -> "_Wave":
        return _Wave(tuple(rng.uniform(0.3, 1.0, n) * amp / n),
                     tuple(rng.uniform(0.2, max_freq, n)),
                     tuple(rng.uniform(0, 2 * np.pi, n)))

    def __call__(self, t: float) -> float:
        return float(sum(a * math.sin(2 * math.pi * f * t + p)
                         for a, f, p in zip(self.amps, self.freqs, self.phases)))


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
            return 0.15 + 0.85 * math.sin(math.pi * s ** p) ** 0.5
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


def _harmonics(rng: np.random.Generator, amp: float, orders: Sequence[int] = (2, 3, 4)
               ) -> tuple[tuple[int, float, float], ...]:
    return tuple((k, float(rng.uniform(0.3, 1.0) * amp / len(orders)),
                  float(rng.uniform(0, 2 * np.pi))) for k in orders)


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

    def blob_mask(self, blob: _Blob, t: float, shrink: float = 1.0):
        box = blob.box(t, max(1.0, shrink))
        win = None if box is None else self.window(box)
        if win is None:
            return None, None
        d = blob.depth(self.u[win[0], None], self.v[None, win[1]], t)
        return win, d <= shrink

    def paint(self, win, mask, tissue: Tissue, where: Sequence[Tissue] | None = None) -> None:
        if win is None:
            return
        target = self.tissue[win]
        if where is not None:
            mask = mask & np.isin(target, [int(w) for w in where])
        target[mask] = int(tissue)

    def paint_blob(self, blob: _Blob, t: float, tissue: Tissue, shrink: float = 1.0,
                   where: Sequence[Tissue] | None = None) -> None:
        win, mask = self.blob_mask(blob, t, shrink)
        self.paint(win, mask, tissue, where)


# ----------------------------------------------------------------------------
# Anatomy


@dataclasses.dataclass
class _Anatomy:
    """Every random choice of one phantom, drawn up front."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    a: float
    b: float
    cx: float
    cy: float
    body_harm: tuple
    body_wave: _Wave
    fat: float
    fat_harm: tuple
    muscle: float
    liver_t: tuple[float, float]
    liver_lobes: list[_Blob]
    liver_vessels: list[_Blob]
    gallbladder: _Blob
    tumours: list[_Blob]
    pancreas: _Blob
    bowel: list[tuple[_Blob, Tissue]]
    lungs: list[_Blob]
    kidneys: list[_Blob]
    spleen: _Blob
    stomach: _Blob
    stomach_gas_level: float
    vessels: list[tuple[_Blob, Tissue]]
    spine_u: float
    spine_v: float
    disc_period: float
    disc_phase: float
    rib_phase: float
    rib_jitter: tuple[float, ...]
    mesenteric: list[_Blob]
    hu: dict[Tissue, float]
    noise_sd: float
    couch_gap: float


def _body_units(mm: float, a: float, b: float) -> tuple[float, float]:
    return mm / a, mm / b


def _draw_anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> _Anatomy:
    nx, ny, nz = shape
    s = float(np.float32(rng.uniform(0.6, 0.9) * 512.0 / nx))
    target_len = rng.uniform(180.0, 260.0)
    dz = min(_SLICE_THICKNESSES, key=lambda d: abs(math.log(d * nz / target_len)))
    a = min(rng.uniform(150.0, 180.0), 0.46 * nx * s)
    b = min(a * rng.uniform(0.66, 0.80), 0.42 * ny * s)
    cx = (nx - 1) / 2 + rng.uniform(-0.02, 0.02) * nx
    cy = (ny - 1) / 2 + rng.uniform(-0.03, 0.0) * ny
    mm = lambda r: _body_units(r, a, b)  # noqa: E731  (mm -> body units)
    spine_v = 0.93 - rng.uniform(82.0, 95.0) / b  # vertebral body centre, ~9 cm from the back

    # Liver slab: first and last slices stay free of liver.
    span = rng.uniform(0.6, 0.8)
    t0 = rng.uniform(0.06, 0.94 - span)
    t1 = t0 + span
    if nz >= 3:  # keep at least one liver-free slice at each end
        t0 = max(t0, 1.0 / nz + 1e-6)
        t1 = min(t1, 1.0 - 1.0 / nz - 1e-6)
    lt = t1 - t0
    right = _Blob(cu=rng.uniform(-0.52, -0.44), cv=rng.uniform(-0.08, 0.02),
                  ru=rng.uniform(0.43, 0.5), rv=rng.uniform(0.64, 0.76), t0=t0, t1=t1,
                  angle=rng.uniform(-0.25, 0.05), harmonics=_harmonics(rng, 0.16),
                  drift_u=_Wave.draw(rng, 0.04), drift_v=_Wave.draw(rng, 0.04),
                  slope_u=rng.uniform(0.0, 0.08), slope_v=rng.uniform(0.0, 0.1),
                  phase_drift=rng.uniform(-1, 1), profile="liver", peak=rng.uniform(0.45, 0.7))
    medial = _Blob(cu=rng.uniform(-0.25, -0.15), cv=rng.uniform(-0.40, -0.25),
                   ru=rng.uniform(0.22, 0.28), rv=rng.uniform(0.28, 0.36),
                   t0=t0 + lt * rng.uniform(0.2, 0.35), t1=t1, harmonics=_harmonics(rng, 0.15),
                   drift_u=_Wave.draw(rng, 0.03), drift_v=_Wave.draw(rng, 0.03),
                   phase_drift=rng.uniform(-1, 1), profile="rise")
    left = _Blob(cu=rng.uniform(-0.02, 0.10), cv=rng.uniform(-0.62, -0.50),
                 ru=rng.uniform(0.22, 0.32), rv=rng.uniform(0.14, 0.2),
                 t0=t0 + lt * rng.uniform(0.4, 0.55), t1=t1, angle=rng.uniform(-0.3, 0.1),
                 harmonics=_harmonics(rng, 0.15), drift_u=_Wave.draw(rng, 0.04),
                 slope_u=rng.uniform(0.0, 0.12), phase_drift=rng.uniform(-1, 1),
                 profile="ellipsoid")
    lobes = [right, medial, left]

    liver_vessels = []
    for _ in range(int(rng.integers(2, 5))):
        r = rng.uniform(2.5, 6.0)
        liver_vessels.append(_Blob(cu=rng.uniform(-0.55, -0.2), cv=rng.uniform(-0.3, 0.25),
                                   ru=mm(r)[0], rv=mm(r)[1],
                                   t0=t0 + lt * rng.uniform(0.1, 0.4), t1=t1,
                                   slope_u=rng.uniform(-0.2, 0.2), slope_v=rng.uniform(-0.2, 0.2),
                                   drift_u=_Wave.draw(rng, 0.03), drift_v=_Wave.draw(rng, 0.03)))
    gb_r = rng.uniform(12.0, 18.0)
    gallbladder = _Blob(cu=rng.uniform(-0.32, -0.22), cv=rng.uniform(-0.42, -0.32),
                        ru=mm(gb_r)[0], rv=mm(gb_r * 1.5)[1],
                        t0=t0 + lt * rng.uniform(0.05, 0.15), t1=t0 + lt * rng.uniform(0.35, 0.5),
                        angle=rng.uniform(-0.6, 0.6), harmonics=_harmonics(rng, 0.08, (2, 3)),
                        profile="ellipsoid")


    kidneys = []
    for side in (-1, 1):  # the right kidney (side -1) sits lower
        kt0 = rng.uniform(0.0, 0.12) + (0.0 if side < 0 else 0.1)
        kidneys.append(_Blob(cu=side * mm(rng.uniform(58.0, 72.0))[0],
                             cv=spine_v + mm(rng.uniform(4.0, 14.0))[1],
                             ru=mm(rng.uniform(15, 19))[0], rv=mm(rng.uniform(26, 31))[1],
                             t0=kt0, t1=kt0 + rng.uniform(0.5, 0.6),
                             angle=side * rng.uniform(0.4, 0.7),
                             harmonics=_harmonics(rng, 0.1, (2, 3)), profile="ellipsoid"))
    spleen = _Blob(cu=rng.uniform(0.50, 0.60), cv=rng.uniform(0.05, 0.25),
                   ru=rng.uniform(0.14, 0.2), rv=rng.uniform(0.3, 0.4),
                   t0=rng.uniform(0.4, 0.55), t1=rng.uniform(0.9, 1.05),
                   angle=rng.uniform(-0.7, -0.3), harmonics=_harmonics(rng, 0.25, (1, 2, 3)),
                   profile="ellipsoid")
    stomach = _Blob(cu=rng.uniform(0.22, 0.36), cv=rng.uniform(-0.35, -0.15),
                    ru=rng.uniform(0.18, 0.26), rv=rng.uniform(0.22, 0.32),
                    t0=rng.uniform(0.45, 0.6), t1=rng.uniform(0.95, 1.1),
                    harmonics=_harmonics(rng, 0.15), drift_u=_Wave.draw(rng, 0.05),
                    slope_u=rng.uniform(-0.12, 0.0), profile="fall")
    pancreas = _Blob(cu=rng.uniform(0.05, 0.18), cv=rng.uniform(0.05, 0.15),
                     ru=rng.uniform(0.25, 0.32), rv=mm(rng.uniform(10, 14))[1],
                     t0=rng.uniform(0.3, 0.4), t1=rng.uniform(0.55, 0.65),
                     angle=rng.uniform(-0.35, -0.1), harmonics=_harmonics(rng, 0.1, (2, 3)),
                     profile="ellipsoid")

    bowel: list[tuple[_Blob, Tissue]] = []
    for _ in range(int(rng.integers(26, 36))):  # small-bowel loops, mostly left and anterior
        r = rng.uniform(11.0, 19.0)
        bt0 = rng.uniform(-0.3, 0.6)
        bowel.append((_Blob(cu=rng.uniform(-0.3 if bt0 < 0.15 else 0.05, 0.75),
                            cv=rng.uniform(-0.7, 0.3),
                            ru=mm(r)[0], rv=mm(r)[1], t0=bt0,
                            t1=bt0 + rng.uniform(0.2, 0.45), harmonics=_harmonics(rng, 0.12, (2, 3)),
                            drift_u=_Wave.draw(rng, 0.06), drift_v=_Wave.draw(rng, 0.06),
                            profile="ellipsoid"),
                      Tissue.GAS if rng.random() < 0.25 else Tissue.BOWEL_CONTENT))
    for side in (-1, 1):  # ascending and descending colon
        r = rng.uniform(16.0, 22.0)
        bowel.append((_Blob(cu=side * rng.uniform(0.6, 0.7), cv=rng.uniform(-0.05, 0.2),
                            ru=mm(r)[0], rv=mm(r)[1], t0=-0.1, t1=rng.uniform(0.35, 0.6),
                            harmonics=_harmonics(rng, 0.15, (2, 3)),
                            drift_u=_Wave.draw(rng, 0.03), profile="flat"),
                      Tissue.GAS if rng.random() < 0.5 else Tissue.BOWEL_CONTENT))

    mesenteric = []
    for _ in range(int(rng.integers(15, 30))):  # small vessels in the mesenteric fat
        r = rng.uniform(1.5, 3.5)
        mt0 = rng.uniform(-0.3, 0.6)
        mesenteric.append(_Blob(cu=rng.uniform(-0.5, 0.6), cv=rng.uniform(-0.7, 0.3),
                                ru=mm(r)[0], rv=mm(r)[1], t0=mt0, t1=mt0 + rng.uniform(0.2, 0.5),
                                slope_u=rng.uniform(-0.2, 0.2), slope_v=rng.uniform(-0.2, 0.2)))
    lungs = []
    for side in (-1, 1):
        lungs.append(_Blob(cu=side * rng.uniform(0.45, 0.55), cv=rng.uniform(0.35, 0.5),
                           ru=rng.uniform(0.28, 0.36), rv=rng.uniform(0.3, 0.4),
                           t0=rng.uniform(0.8, 0.9), t1=1.25, harmonics=_harmonics(rng, 0.1),
                           profile="rise"))

    aorta_r, ivc_r = rng.uniform(10.0, 13.0), rng.uniform(9.0, 12.0)
    vessels = [
        (_Blob(cu=rng.uniform(0.04, 0.1), cv=spine_v - mm(32.0)[1], ru=mm(aorta_r)[0], rv=mm(aorta_r)[1],
               t0=-0.1, t1=1.1, drift_u=_Wave.draw(rng, 0.02)), Tissue.AORTA),
        (_Blob(cu=rng.uniform(-0.17, -0.12), cv=spine_v - mm(36.0)[1], ru=mm(ivc_r * 1.2)[0],
               rv=mm(ivc_r * 0.9)[1], t0=-0.1, t1=1.1, drift_u=_Wave.draw(rng, 0.02)), Tissue.IVC),
    ]

    hu = {t: float(rng.uniform(*r)) for t, r in _HU_RANGES.items()}
    hu[Tissue.SPLEEN] = hu[Tissue.LIVER] + float(rng.uniform(-6.0, 6.0))
    hu[Tissue.TUMOUR] = min(hu[Tissue.TUMOUR], hu[Tissue.LIVER] - 35.0)  # clearly hypodense
    return _Anatomy(
        shape=shape, spacing=(s, s, dz), a=a, b=b, cx=cx, cy=cy,
        body_harm=_harmonics(rng, 0.06, (2, 3, 4)), body_wave=_Wave.draw(rng, 0.03),
        fat=rng.uniform(0.06, 0.15), fat_harm=_harmonics(rng, 0.35, (1, 2)),
        muscle=rng.uniform(0.045, 0.07), liver_t=(t0, t1), liver_lobes=lobes,
        liver_vessels=liver_vessels, gallbladder=gallbladder, tumours=[], pancreas=pancreas,
        bowel=bowel, lungs=lungs, kidneys=kidneys, spleen=spleen, stomach=stomach,
        stomach_gas_level=rng.uniform(-0.7, -0.3), vessels=vessels,
        spine_u=rng.uniform(-0.02, 0.02), spine_v=spine_v,
        disc_period=rng.uniform(28.0, 34.0), disc_phase=rng.uniform(0, 1),
        rib_phase=rng.uniform(0, 1), rib_jitter=tuple(rng.uniform(-0.3, 0.3, 10)),
        mesenteric=mesenteric, hu=hu, noise_sd=rng.uniform(10.0, 20.0),
        couch_gap=rng.uniform(3.0, 12.0))


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

    def liver(self, k: int) -> np.ndarray:
        if k not in self._masks:
            canvas = _Canvas(self.u, self.v)
            _paint_slice(self.an, canvas, k, self.rho, self.theta, *self.shapes)
            self._masks[k] = np.isin(canvas.tissue, [int(t) for t in LIVER_TISSUES])
        return self._masks[k]

    def blob(self, blob: _Blob, k: int) -> np.ndarray:
        canvas = _Canvas(self.u, self.v)
        canvas.paint_blob(blob, (k + 0.5) / self.an.shape[2], Tissue.TUMOUR)
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
    slices = [k for k in range(nz) if t0 + 0.15 * (t1 - t0) <= (k + 0.5) / nz
              <= t1 - 0.15 * (t1 - t0)] or [min(nz - 1, int((t0 + t1) / 2 * nz))]
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
            tumour = _Blob(cu=float(coarse.u[i]), cv=float(coarse.v[j]),
                           ru=r_mm / a * rng.uniform(0.9, 1.05), rv=r_mm / b * rng.uniform(0.9, 1.05),
                           t0=t - rt, t1=t + rt, angle=rng.uniform(0, np.pi),
                           harmonics=_harmonics(rng, 0.12, (2, 3)), profile="lens")
            span = [kk for kk in range(nz) if tumour.scale((kk + 0.5) / nz) > 0]
            masks = {kk: coarse.blob(tumour, kk) for kk in span}
            if all(m.sum() == 0 or (np.mean(coarse.liver(kk)[m]) >= 0.97
                                    and not (kk in taken and (taken[kk] & m).any()))
                   for kk, m in masks.items()):
                for kk, m in masks.items():
                    grown = ndimage.binary_dilation(m, iterations=1)
                    taken[kk] = grown if kk not in taken else taken[kk] | grown
                tumours.append(tumour)
                break
    return tumours


def _wall_shapes(an: _Anatomy, theta):
    """Angular profiles (t-independent) of the body outline and the fat layer."""
    body = 1.0 + sum(amp * np.cos(k * theta + ph) for k, amp, ph in an.body_harm)
    body = body * (1.0 - 0.07 * np.clip(np.sin(theta), 0, None) ** 4)  # flatter back
    fat = an.fat * (1.0 + sum(amp * np.cos(k * theta + ph) for k, amp, ph in an.fat_harm))
    fat = fat * (1.0 - 0.5 * np.clip(np.sin(theta), 0, None))  # thinner posteriorly
    return body, fat


def _wall_radii(an: _Anatomy, t: float, body_shape, fat_shape):
    """(outer skin, inner skin, inner fat, cavity) radii in body units."""
    body_r = (1.0 + an.body_wave(t)) * body_shape
    skin = 3.0 / an.b
    return body_r, body_r - skin, body_r - skin - fat_shape, body_r - skin - fat_shape - an.muscle


def _paint_slice(an: _Anatomy, canvas: _Canvas, k: int, rho, theta, body_shape, fat_shape) -> None:
    """Paints the tissue ids of slice ``k`` into ``canvas.tissue``."""
    nz = an.shape[2]
    t = (k + 0.5) / nz
    z_mm = k * an.spacing[2]
    T = canvas.tissue

    # Body outline and wall layers (concentric, in the body's own polar frame).
    outer, skin_in, fat_in, cavity_r = _wall_radii(an, t, body_shape, fat_shape)
    T[rho <= outer] = Tissue.SKIN
    T[rho <= skin_in] = Tissue.FAT
    T[rho <= fat_in] = Tissue.MUSCLE
    cavity = rho <= cavity_r
    T[cavity] = Tissue.FAT

    # Couch under the patient: two thin shells, lowest under the middle.
    u = canvas.u
    pixel_mm = float(u[1] - u[0]) * an.a if u.size > 1 else an.spacing[0]
    top_mm = 0.95 * an.b + an.couch_gap - 0.12 * an.b * u ** 2
    rel = canvas.v[None, :] * an.b - top_mm[:, None]
    thick = max(4.0, pixel_mm)
    in_span = (np.abs(u) < 1.2)[:, None]
    T[in_span & (rel >= 0) & (rel < thick)] = Tissue.COUCH
    T[in_span & (rel >= 15.0) & (rel < 15.0 + thick)] = Tissue.COUCH

    # Lung bases (upper slices), behind and around the liver dome.
    for lung in an.lungs:
        win, mask = canvas.blob_mask(lung, t)
        if win is not None:
            canvas.paint(win, mask & cavity[win], Tissue.LUNG)

    # Ribs in the muscle wall of the upper slices, sliding along the wall with z.
    if t > 0.45:
        n_ribs = len(an.rib_jitter) // 2
        for side in (-1, 1):
            lo, hi = ((np.pi / 2 + 0.3, 1.5 * np.pi - 0.6) if side < 0
                      else (-np.pi / 2 + 0.6, np.pi / 2 - 0.3))
            for r in range(n_ribs):
                frac = ((r + 0.5 + an.rib_jitter[r + (side > 0) * n_ribs]) / n_ribs
                        + 0.5 * t + an.rib_phase) % 1.0
                ang = lo + frac * (hi - lo)
                rr = float(_wall_radii(an, t, *_wall_shapes(an, np.float32(ang)))[3]) + 0.5 * an.muscle
                rib = _Blob(cu=rr * math.cos(ang), cv=rr * math.sin(ang), ru=7.0 / an.a,
                            rv=3.5 / an.b, angle=ang + np.pi / 2)
                canvas.paint_blob(rib, t, Tissue.CORTICAL_BONE)
                canvas.paint_blob(rib, t, Tissue.CANCELLOUS_BONE, shrink=0.45)

    for vessel in an.mesenteric:
        win, mask = canvas.blob_mask(vessel, t)
        if win is not None:
            canvas.paint(win, mask & cavity[win], Tissue.VESSEL)

    # Bowel and colon.
    for loop, content in an.bowel:
        win, mask = canvas.blob_mask(loop, t)
        if win is None:
            continue
        mask = mask & cavity[win]
        canvas.paint(win, mask, Tissue.BOWEL_WALL)
        _, inner = canvas.blob_mask(loop, t, shrink=0.7)
        canvas.paint(win, inner & mask, content)

    # Stomach: wall, fluid, gas on top (anterior).
    win, mask = canvas.blob_mask(an.stomach, t)
    if win is not None:
        mask = mask & cavity[win]
        canvas.paint(win, mask, Tissue.STOMACH_WALL)
        _, inner = canvas.blob_mask(an.stomach, t, shrink=0.85)
        inner = inner & mask
        canvas.paint(win, inner, Tissue.STOMACH_CONTENT)
        _, cv = an.stomach.centre(t)
        level = cv + an.stomach_gas_level * an.stomach.rv * an.stomach.scale(t)
        canvas.paint(win, inner & (canvas.v[None, win[1]] < level), Tissue.GAS)

    win, mask = canvas.blob_mask(an.pancreas, t)
    if win is not None:
        canvas.paint(win, mask & cavity[win], Tissue.PANCREAS)

    # Liver: union of lobes inside the cavity, then its vessels and the gallbladder.
    box = _union_box([lobe.box(t) for lobe in an.liver_lobes])
    win = None if box is None else canvas.window(box)
    if win is not None:
        uu, vv = canvas.u[win[0], None], canvas.v[None, win[1]]
        depth = np.minimum.reduce([lobe.depth(uu, vv, t) for lobe in an.liver_lobes])
        inner_cavity = rho[win] <= cavity_r[win] - 2.0 / an.b
        canvas.paint(win, (depth <= 1.0) & inner_cavity, Tissue.LIVER)
    for vessel in an.liver_vessels:
        canvas.paint_blob(vessel, t, Tissue.LIVER_VESSEL, where=(Tissue.LIVER,))
    canvas.paint_blob(an.gallbladder, t, Tissue.GALLBLADDER)

    # Spleen, kidneys (renal impression on the liver), great vessels.
    win, mask = canvas.blob_mask(an.spleen, t)
    if win is not None:
        canvas.paint(win, mask & cavity[win], Tissue.SPLEEN)
    for kidney in an.kidneys:
        canvas.paint_blob(kidney, t, Tissue.FAT, shrink=1.12)
        canvas.paint_blob(kidney, t, Tissue.KIDNEY)
        sinus = dataclasses.replace(kidney, cu=kidney.cu - math.copysign(0.35 * kidney.ru, kidney.cu),
                                    ru=kidney.ru * 0.45, rv=kidney.rv * 0.4, harmonics=())
        canvas.paint_blob(sinus, t, Tissue.RENAL_SINUS, where=(Tissue.KIDNEY,))
    for vessel, tissue in an.vessels:
        canvas.paint_blob(vessel, t, tissue)

    # Spine: psoas, vertebral body or disc, canal, posterior elements, paraspinal muscles.
    mm_u, mm_v = 1.0 / an.a, 1.0 / an.b
    su, sv = an.spine_u, an.spine_v
    psoas_r = 8.0 + 14.0 * (1.0 - t)
    for side in (-1, 1):
        canvas.paint_blob(_Blob(cu=su + side * 30 * mm_u, cv=sv + 5 * mm_v,
                                ru=psoas_r * mm_u, rv=psoas_r * 0.9 * mm_v), t, Tissue.MUSCLE)
        canvas.paint_blob(_Blob(cu=su + side * 30 * mm_u, cv=sv + 44 * mm_v, ru=26 * mm_u,
                                rv=20 * mm_v, angle=side * 0.25), t, Tissue.MUSCLE)
    disc = ((z_mm / an.disc_period + an.disc_phase) % 1.0) < 8.0 / an.disc_period
    body = _Blob(cu=su, cv=sv, ru=18 * mm_u, rv=15 * mm_v, harmonics=((2, 0.05, 0.0),))
    if disc:
        canvas.paint_blob(body, t, Tissue.DISC)
    else:
        canvas.paint_blob(body, t, Tissue.CORTICAL_BONE)
        canvas.paint_blob(body, t, Tissue.CANCELLOUS_BONE, shrink=0.85)
    for side in (-1, 1):
        canvas.paint_blob(_Blob(cu=su + side * 22 * mm_u, cv=sv + 24 * mm_v, ru=15 * mm_u,
                                rv=3.5 * mm_v, angle=side * 0.3), t, Tissue.CORTICAL_BONE)
    canvas.paint_blob(_Blob(cu=su, cv=sv + 31 * mm_v, ru=12 * mm_u, rv=11 * mm_v),
                      t, Tissue.CORTICAL_BONE)
    canvas.paint_blob(_Blob(cu=su, cv=sv + 50 * mm_v, ru=3.5 * mm_u, rv=13 * mm_v),
                      t, Tissue.CORTICAL_BONE)
    canvas.paint_blob(_Blob(cu=su, cv=sv + 29 * mm_v, ru=8 * mm_u, rv=7 * mm_v), t, Tissue.CSF)

    # Tumours last, and only on liver pixels: they never leave the liver.
    for tumour in an.tumours:
        canvas.paint_blob(tumour, t, Tissue.TUMOUR, where=LIVER_TISSUES)


def _union_box(boxes):
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), max(b[1] for b in boxes),
            min(b[2] for b in boxes), max(b[3] for b in boxes))


def _affine(an: _Anatomy, rng: np.random.Generator) -> np.ndarray:
    s, _, dz = an.spacing
    aff = np.diag([-s, -s, dz, 1.0])
    aff[0, 3] = s * an.cx + rng.uniform(-5, 5)
    aff[1, 3] = s * an.cy + rng.uniform(-5, 5)
    aff[2, 3] = -rng.uniform(200.0, 600.0)
    return aff.astype(np.float32).astype(np.float64)  # what the header can hold


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"phantom shape must be three integers X,Y,Z, got {shape!r}") from e
    if len(shape) != 3:
        raise ConfigError(f"phantom shape must be three integers X,Y,Z, got {shape!r}")
    if any(d < m for d, m in zip(shape, MIN_SHAPE)):
        raise ConfigError(f"phantom shape {shape} is below the minimum {MIN_SHAPE}")
    if math.prod(shape) > nifti.DEFAULT_MAX_VOXELS:
        raise ConfigError(f"phantom shape {shape} exceeds {nifti.DEFAULT_MAX_VOXELS} voxels")
    return shape


def make_phantom(shape: Sequence[int] = (64, 64, 20), seed: int = 0, index: int = 0, *,
                 with_tissue: bool = False) -> Phantom:
    """Generates phantom ``index`` of ``seed`` in memory (slice by slice)."""
    shape = _check_shape(shape)
    if seed < 0 or index < 0:
        raise ConfigError(f"seed and index must be non-negative, got {seed}, {index}")
    rng = np.random.default_rng([seed, index])
    an = _draw_anatomy(rng, shape)
    affine = _affine(an, rng)
    nx, ny, nz = shape
    s = an.spacing[0]
    u = ((np.arange(nx) - an.cx) * s / an.a).astype(np.float32)
    v = ((np.arange(ny) - an.cy) * s / an.b).astype(np.float32)
    an.tumours = _place_tumours(rng, an, _CoarseLiver(an, u, v))
    noise_rng = np.random.default_rng(rng.integers(0, 2**63))

    uu, vv = u[:, None], v[None, :]
    rho = np.sqrt(uu * uu + vv * vv)
    theta = np.arctan2(vv, uu)
    body_shape, fat_shape = _wall_shapes(an, theta)

    lut = np.zeros(256, dtype=np.float32)
    for tissue, value in an.hu.items():
        lut[int(tissue)] = value
    # White noise blurred like the image; scaled so the blurred noise has noise_sd.
    delta = np.zeros((15, 15), dtype=np.float32)
    delta[7, 7] = 1.0
    noise_gain = float(np.sqrt(np.sum(ndimage.gaussian_filter(delta, _BLUR_PX) ** 2)))
    noise_scale = np.float32(an.noise_sd / noise_gain)

    hu = np.empty(shape, dtype=np.int16, order="F")
    labels = np.empty(shape, dtype=np.uint8, order="F")
    tissue_vol = np.empty(shape, dtype=np.uint8, order="F") if with_tissue else None
    label_lut = np.zeros(256, dtype=np.uint8)
    for t in LIVER_TISSUES:
        label_lut[int(t)] = 1
    label_lut[int(Tissue.TUMOUR)] = 2
    tumour_core = np.float32(-6.0)
    for k in range(nz):
        canvas = _Canvas(u, v)
        _paint_slice(an, canvas, k, rho, theta, body_shape, fat_shape)
        img = lut[canvas.tissue]
        is_tumour = canvas.tissue == Tissue.TUMOUR
        if is_tumour.any():  # slightly darker centres
            dist = ndimage.distance_transform_edt(is_tumour).astype(np.float32)
            img[is_tumour] += tumour_core * np.minimum(dist[is_tumour] * s / 10.0, 1.0)
        img += noise_scale * noise_rng.standard_normal(img.shape, dtype=np.float32)
        img = ndimage.gaussian_filter(img, _BLUR_PX, mode="nearest")
        np.clip(np.rint(img), _HU_MIN, _HU_MAX, out=img)
        hu[:, :, k] = img
        labels[:, :, k] = label_lut[canvas.tissue]
        if tissue_vol is not None:
            tissue_vol[:, :, k] = canvas.tissue
    return Phantom(hu=hu, labels=labels, tissue=tissue_vol, affine=affine,
                   spacing=tuple(float(x) for x in an.spacing), tissue_hu=dict(an.hu),
                   num_tumours=len(an.tumours))


def phantom_paths(output_dir: str | os.PathLike, index: int) -> tuple[Path, Path]:
    """``(volume-{index}.nii.gz, segmentation-{index}.nii.gz)`` under ``output_dir``."""
    return (safe_output_path(output_dir, f"volume-{index}.nii.gz"),
            safe_output_path(output_dir, f"segmentation-{index}.nii.gz"))


def write_phantoms(output_dir: str | os.PathLike, num_volumes: int,
                   shape: Sequence[int] = (64, 64, 20), seed: int = 0, start_index: int = 0, *,
                   overwrite: bool = False) -> list[tuple[Path, Path]]:
    """Writes phantoms ``start_index .. start_index + num_volumes - 1`` in LiTS layout.

    All output names are checked before anything is written, so an existing
    file (without ``overwrite``) leaves the directory untouched.
    """
    if num_volumes < 1:
        raise ConfigError(f"num_volumes must be at least 1, got {num_volumes}")
    if start_index < 0:
        raise ConfigError(f"start_index must be non-negative, got {start_index}")
    shape = _check_shape(shape)
    indices = range(start_index, start_index + num_volumes)
    paths = [phantom_paths(output_dir, i) for i in indices]
    for pair in paths:
        for p in pair:
            check_can_write(p, overwrite)
    for i, (vol_path, seg_path) in zip(indices, paths):
        ph = make_phantom(shape, seed, i)
        nifti.save_ct(vol_path, ph.hu, ph.affine, overwrite=overwrite, compresslevel=1)
        reference = nifti.read_header(vol_path)
        nifti.save_labels(seg_path, ph.labels, dataclasses.replace(reference, data=ph.labels),
                          overwrite=overwrite)
    return paths
