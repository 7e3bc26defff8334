"""Synthetic abdominal CT phantoms in LiTS format, for tests and demos.

Two styles share one anatomy engine. ``style="narrow"`` (the default) is the
original generator and stays byte-identical; ``style="wide"`` draws from a far
wider distribution (domain randomisation in the spirit of SynthSeg, Billot et
al. 2023), so that networks trained on it learn the liver rather than the
generator. docs/PHANTOMS.md lists every distribution with an image.

Narrow. Each phantom is an axial slab of a contrast-enhanced (portal venous)
abdomen: air and a CT couch outside an elliptical body; skin, subcutaneous fat
and an abdominal muscle wall; visceral fat with mesenteric vessels; lung bases
and ribs in the upper slices; a vertebra (cortical and cancellous bone, discs,
spinal canal, posterior elements), paraspinal and psoas muscles; aorta and
inferior vena cava; kidneys, spleen, stomach (wall, fluid, gas), pancreas,
small bowel and colon; a liver (label 1) made of three smoothly perturbed
lobes, with enhanced vessels and a gallbladder beside it; and 0-4 hypodense
round-ish tumours (label 2) placed inside the final liver mask (after the
other organs have carved it), so they never leave the liver.

Intensities (HU, jittered per phantom) are chosen so that intensity alone
cannot separate the targets: the spleen and the inferior vena cava overlap
the enhanced liver (95-115 HU, portal venous phase) and fluid in the stomach,
bowel, gallbladder and spinal canal overlaps the tumours (25-38 HU). Images
get a slight blur (partial volume) and correlated Gaussian noise (10-20 HU),
and are stored as int16 HU.

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

Wide. The same organs, redrawn per phantom (each range and its reason):

* Contrast phase (what the scanner timing does to every organ): non-contrast
  20% (liver 45-65 HU, liver vessels 0-15 below it, spleen 40-55, kidneys
  30-40, aorta/IVC 35-50), arterial 25% (aorta 250-350, liver 60-80, spleen
  100-150 with a 20-45 HU moire pattern, renal cortex 180-260 over a 60-100
  medulla, IVC 50-90 unopacified), portal venous 35% (the narrow table but
  for the tumours) and delayed 20% (liver 80-100, vessels within -5..+15 of
  it, spleen 80-100, aorta 90-130). Muscle, pancreas, bowel and stomach walls
  follow the phase; each value is drawn uniformly in its range per phantom,
  and the liver gets a 0-6 HU mottle. Spleen, IVC, muscle or bowel wall lie
  within about 15 HU of the liver in every phase; fluids overlap hypodense
  tumours.
* Liver (real livers vary): typical 40%, small 20% (x0.68-0.85, half of
  them with perihepatic fluid), large 20% (x1.12-1.35, clipped by the wall),
  left-lobe-dominant 20% (a left lobe 0.34-0.48 body half-widths wide, well
  across the midline); shifted by up to 6% of the body; 35% abut the
  abdominal wall (no fat gap), the others keep a 1-4 mm gap.
* Tumours (from none to many, small to large): 0 (25%), 1-3 (35%), 4-7
  (20%), 8-15 (20%) per phantom; diameters 2-40 mm log-uniform (the first,
  the index lesion, 10-40 mm: a liver with tumours in LiTS has at least one
  lesion of a centimetre or more), in mm at the
  phantom's spacing (a tiny one may cover no voxel: labels are what the
  rasterisation gives); kinds hypodense, rim-enhancing (bright rim, necrotic
  5-35 HU centre), hyperdense (above the liver, strongest when arterial) and
  cystic (0-15 HU, round, sharp), mostly the phantom's main kind. One in
  five sits on the liver's edge; all are clipped to the liver, so label 2
  lies only inside it.
* Habitus and field of view (patients and reconstructions differ): thin 25%
  (body 25-30 cm wide, little fat, thin muscle), average 50% (29-36 cm, the
  narrow body), obese 25% (36-51 cm: 15-35% of a body half-axis of extra
  subcutaneous fat, thick perirenal fat, fewer bowel loops so visceral fat
  shows); field of view 30-45 cm (up to 50 cm to hold an obese body) or, in
  15%, 70-95% of the body width so the body crosses the image edge; the body
  is offset at random within the room left.
* Image quality (scanners and kernels differ): noise sd 5-40 HU
  (log-uniform) at a LiTS-like 0.75 x 0.75 x 2.5 mm voxel, scaled to the
  phantom's voxel (the standard deviation falls with the square root of the
  voxel volume: 40 HU is 7.5 HU in a 4 x 4 x 2.5 mm voxel), in-plane blur
  0.35-1 pixel, slice thickness 0.7-5 mm.
  Along z the anatomy is 200-260 mm long (in millimetres, unlike narrow):
  the slab is centred in the liver (3 in 4) or hangs over its dome or tip
  (10-40% liver-free slices), and a long one may hold all of it.
* Storage (LiTS volumes are stored flipped and transposed): any of the 8
  flips/transposes of the two in-plane axes (the in-plane size is kept) and
  a flipped z in 20%; the affine follows, so ``nibabel.aff2axcodes`` gives
  the true anatomical directions (``Phantom.storage``). Pixels stay square.

Phantom ``i`` of seed ``s`` depends only on ``(s, i, shape, style)``; files
are byte-identical across runs (gzip with mtime 0).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from liverseg.data import nifti
from liverseg.errors import ConfigError
from liverseg.phantoms import preview as phantom_preview
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
    KIDNEY_MEDULLA = 26  # the tissues below appear in "wide" phantoms only
    TUMOUR_RIM = 27
    TUMOUR_NECROSIS = 28
    TUMOUR_HYPER = 29
    TUMOUR_CYST = 30
    ASCITES = 31


LIVER_TISSUES = (Tissue.LIVER, Tissue.LIVER_VESSEL)
TUMOUR_TISSUES = (
    Tissue.TUMOUR,
    Tissue.TUMOUR_RIM,
    Tissue.TUMOUR_NECROSIS,
    Tissue.TUMOUR_HYPER,
    Tissue.TUMOUR_CYST,
)

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
    """One phantom: int16 HU, uint8 labels (0, 1, 2) and optional tissue map, as stored.

    The fields after ``num_tumours`` describe the draw: ``storage`` is the
    array axes' anatomical directions (nibabel axis codes of ``affine``),
    ``noise_sd`` the image noise in HU per voxel (wide: ``noise_sd_reference``,
    the drawn noise of a 0.75 x 0.75 x 2.5 mm voxel, scaled to the phantom's
    voxel), ``blur_px`` the in-plane Gaussian
    blur in pixels; ``tumour_kinds`` and ``tumour_diameters_mm`` list the
    placed tumours (a tiny one may cover no voxel).
    """

    hu: np.ndarray
    labels: np.ndarray
    tissue: np.ndarray | None
    affine: np.ndarray
    spacing: tuple[float, float, float]
    tissue_hu: dict[Tissue, float]
    num_tumours: int
    style: str = "narrow"
    phase: str = "portal venous"
    storage: tuple[str, str, str] = ("L", "P", "S")
    habitus: str = "average"
    liver_shape: str = "typical"
    truncated: bool = False
    noise_sd: float = 0.0
    blur_px: float = _BLUR_PX
    tumour_kinds: tuple[str, ...] = ()
    tumour_diameters_mm: tuple[float, ...] = ()
    noise_sd_reference: float = 0.0


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
    # The defaults below give the narrow style; the wide style redraws them.
    t_window: tuple[float, float] = (0.0, 1.0)  # anatomy t of the slab's two outer edges
    z_len: float | None = None  # mm spanned by t in [0, 1]; None: z is k * slice thickness
    couch_top: float = 0.95  # couch top below the body centre, in units of b
    body_pad: float = 0.0  # extra subcutaneous fat (obese), in body units
    liver_gap: float = 2.0  # mm kept between the liver and the abdominal wall
    ascites: float = 0.0  # perihepatic fluid out to this multiple of the liver outline
    kidney_fat: float = 1.12  # perirenal fat out to this multiple of the kidney outline
    medulla: bool = False  # renal cortex and medulla painted apart
    tumour_kinds: list[str] = dataclasses.field(default_factory=list)
    tumour_rims: list[float] = dataclasses.field(default_factory=list)
    tumour_mm: list[float] = dataclasses.field(default_factory=list)  # diameters
    textures: dict = dataclasses.field(default_factory=dict)  # Tissue -> _texture parameters
    blur_px: float = _BLUR_PX
    noise_sd_reference: float = 0.0  # wide: the drawn noise at NOISE_REFERENCE_VOXEL_MM
    phase: str = "portal venous"
    habitus: str = "average"
    liver_shape: str = "typical"
    truncated: bool = False

    def t(self, k: int) -> float:
        """Anatomy coordinate t of the centre of slice ``k``."""
        w0, w1 = self.t_window
        return w0 + (k + 0.5) / self.shape[2] * (w1 - w0)

    def z_mm(self, k: int) -> float:
        return k * self.spacing[2] if self.z_len is None else self.t(k) * self.z_len


@dataclasses.dataclass(frozen=True)
class _Frame:
    """Image grid and body frame: pixel size, slice thickness, body half-axes, body centre."""

    s: float
    dz: float
    a: float
    b: float
    cx: float
    cy: float


def _body_units(mm: float, a: float, b: float) -> tuple[float, float]:
    return mm / a, mm / b


def _narrow_frame(rng: np.random.Generator, shape: tuple[int, int, int]) -> _Frame:
    """A body 30-36 cm wide that fits the image; the slab covers about 18-26 cm."""
    nx, ny, nz = shape
    s = float(np.float32(rng.uniform(0.6, 0.9) * 512.0 / nx))
    target_len = rng.uniform(180.0, 260.0)
    dz = min(_SLICE_THICKNESSES, key=lambda d: abs(math.log(d * nz / target_len)))
    a = min(rng.uniform(150.0, 180.0), 0.46 * nx * s)
    b = min(a * rng.uniform(0.66, 0.80), 0.42 * ny * s)
    cx = (nx - 1) / 2 + rng.uniform(-0.02, 0.02) * nx
    cy = (ny - 1) / 2 + rng.uniform(-0.03, 0.0) * ny
    return _Frame(s, dz, a, b, cx, cy)


def _draw_anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> _Anatomy:
    """The narrow style's anatomy."""
    return _draw_organs(rng, shape, _narrow_frame(rng, shape))


def _draw_organs(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    frame: _Frame,
    span_range: tuple[float, float] = (0.6, 0.8),
    free_ends: bool = True,
) -> _Anatomy:
    """Every organ of the narrow style, in ``frame``; the liver spans ``span_range`` of t.

    With ``free_ends`` the first and last slices stay free of liver.
    """
    nz = shape[2]
    s, dz, a, b, cx, cy = frame.s, frame.dz, frame.a, frame.b, frame.cx, frame.cy
    mm = lambda r: _body_units(r, a, b)  # noqa: E731  (mm -> body units)
    spine_v = 0.93 - rng.uniform(82.0, 95.0) / b  # vertebral body centre, ~9 cm from the back

    span = rng.uniform(*span_range)
    t0 = rng.uniform(0.06, 0.94 - span)
    t1 = t0 + span
    if free_ends and nz >= 3:  # keep at least one liver-free slice at each end
        t0 = max(t0, 1.0 / nz + 1e-6)
        t1 = min(t1, 1.0 - 1.0 / nz - 1e-6)
    lt = t1 - t0
    right = _Blob(
        cu=rng.uniform(-0.52, -0.44),
        cv=rng.uniform(-0.08, 0.02),
        ru=rng.uniform(0.43, 0.5),
        rv=rng.uniform(0.64, 0.76),
        t0=t0,
        t1=t1,
        angle=rng.uniform(-0.25, 0.05),
        harmonics=_harmonics(rng, 0.16),
        drift_u=_Wave.draw(rng, 0.04),
        drift_v=_Wave.draw(rng, 0.04),
        slope_u=rng.uniform(0.0, 0.08),
        slope_v=rng.uniform(0.0, 0.1),
        phase_drift=rng.uniform(-1, 1),
        profile="liver",
        peak=rng.uniform(0.45, 0.7),
    )
    medial = _Blob(
        cu=rng.uniform(-0.25, -0.15),
        cv=rng.uniform(-0.40, -0.25),
        ru=rng.uniform(0.22, 0.28),
        rv=rng.uniform(0.28, 0.36),
        t0=t0 + lt * rng.uniform(0.2, 0.35),
        t1=t1,
        harmonics=_harmonics(rng, 0.15),
        drift_u=_Wave.draw(rng, 0.03),
        drift_v=_Wave.draw(rng, 0.03),
        phase_drift=rng.uniform(-1, 1),
        profile="rise",
    )
    left = _Blob(
        cu=rng.uniform(-0.02, 0.10),
        cv=rng.uniform(-0.62, -0.50),
        ru=rng.uniform(0.22, 0.32),
        rv=rng.uniform(0.14, 0.2),
        t0=t0 + lt * rng.uniform(0.4, 0.55),
        t1=t1,
        angle=rng.uniform(-0.3, 0.1),
        harmonics=_harmonics(rng, 0.15),
        drift_u=_Wave.draw(rng, 0.04),
        slope_u=rng.uniform(0.0, 0.12),
        phase_drift=rng.uniform(-1, 1),
        profile="ellipsoid",
    )
    lobes = [right, medial, left]

    liver_vessels = []
    for _ in range(int(rng.integers(2, 5))):
        r = rng.uniform(2.5, 6.0)
        liver_vessels.append(
            _Blob(
                cu=rng.uniform(-0.55, -0.2),
                cv=rng.uniform(-0.3, 0.25),
                ru=mm(r)[0],
                rv=mm(r)[1],
                t0=t0 + lt * rng.uniform(0.1, 0.4),
                t1=t1,
                slope_u=rng.uniform(-0.2, 0.2),
                slope_v=rng.uniform(-0.2, 0.2),
                drift_u=_Wave.draw(rng, 0.03),
                drift_v=_Wave.draw(rng, 0.03),
            )
        )
    gb_r = rng.uniform(12.0, 18.0)
    gallbladder = _Blob(
        cu=rng.uniform(-0.32, -0.22),
        cv=rng.uniform(-0.42, -0.32),
        ru=mm(gb_r)[0],
        rv=mm(gb_r * 1.5)[1],
        t0=t0 + lt * rng.uniform(0.05, 0.15),
        t1=t0 + lt * rng.uniform(0.35, 0.5),
        angle=rng.uniform(-0.6, 0.6),
        harmonics=_harmonics(rng, 0.08, (2, 3)),
        profile="ellipsoid",
    )

    kidneys = []
    for side in (-1, 1):  # the right kidney (side -1) sits lower
        kt0 = rng.uniform(0.0, 0.12) + (0.0 if side < 0 else 0.1)
        kidneys.append(
            _Blob(
                cu=side * mm(rng.uniform(58.0, 72.0))[0],
                cv=spine_v + mm(rng.uniform(4.0, 14.0))[1],
                ru=mm(rng.uniform(15, 19))[0],
                rv=mm(rng.uniform(26, 31))[1],
                t0=kt0,
                t1=kt0 + rng.uniform(0.5, 0.6),
                angle=side * rng.uniform(0.4, 0.7),
                harmonics=_harmonics(rng, 0.1, (2, 3)),
                profile="ellipsoid",
            )
        )
    spleen = _Blob(
        cu=rng.uniform(0.50, 0.60),
        cv=rng.uniform(0.05, 0.25),
        ru=rng.uniform(0.14, 0.2),
        rv=rng.uniform(0.3, 0.4),
        t0=rng.uniform(0.4, 0.55),
        t1=rng.uniform(0.9, 1.05),
        angle=rng.uniform(-0.7, -0.3),
        harmonics=_harmonics(rng, 0.25, (1, 2, 3)),
        profile="ellipsoid",
    )
    stomach = _Blob(
        cu=rng.uniform(0.22, 0.36),
        cv=rng.uniform(-0.35, -0.15),
        ru=rng.uniform(0.18, 0.26),
        rv=rng.uniform(0.22, 0.32),
        t0=rng.uniform(0.45, 0.6),
        t1=rng.uniform(0.95, 1.1),
        harmonics=_harmonics(rng, 0.15),
        drift_u=_Wave.draw(rng, 0.05),
        slope_u=rng.uniform(-0.12, 0.0),
        profile="fall",
    )
    pancreas = _Blob(
        cu=rng.uniform(0.05, 0.18),
        cv=rng.uniform(0.05, 0.15),
        ru=rng.uniform(0.25, 0.32),
        rv=mm(rng.uniform(10, 14))[1],
        t0=rng.uniform(0.3, 0.4),
        t1=rng.uniform(0.55, 0.65),
        angle=rng.uniform(-0.35, -0.1),
        harmonics=_harmonics(rng, 0.1, (2, 3)),
        profile="ellipsoid",
    )

    bowel: list[tuple[_Blob, Tissue]] = []
    for _ in range(int(rng.integers(26, 36))):  # small-bowel loops, mostly left and anterior
        r = rng.uniform(11.0, 19.0)
        bt0 = rng.uniform(-0.3, 0.6)
        bowel.append(
            (
                _Blob(
                    cu=rng.uniform(-0.3 if bt0 < 0.15 else 0.05, 0.75),
                    cv=rng.uniform(-0.7, 0.3),
                    ru=mm(r)[0],
                    rv=mm(r)[1],
                    t0=bt0,
                    t1=bt0 + rng.uniform(0.2, 0.45),
                    harmonics=_harmonics(rng, 0.12, (2, 3)),
                    drift_u=_Wave.draw(rng, 0.06),
                    drift_v=_Wave.draw(rng, 0.06),
                    profile="ellipsoid",
                ),
                Tissue.GAS if rng.random() < 0.25 else Tissue.BOWEL_CONTENT,
            )
        )
    for side in (-1, 1):  # ascending and descending colon
        r = rng.uniform(16.0, 22.0)
        bowel.append(
            (
                _Blob(
                    cu=side * rng.uniform(0.6, 0.7),
                    cv=rng.uniform(-0.05, 0.2),
                    ru=mm(r)[0],
                    rv=mm(r)[1],
                    t0=-0.1,
                    t1=rng.uniform(0.35, 0.6),
                    harmonics=_harmonics(rng, 0.15, (2, 3)),
                    drift_u=_Wave.draw(rng, 0.03),
                    profile="flat",
                ),
                Tissue.GAS if rng.random() < 0.5 else Tissue.BOWEL_CONTENT,
            )
        )

    mesenteric = []
    for _ in range(int(rng.integers(15, 30))):  # small vessels in the mesenteric fat
        r = rng.uniform(1.5, 3.5)
        mt0 = rng.uniform(-0.3, 0.6)
        mesenteric.append(
            _Blob(
                cu=rng.uniform(-0.5, 0.6),
                cv=rng.uniform(-0.7, 0.3),
                ru=mm(r)[0],
                rv=mm(r)[1],
                t0=mt0,
                t1=mt0 + rng.uniform(0.2, 0.5),
                slope_u=rng.uniform(-0.2, 0.2),
                slope_v=rng.uniform(-0.2, 0.2),
            )
        )
    lungs = []
    for side in (-1, 1):
        lungs.append(
            _Blob(
                cu=side * rng.uniform(0.45, 0.55),
                cv=rng.uniform(0.35, 0.5),
                ru=rng.uniform(0.28, 0.36),
                rv=rng.uniform(0.3, 0.4),
                t0=rng.uniform(0.8, 0.9),
                t1=1.25,
                harmonics=_harmonics(rng, 0.1),
                profile="rise",
            )
        )

    aorta_r, ivc_r = rng.uniform(10.0, 13.0), rng.uniform(9.0, 12.0)
    vessels = [
        (
            _Blob(
                cu=rng.uniform(0.04, 0.1),
                cv=spine_v - mm(32.0)[1],
                ru=mm(aorta_r)[0],
                rv=mm(aorta_r)[1],
                t0=-0.1,
                t1=1.1,
                drift_u=_Wave.draw(rng, 0.02),
            ),
            Tissue.AORTA,
        ),
        (
            _Blob(
                cu=rng.uniform(-0.17, -0.12),
                cv=spine_v - mm(36.0)[1],
                ru=mm(ivc_r * 1.2)[0],
                rv=mm(ivc_r * 0.9)[1],
                t0=-0.1,
                t1=1.1,
                drift_u=_Wave.draw(rng, 0.02),
            ),
            Tissue.IVC,
        ),
    ]

    hu = {t: float(rng.uniform(*r)) for t, r in _HU_RANGES.items()}
    hu[Tissue.SPLEEN] = hu[Tissue.LIVER] + float(rng.uniform(-6.0, 6.0))
    hu[Tissue.TUMOUR] = min(hu[Tissue.TUMOUR], hu[Tissue.LIVER] - 35.0)  # clearly hypodense
    return _Anatomy(
        shape=shape,
        spacing=(s, s, dz),
        a=a,
        b=b,
        cx=cx,
        cy=cy,
        body_harm=_harmonics(rng, 0.06, (2, 3, 4)),
        body_wave=_Wave.draw(rng, 0.03),
        fat=rng.uniform(0.06, 0.15),
        fat_harm=_harmonics(rng, 0.35, (1, 2)),
        muscle=rng.uniform(0.045, 0.07),
        liver_t=(t0, t1),
        liver_lobes=lobes,
        liver_vessels=liver_vessels,
        gallbladder=gallbladder,
        tumours=[],
        pancreas=pancreas,
        bowel=bowel,
        lungs=lungs,
        kidneys=kidneys,
        spleen=spleen,
        stomach=stomach,
        stomach_gas_level=rng.uniform(-0.7, -0.3),
        vessels=vessels,
        spine_u=rng.uniform(-0.02, 0.02),
        spine_v=spine_v,
        disc_period=rng.uniform(28.0, 34.0),
        disc_phase=rng.uniform(0, 1),
        rib_phase=rng.uniform(0, 1),
        rib_jitter=tuple(rng.uniform(-0.3, 0.3, 10)),
        mesenteric=mesenteric,
        hu=hu,
        noise_sd=rng.uniform(10.0, 20.0),
        couch_gap=rng.uniform(3.0, 12.0),
    )


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


def _wall_shapes(an: _Anatomy, theta):
    """Angular profiles (t-independent) of the body outline and the fat layer."""
    body = 1.0 + sum(amp * np.cos(k * theta + ph) for k, amp, ph in an.body_harm)
    body = body * (1.0 - 0.07 * np.clip(np.sin(theta), 0, None) ** 4)  # flatter back
    fat = an.fat * (1.0 + sum(amp * np.cos(k * theta + ph) for k, amp, ph in an.fat_harm))
    fat = fat * (1.0 - 0.5 * np.clip(np.sin(theta), 0, None))  # thinner posteriorly
    if an.body_pad:  # obese: extra fat, widest at the flanks, thin under the back
        pad = an.body_pad * (1.0 + 0.3 * np.cos(theta) ** 2)
        pad = pad * (1.0 - 0.6 * np.clip(np.sin(theta), 0, None))
        body, fat = body + pad, fat + pad
    return body, fat


def _wall_radii(an: _Anatomy, t: float, body_shape, fat_shape):
    """(outer skin, inner skin, inner fat, cavity) radii in body units."""
    body_r = (1.0 + an.body_wave(t)) * body_shape
    skin = 3.0 / an.b
    return body_r, body_r - skin, body_r - skin - fat_shape, body_r - skin - fat_shape - an.muscle


def _paint_slice(
    an: _Anatomy,
    canvas: _Canvas,
    k: int,
    rho,
    theta,
    body_shape,
    fat_shape,
    liver_only: bool = False,
) -> None:
    """Paints the tissue ids of slice ``k`` into ``canvas.tissue``.

    ``liver_only`` skips what is painted before the liver (couch, lungs, ribs,
    gut): the liver overwrites those, so its final mask is the same.
    """
    t = an.t(k)
    cavity, cavity_r = _paint_wall(an, canvas, t, rho, body_shape, fat_shape)
    if not liver_only:
        _paint_couch(an, canvas)
        _paint_thorax(an, canvas, t, cavity)
        _paint_gut(an, canvas, t, cavity)
    _paint_liver(an, canvas, t, rho, cavity, cavity_r)
    _paint_retroperitoneum(an, canvas, t, cavity)
    _paint_spine(an, canvas, t, an.z_mm(k))
    _paint_tumours(an, canvas, t)


def _paint_wall(an: _Anatomy, canvas: _Canvas, t: float, rho, body_shape, fat_shape):
    """Body outline and wall layers (concentric, in the body's own polar frame)."""
    T = canvas.tissue
    outer, skin_in, fat_in, cavity_r = _wall_radii(an, t, body_shape, fat_shape)
    T[rho <= outer] = Tissue.SKIN
    T[rho <= skin_in] = Tissue.FAT
    T[rho <= fat_in] = Tissue.MUSCLE
    cavity = rho <= cavity_r
    T[cavity] = Tissue.FAT
    return cavity, cavity_r


def _paint_couch(an: _Anatomy, canvas: _Canvas) -> None:
    """Couch under the patient: two thin shells, lowest under the middle."""
    u = canvas.u
    pixel_mm = float(u[1] - u[0]) * an.a if u.size > 1 else an.spacing[0]
    top_mm = an.couch_top * an.b + an.couch_gap - 0.12 * an.b * u**2
    rel = canvas.v[None, :] * an.b - top_mm[:, None]
    thick = max(4.0, pixel_mm)
    in_span = (np.abs(u) < 1.2)[:, None]
    T = canvas.tissue
    T[in_span & (rel >= 0) & (rel < thick)] = Tissue.COUCH
    T[in_span & (rel >= 15.0) & (rel < 15.0 + thick)] = Tissue.COUCH


def _paint_thorax(an: _Anatomy, canvas: _Canvas, t: float, cavity) -> None:
    """Lung bases behind the liver dome; ribs in the wall sliding along it with z (upper slices)."""
    for lung in an.lungs:
        win, mask = canvas.blob_mask(lung, t)
        if win is not None:
            canvas.paint(win, mask & cavity[win], Tissue.LUNG)
    if t <= 0.45:
        return
    n_ribs = len(an.rib_jitter) // 2
    for side in (-1, 1):
        lo, hi = (
            (np.pi / 2 + 0.3, 1.5 * np.pi - 0.6)
            if side < 0
            else (-np.pi / 2 + 0.6, np.pi / 2 - 0.3)
        )
        for r in range(n_ribs):
            frac = (
                (r + 0.5 + an.rib_jitter[r + (side > 0) * n_ribs]) / n_ribs + 0.5 * t + an.rib_phase
            ) % 1.0
            ang = lo + frac * (hi - lo)
            rr = float(_wall_radii(an, t, *_wall_shapes(an, np.float32(ang)))[3]) + 0.5 * an.muscle
            rib = _Blob(
                cu=rr * math.cos(ang),
                cv=rr * math.sin(ang),
                ru=7.0 / an.a,
                rv=3.5 / an.b,
                angle=ang + np.pi / 2,
            )
            win, d = canvas.blob_depth(rib, t)
            if win is not None:
                canvas.paint(win, d <= 1.0, Tissue.CORTICAL_BONE)
                canvas.paint(win, d <= 0.45, Tissue.CANCELLOUS_BONE)


def _paint_gut(an: _Anatomy, canvas: _Canvas, t: float, cavity) -> None:
    """Mesenteric vessels, bowel and colon, stomach (wall, fluid, gas on top), pancreas."""
    for vessel in an.mesenteric:
        win, mask = canvas.blob_mask(vessel, t)
        if win is not None:
            canvas.paint(win, mask & cavity[win], Tissue.VESSEL)
    for loop, content in an.bowel:
        win, d = canvas.blob_depth(loop, t)
        if win is None:
            continue
        mask = (d <= 1.0) & cavity[win]
        canvas.paint(win, mask, Tissue.BOWEL_WALL)
        canvas.paint(win, (d <= 0.7) & mask, content)
    win, d = canvas.blob_depth(an.stomach, t)
    if win is not None:
        mask = (d <= 1.0) & cavity[win]
        canvas.paint(win, mask, Tissue.STOMACH_WALL)
        inner = (d <= 0.85) & mask
        canvas.paint(win, inner, Tissue.STOMACH_CONTENT)
        _, cv = an.stomach.centre(t)
        level = cv + an.stomach_gas_level * an.stomach.rv * an.stomach.scale(t)
        canvas.paint(win, inner & (canvas.v[None, win[1]] < level), Tissue.GAS)
    win, mask = canvas.blob_mask(an.pancreas, t)
    if win is not None:
        canvas.paint(win, mask & cavity[win], Tissue.PANCREAS)


def _paint_liver(an: _Anatomy, canvas: _Canvas, t: float, rho, cavity, cavity_r) -> None:
    """Liver: union of lobes inside the cavity (perihepatic fluid first), vessels, gallbladder."""
    grow = max(1.0, an.ascites)
    box = _union_box([lobe.box(t, grow) for lobe in an.liver_lobes])
    win = None if box is None else canvas.window(box)
    if win is not None:
        uu, vv = canvas.u[win[0], None], canvas.v[None, win[1]]
        depth = np.minimum.reduce([lobe.depth(uu, vv, t) for lobe in an.liver_lobes])
        inner_cavity = rho[win] <= cavity_r[win] - an.liver_gap / an.b
        if an.ascites:
            canvas.paint(
                win,
                (depth <= an.ascites) & cavity[win],
                Tissue.ASCITES,
                where=(Tissue.FAT, Tissue.VESSEL),
            )
        canvas.paint(win, (depth <= 1.0) & inner_cavity, Tissue.LIVER)
    for vessel in an.liver_vessels:
        canvas.paint_blob(vessel, t, Tissue.LIVER_VESSEL, where=(Tissue.LIVER,))
    canvas.paint_blob(an.gallbladder, t, Tissue.GALLBLADDER)


def _paint_retroperitoneum(an: _Anatomy, canvas: _Canvas, t: float, cavity) -> None:
    """Spleen, kidneys in their fat (renal impression on the liver), aorta and vena cava."""
    win, mask = canvas.blob_mask(an.spleen, t)
    if win is not None:
        canvas.paint(win, mask & cavity[win], Tissue.SPLEEN)
    for kidney in an.kidneys:
        canvas.paint_blob(kidney, t, Tissue.FAT, shrink=an.kidney_fat)
        win, d = canvas.blob_depth(kidney, t)
        if win is None:
            continue
        canvas.paint(win, d <= 1.0, Tissue.KIDNEY)
        if an.medulla:
            canvas.paint(win, d <= 0.72, Tissue.KIDNEY_MEDULLA, where=(Tissue.KIDNEY,))
        hilum = kidney.cu - math.copysign(0.35 * kidney.ru, kidney.cu)
        sinus = dataclasses.replace(
            kidney, cu=hilum, ru=kidney.ru * 0.45, rv=kidney.rv * 0.4, harmonics=()
        )
        canvas.paint_blob(
            sinus, t, Tissue.RENAL_SINUS, where=(Tissue.KIDNEY, Tissue.KIDNEY_MEDULLA)
        )
    for vessel, tissue in an.vessels:
        canvas.paint_blob(vessel, t, tissue)


def _paint_spine(an: _Anatomy, canvas: _Canvas, t: float, z_mm: float) -> None:
    """Psoas, vertebral body or disc, canal, posterior elements, paraspinal muscles."""
    mm_u, mm_v = 1.0 / an.a, 1.0 / an.b
    su, sv = an.spine_u, an.spine_v
    psoas_r = 8.0 + 14.0 * (1.0 - t)
    for side in (-1, 1):
        canvas.paint_blob(
            _Blob(
                cu=su + side * 30 * mm_u,
                cv=sv + 5 * mm_v,
                ru=psoas_r * mm_u,
                rv=psoas_r * 0.9 * mm_v,
            ),
            t,
            Tissue.MUSCLE,
        )
        canvas.paint_blob(
            _Blob(
                cu=su + side * 30 * mm_u,
                cv=sv + 44 * mm_v,
                ru=26 * mm_u,
                rv=20 * mm_v,
                angle=side * 0.25,
            ),
            t,
            Tissue.MUSCLE,
        )
    disc = ((z_mm / an.disc_period + an.disc_phase) % 1.0) < 8.0 / an.disc_period
    body = _Blob(cu=su, cv=sv, ru=18 * mm_u, rv=15 * mm_v, harmonics=((2, 0.05, 0.0),))
    win, d = canvas.blob_depth(body, t)
    if win is not None and disc:
        canvas.paint(win, d <= 1.0, Tissue.DISC)
    elif win is not None:
        canvas.paint(win, d <= 1.0, Tissue.CORTICAL_BONE)
        canvas.paint(win, d <= 0.85, Tissue.CANCELLOUS_BONE)
    for side in (-1, 1):
        canvas.paint_blob(
            _Blob(
                cu=su + side * 22 * mm_u,
                cv=sv + 24 * mm_v,
                ru=15 * mm_u,
                rv=3.5 * mm_v,
                angle=side * 0.3,
            ),
            t,
            Tissue.CORTICAL_BONE,
        )
    canvas.paint_blob(
        _Blob(cu=su, cv=sv + 31 * mm_v, ru=12 * mm_u, rv=11 * mm_v), t, Tissue.CORTICAL_BONE
    )
    canvas.paint_blob(
        _Blob(cu=su, cv=sv + 50 * mm_v, ru=3.5 * mm_u, rv=13 * mm_v), t, Tissue.CORTICAL_BONE
    )
    canvas.paint_blob(_Blob(cu=su, cv=sv + 29 * mm_v, ru=8 * mm_u, rv=7 * mm_v), t, Tissue.CSF)


_KIND_TISSUE = {
    "hypodense": Tissue.TUMOUR,
    "hyperdense": Tissue.TUMOUR_HYPER,
    "cystic": Tissue.TUMOUR_CYST,
    "rim-enhancing": Tissue.TUMOUR_RIM,
}


def _paint_tumours(an: _Anatomy, canvas: _Canvas, t: float) -> None:
    """Tumours last, and only on liver pixels: they never leave the liver.

    A rim-enhancing tumour's centre (inside ``rim`` of its outline) is necrotic.
    """
    kinds = an.tumour_kinds or ["hypodense"] * len(an.tumours)
    rims = an.tumour_rims or [0.0] * len(an.tumours)
    for tumour, kind, rim in zip(an.tumours, kinds, rims):
        win, d = canvas.blob_depth(tumour, t)
        if win is None:
            continue
        canvas.paint(win, d <= 1.0, _KIND_TISSUE[kind], where=LIVER_TISSUES)
        if kind == "rim-enhancing":
            canvas.paint(win, d <= rim, Tissue.TUMOUR_NECROSIS, where=(Tissue.TUMOUR_RIM,))


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


# ----------------------------------------------------------------------------
# The wide style: the narrow anatomy, redrawn over wider ranges (see the module
# docstring and docs/PHANTOMS.md for every range and why).

STYLES = ("narrow", "wide")
PHASES = ("non-contrast", "arterial", "portal venous", "delayed")
HABITUS = ("thin", "average", "obese")
LIVER_SHAPES = ("typical", "small", "large", "left-lobe-dominant")
TUMOUR_KINDS = ("hypodense", "rim-enhancing", "hyperdense", "cystic")
_WIDE_SLICE_THICKNESSES = (0.7, 0.75, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
_HABITUS_HALF_WIDTH = {"thin": (125.0, 150.0), "average": (145.0, 180.0), "obese": (150.0, 175.0)}
_FOV_MM = (300.0, 450.0)
_MAX_FOV_MM = 500.0
_WIDE_NOISE_SD = (5.0, 40.0)
#: The voxel the wide style's noise range refers to: a LiTS-like 0.75 mm pixel
#: of a 2.5 mm slice. Quantum noise averages over a larger voxel: its standard
#: deviation falls with the square root of the voxel volume.
NOISE_REFERENCE_VOXEL_MM = (0.75, 0.75, 2.5)


def noise_scale_for_voxel(spacing) -> float:
    """Factor from the reference voxel's noise to a voxel of ``spacing`` (mm);
    at most 1 (a finer voxel keeps the reference noise)."""
    ref = float(np.prod(NOISE_REFERENCE_VOXEL_MM))
    return float(min(1.0, math.sqrt(ref / float(np.prod([float(v) for v in spacing])))))


#: partial volume at the phantom's own pixel size: a CT's in-plane point spread
#: (about 1 mm) is well under a pixel of 3-5 mm, so more than one pixel would
#: be a blur no scanner makes
_INDEX_LESION_MM = 10.0
_WIDE_BLUR_PX = (0.35, 1.0)

_T = Tissue
# Phase-independent tissues of the wide style (the others keep _HU_RANGES).
_WIDE_HU: dict[Tissue, tuple[float, float]] = {
    _T.TUMOUR_NECROSIS: (5, 35),
    _T.TUMOUR_CYST: (0, 15),
    _T.ASCITES: (0, 20),
}
# Mean HU per contrast phase; the portal venous phase keeps the narrow table.
_PHASE_HU: dict[str, dict[Tissue, tuple[float, float]]] = {
    "non-contrast": {
        _T.LIVER: (45, 65),
        _T.SPLEEN: (40, 55),
        _T.KIDNEY: (30, 40),
        _T.KIDNEY_MEDULLA: (28, 38),
        _T.IVC: (35, 50),
        _T.AORTA: (35, 50),
        _T.VESSEL: (35, 50),
        _T.PANCREAS: (35, 50),
        _T.MUSCLE: (45, 60),
        _T.BOWEL_WALL: (35, 50),
        _T.STOMACH_WALL: (35, 50),
    },
    "arterial": {
        _T.LIVER: (60, 80),
        _T.SPLEEN: (100, 150),
        _T.KIDNEY: (180, 260),
        _T.KIDNEY_MEDULLA: (60, 100),
        _T.IVC: (50, 90),
        _T.AORTA: (250, 350),
        _T.VESSEL: (180, 280),
        _T.PANCREAS: (100, 140),
        _T.MUSCLE: (50, 65),
        _T.BOWEL_WALL: (70, 110),
        _T.STOMACH_WALL: (70, 110),
    },
    "portal venous": {},
    "delayed": {
        _T.LIVER: (80, 100),
        _T.SPLEEN: (80, 100),
        _T.KIDNEY: (120, 170),
        _T.IVC: (85, 110),
        _T.AORTA: (90, 130),
        _T.VESSEL: (85, 115),
        _T.PANCREAS: (65, 85),
        _T.MUSCLE: (50, 65),
        _T.BOWEL_WALL: (55, 75),
        _T.STOMACH_WALL: (55, 75),
    },
}
# HU relative to another tissue of the same phantom: tissue -> (base, low, high offset).
_PHASE_REL: dict[str, dict[Tissue, tuple[Tissue, float, float]]] = {
    "non-contrast": {
        _T.LIVER_VESSEL: (_T.LIVER, -15, 0),
        _T.TUMOUR: (_T.LIVER, -30, -10),
        _T.TUMOUR_HYPER: (_T.LIVER, 8, 25),
        _T.TUMOUR_RIM: (_T.LIVER, -8, 0),
    },
    "arterial": {
        _T.LIVER_VESSEL: (_T.LIVER, 30, 80),
        _T.TUMOUR: (_T.LIVER, -40, -15),
        _T.TUMOUR_HYPER: (_T.LIVER, 30, 90),
        _T.TUMOUR_RIM: (_T.LIVER, 25, 80),
    },
    "portal venous": {
        _T.SPLEEN: (_T.LIVER, -6, 6),
        _T.KIDNEY_MEDULLA: (_T.KIDNEY, -30, 0),
        _T.TUMOUR: (_T.LIVER, -70, -30),
        _T.TUMOUR_HYPER: (_T.LIVER, 12, 40),
        _T.TUMOUR_RIM: (_T.LIVER, 10, 45),
    },
    "delayed": {
        _T.LIVER_VESSEL: (_T.LIVER, -5, 15),
        _T.KIDNEY_MEDULLA: (_T.KIDNEY, -10, 10),
        _T.TUMOUR: (_T.LIVER, -50, -20),
        _T.TUMOUR_HYPER: (_T.LIVER, 8, 25),
        _T.TUMOUR_RIM: (_T.LIVER, 5, 30),
    },
}
_PHASE_P = (0.2, 0.25, 0.35, 0.2)
# Probabilities of a phantom's main tumour kind (order of TUMOUR_KINDS).
_KIND_P = {"arterial": (0.3, 0.15, 0.35, 0.2)}
_KIND_P_DEFAULT = (0.45, 0.2, 0.1, 0.25)


def _check_style(style: str) -> str:
    if style not in STYLES:
        raise ConfigError(f"phantom style must be one of {', '.join(STYLES)}, got {style!r}")
    return style


def _wide_frame(rng: np.random.Generator, shape: tuple[int, int, int]):
    """Habitus, field of view (30-45 cm, or smaller than the body), slice thickness, position.

    Returns the frame, the habitus, the obese fat pad and whether the field of
    view was drawn smaller than the body.
    """
    nx, ny, _ = shape
    habitus = HABITUS[rng.choice(3, p=(0.25, 0.5, 0.25))]
    a = rng.uniform(*_HABITUS_HALF_WIDTH[habitus])
    b = a * rng.uniform(0.64, 0.82)
    pad = rng.uniform(0.15, 0.35) if habitus == "obese" else 0.0
    width = 2.0 * a * (1.0 + 1.3 * pad) + 6.0
    front, back = b * (1.0 + pad) + 3.0, b * (0.95 + 0.4 * pad) + 30.0  # couch behind
    truncated = bool(rng.random() < 0.15)
    if truncated:
        fov = width * rng.uniform(0.7, 0.95)
    else:
        fov = min(max(rng.uniform(*_FOV_MM), 1.04 * width), _MAX_FOV_MM)
    s = float(np.float32(fov / nx))
    dz = float(rng.choice(_WIDE_SLICE_THICKNESSES))
    room_x = 0.9 * max(0.0, nx * s - width) / 2 + (0.15 * fov if truncated else 0.0)
    room_y = 0.9 * max(0.0, ny * s - front - back) / 2 + (0.1 * fov if truncated else 0.0)
    cx = (nx - 1) / 2 + rng.uniform(-room_x, room_x) / s
    cy = (ny - 1) / 2 + ((front - back) / 2 + rng.uniform(-room_y, room_y)) / s
    return _Frame(s, dz, a, b, cx, cy), habitus, pad, truncated


def _draw_wide(rng: np.random.Generator, shape: tuple[int, int, int]) -> _Anatomy:
    """The wide style's anatomy: narrow organs in a wide frame, then widened."""
    frame, habitus, pad, truncated = _wide_frame(rng, shape)
    an = _draw_organs(rng, shape, frame, span_range=(0.5, 0.85), free_ends=False)
    an.habitus, an.truncated = habitus, truncated
    _widen_body(rng, an, pad)
    _widen_liver(rng, an)
    _wide_slab(rng, an)
    _wide_contrast(rng, an)
    return an


def _widen_body(rng: np.random.Generator, an: _Anatomy, pad: float) -> None:
    """Thin: little fat, thin muscle. Obese: a fat pad, perirenal fat, fewer bowel loops."""
    if an.habitus == "thin":
        an.fat, an.muscle = rng.uniform(0.015, 0.05), rng.uniform(0.035, 0.055)
    elif an.habitus == "obese":
        an.fat, an.body_pad = rng.uniform(0.1, 0.2), pad
        an.kidney_fat = rng.uniform(1.25, 1.45)
        keep = rng.uniform(0.45, 0.75)
        an.bowel = [loop for loop in an.bowel if rng.random() < keep]
    an.couch_top = 0.95 + 0.4 * an.body_pad


def _moved(blob: _Blob, f: float = 1.0, du: float = 0.0, dv: float = 0.0, **kw) -> _Blob:
    return dataclasses.replace(
        blob, ru=blob.ru * f, rv=blob.rv * f, cu=blob.cu + du, cv=blob.cv + dv, **kw
    )


def _widen_liver(rng: np.random.Generator, an: _Anatomy) -> None:
    """Liver size and shape, position jitter, contact with the abdominal wall."""
    kind = LIVER_SHAPES[rng.choice(4, p=(0.4, 0.2, 0.2, 0.2))]
    right, medial, left = an.liver_lobes
    t0, t1 = an.liver_t
    if kind == "small":  # shrinks towards the right wall; often with perihepatic fluid
        f = rng.uniform(0.68, 0.85)
        right = _moved(right, f, du=-0.5 * (1.0 - f) * right.ru)
        medial, left = _moved(medial, f), _moved(left, f)
        an.ascites = rng.uniform(1.12, 1.3) if rng.random() < 0.5 else 0.0
    elif kind == "large":  # grows medially; the wall clips it laterally
        f = rng.uniform(1.12, 1.35)
        right = _moved(right, f, du=0.3 * (f - 1.0))
        medial, left = _moved(medial, f), _moved(left, f, du=0.3 * (f - 1.0))
    elif kind == "left-lobe-dominant":  # a big left lobe well across the midline
        right = _moved(right, rng.uniform(0.78, 0.92))
        medial = _moved(medial, 1.15)
        left = dataclasses.replace(
            left,
            cu=rng.uniform(0.12, 0.3),
            cv=rng.uniform(-0.55, -0.38),
            ru=rng.uniform(0.34, 0.48),
            rv=rng.uniform(0.2, 0.3),
            t0=t0 + (t1 - t0) * rng.uniform(0.15, 0.3),
        )
    du, dv = rng.uniform(-0.06, 0.06), rng.uniform(-0.06, 0.04)
    if rng.random() < 0.35:  # abuts the wall: no fat gap, pushed laterally
        an.liver_gap = 0.0
        right = _moved(right, du=-rng.uniform(0.03, 0.08))
    else:
        an.liver_gap = rng.uniform(1.0, 4.0)
    an.liver_lobes = [_moved(lobe, du=du, dv=dv) for lobe in (right, medial, left)]
    an.liver_vessels = [_moved(v, du=du, dv=dv) for v in an.liver_vessels]
    an.gallbladder = _moved(an.gallbladder, du=du, dv=dv)
    an.liver_shape = kind


def _wide_slab(rng: np.random.Generator, an: _Anatomy) -> None:
    """Places the slab (nz slices of the drawn thickness) on an anatomy 200-260 mm long.

    A slab well longer than the liver holds all of it in 60% (liver-free
    ends). Otherwise, three times in four the slab is centred in the liver's
    middle 70% (a scan is planned on the liver, as LiTS scans are), and once
    in four it hangs over the liver's dome or tip, 10-40% of it free of liver
    (but one slice centre at least 12% of the liver's height inside the liver). The slab stays within t in [-0.1, 1.1], where
    the anatomy is defined.
    """
    nz, dz = an.shape[2], an.spacing[2]
    length = max(rng.uniform(200.0, 260.0), nz * dz / 1.3)
    frac = nz * dz / length
    t0, t1 = an.liver_t
    span = t1 - t0
    if frac >= span + 0.1 and rng.random() < 0.6:
        w0 = rng.uniform(t1 + 0.03 - frac, t0 - 0.03)
    elif rng.random() < 0.75:
        w0 = rng.uniform(t0 + 0.15 * span, t1 - 0.15 * span) - frac / 2
    elif rng.random() < 0.5:  # over the liver's dome; a slice centre 12% of it inside
        w0 = min(t1 - rng.uniform(0.6, 0.9) * frac, t1 - 0.12 * span - 0.5 * frac / nz)
    else:  # below the liver's tip
        w0 = max(t0 - rng.uniform(0.1, 0.4) * frac, t0 + 0.12 * span - frac + 0.5 * frac / nz)
    w0 = min(max(w0, -0.1), 1.1 - frac)
    an.t_window, an.z_len = (w0, w0 + frac), length


def _draw_texture(rng: np.random.Generator, amp: float) -> tuple[float, ...]:
    """Two crossed plane waves (wavelengths 12-40 mm), drifting with z."""
    k = 2 * np.pi / rng.uniform(12.0, 40.0, 2)
    ang = rng.uniform(0, np.pi, 2)
    return (
        float(amp),
        *(k * np.cos(ang)),
        *(k * np.sin(ang)),
        rng.uniform(0, 2 * np.pi),
        rng.uniform(0.05, 0.2),
    )


def _wide_contrast(rng: np.random.Generator, an: _Anatomy) -> None:
    """Phase, tissue HU table, textures, noise and blur."""
    phase = PHASES[rng.choice(len(PHASES), p=_PHASE_P)]
    hu = {t: float(rng.uniform(*r)) for t, r in _HU_RANGES.items()}
    for table in (_WIDE_HU, _PHASE_HU[phase]):
        hu.update({t: float(rng.uniform(*r)) for t, r in table.items()})
    for tissue, (base, lo, hi) in _PHASE_REL[phase].items():
        hu[tissue] = hu[base] + float(rng.uniform(lo, hi))
    hu.setdefault(_T.KIDNEY_MEDULLA, hu[_T.KIDNEY])
    an.hu, an.phase, an.medulla = hu, phase, True
    spleen_amp = rng.uniform(20.0, 45.0) if phase == "arterial" else rng.uniform(0.0, 5.0)
    an.textures = {
        _T.SPLEEN: _draw_texture(rng, spleen_amp),
        _T.LIVER: _draw_texture(rng, rng.uniform(0.0, 6.0)),
    }
    lo, hi = _WIDE_NOISE_SD
    an.noise_sd_reference = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    an.noise_sd = an.noise_sd_reference * noise_scale_for_voxel(an.spacing)
    an.blur_px = float(rng.uniform(*_WIDE_BLUR_PX))


def _add_textures(an: _Anatomy, canvas: _Canvas, img: np.ndarray, t: float) -> None:
    """Adds each textured tissue's smooth pattern (arterial-phase spleen, mottled liver)."""
    z = t * (an.z_len or 1.0)
    for tissue, (amp, kx1, kx2, ky1, ky2, phase, kz) in an.textures.items():
        if amp <= 0:
            continue
        i, j = np.nonzero(canvas.tissue == tissue)
        if i.size:
            x, y = canvas.u[i] * an.a, canvas.v[j] * an.b
            img[i, j] += amp * (
                np.sin(kx1 * x + ky1 * y + phase + kz * z) * np.sin(kx2 * x + ky2 * y - phase)
            )


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


def _draw_storage(rng: np.random.Generator) -> tuple[bool, bool, bool, bool]:
    """(transpose x-y, flip x, flip y, flip z): any of the 8 in-plane layouts, z flipped 20%."""
    return (
        bool(rng.random() < 0.5),
        bool(rng.random() < 0.5),
        bool(rng.random() < 0.5),
        bool(rng.random() < 0.2),
    )


def _store(layout, arrays: list, affine: np.ndarray):
    """Flips and transposes the arrays (made in narrow layout); the affine keeps the world."""
    transpose, *flips = layout
    shape = arrays[0].shape
    to_canonical = np.eye(4)  # stored index -> narrow-layout index
    for axis, flip in enumerate(flips):
        if flip:
            to_canonical[axis, axis], to_canonical[axis, 3] = -1.0, shape[axis] - 1
    index = tuple(slice(None, None, -1) if f else slice(None) for f in flips)
    arrays = [None if a is None else a[index] for a in arrays]
    if transpose:
        arrays = [None if a is None else a.transpose(1, 0, 2) for a in arrays]
        to_canonical = to_canonical[:, [1, 0, 2, 3]]
    arrays = [None if a is None else np.asfortranarray(a) for a in arrays]
    stored = (affine @ to_canonical).astype(np.float32).astype(np.float64)
    return arrays, stored


def make_phantom(
    shape: Sequence[int] = (64, 64, 20),
    seed: int = 0,
    index: int = 0,
    *,
    with_tissue: bool = False,
    style: str = "narrow",
) -> Phantom:
    """Generates phantom ``index`` of ``seed`` in memory (slice by slice).

    ``style`` "narrow" is the original generator; "wide" draws from the wider
    distribution (its own random stream, so the two styles share nothing).
    """
    shape = _check_shape(shape)
    if seed < 0 or index < 0:
        raise ConfigError(f"seed and index must be non-negative, got {seed}, {index}")
    _check_style(style)
    if style == "narrow":
        rng = np.random.default_rng([seed, index])
        layout = None
        an = _draw_anatomy(rng, shape)
    else:
        rng = np.random.default_rng([seed, index, 1])
        layout = _draw_storage(rng)
        an = _draw_wide(rng, (shape[1], shape[0], shape[2]) if layout[0] else shape)
    affine = _affine(an, rng)
    nx, ny, _ = an.shape
    s = an.spacing[0]
    u = ((np.arange(nx) - an.cx) * s / an.a).astype(np.float32)
    v = ((np.arange(ny) - an.cy) * s / an.b).astype(np.float32)
    if style == "narrow":
        an.tumours = _place_tumours(rng, an, _CoarseLiver(an, u, v))
        an.tumour_mm = [2.0 * math.sqrt(t.ru * an.a * t.rv * an.b) for t in an.tumours]
    else:
        _place_wide_tumours(rng, an, _CoarseLiver(an, u, v))
    noise_rng = np.random.default_rng(rng.integers(0, 2**63))
    arrays = _render(an, u, v, noise_rng, with_tissue)
    if layout is not None:
        arrays, affine = _store(layout, arrays, affine)
    hu, labels, tissue_vol = arrays
    return Phantom(
        hu=hu,
        labels=labels,
        tissue=tissue_vol,
        affine=affine,
        spacing=tuple(float(x) for x in an.spacing),
        tissue_hu=dict(an.hu),
        num_tumours=len(an.tumours),
        style=style,
        phase=an.phase,
        storage=tuple(nib.aff2axcodes(affine)),
        habitus=an.habitus,
        liver_shape=an.liver_shape,
        truncated=an.truncated,
        noise_sd=float(an.noise_sd),
        blur_px=float(an.blur_px),
        noise_sd_reference=float(an.noise_sd_reference or an.noise_sd),
        tumour_kinds=tuple(an.tumour_kinds or ["hypodense"] * len(an.tumours)),
        tumour_diameters_mm=tuple(float(d) for d in an.tumour_mm),
    )


def _render(
    an: _Anatomy, u: np.ndarray, v: np.ndarray, noise_rng: np.random.Generator, with_tissue: bool
) -> list:
    """[hu, labels, tissue or None] in narrow layout: paint, HU, noise, blur, slice by slice."""
    shape, s = an.shape, an.spacing[0]
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
    noise_gain = float(np.sqrt(np.sum(ndimage.gaussian_filter(delta, an.blur_px) ** 2)))
    noise_scale = np.float32(an.noise_sd / noise_gain)

    hu = np.empty(shape, dtype=np.int16, order="F")
    labels = np.empty(shape, dtype=np.uint8, order="F")
    tissue_vol = np.empty(shape, dtype=np.uint8, order="F") if with_tissue else None
    label_lut = np.zeros(256, dtype=np.uint8)
    label_lut[[int(t) for t in LIVER_TISSUES]] = 1
    label_lut[[int(t) for t in TUMOUR_TISSUES]] = 2
    tumour_core = np.float32(-6.0)
    for k in range(shape[2]):
        canvas = _Canvas(u, v)
        _paint_slice(an, canvas, k, rho, theta, body_shape, fat_shape)
        img = lut[canvas.tissue]
        is_tumour = canvas.tissue == Tissue.TUMOUR
        if is_tumour.any():  # slightly darker centres
            dist = ndimage.distance_transform_edt(is_tumour).astype(np.float32)
            img[is_tumour] += tumour_core * np.minimum(dist[is_tumour] * s / 10.0, 1.0)
        if an.textures:
            _add_textures(an, canvas, img, an.t(k))
        img += noise_scale * noise_rng.standard_normal(img.shape, dtype=np.float32)
        img = ndimage.gaussian_filter(img, an.blur_px, mode="nearest")
        np.clip(np.rint(img), _HU_MIN, _HU_MAX, out=img)
        hu[:, :, k] = img
        labels[:, :, k] = label_lut[canvas.tissue]
        if tissue_vol is not None:
            tissue_vol[:, :, k] = canvas.tissue
    return [hu, labels, tissue_vol]


def phantom_paths(output_dir: str | os.PathLike, index: int) -> tuple[Path, Path]:
    """``(volume-{index}.nii.gz, segmentation-{index}.nii.gz)`` under ``output_dir``."""
    return (
        safe_output_path(output_dir, f"volume-{index}.nii.gz"),
        safe_output_path(output_dir, f"segmentation-{index}.nii.gz"),
    )


def write_phantoms(
    output_dir: str | os.PathLike,
    num_volumes: int,
    shape: Sequence[int] = (64, 64, 20),
    seed: int = 0,
    start_index: int = 0,
    *,
    overwrite: bool = False,
    style: str = "narrow",
    preview: str | os.PathLike | None = None,
) -> list[tuple[Path, Path]]:
    """Writes phantoms ``start_index .. start_index + num_volumes - 1`` in LiTS layout.

    All output names are checked before anything is written, so an existing
    file (without ``overwrite``) leaves the directory untouched. ``preview``:
    also a PNG grid of every phantom's middle slice there.
    """
    if num_volumes < 1:
        raise ConfigError(f"num_volumes must be at least 1, got {num_volumes}")
    if start_index < 0:
        raise ConfigError(f"start_index must be non-negative, got {start_index}")
    shape = _check_shape(shape)
    _check_style(style)
    indices = range(start_index, start_index + num_volumes)
    paths = [phantom_paths(output_dir, i) for i in indices]
    for pair in paths:
        for p in pair:
            check_can_write(p, overwrite)
    panels = []
    for i, (vol_path, seg_path) in zip(indices, paths):
        ph = make_phantom(shape, seed, i, style=style)
        nifti.save_ct(vol_path, ph.hu, ph.affine, overwrite=overwrite, compresslevel=1)
        reference = nifti.read_header(vol_path)
        nifti.save_labels(
            seg_path, ph.labels, dataclasses.replace(reference, data=ph.labels), overwrite=overwrite
        )
        if preview is not None:
            k = ph.hu.shape[2] // 2
            panels.append(
                (ph.hu[:, :, k].copy(), ph.labels[:, :, k].copy(), phantom_preview.title_of(i, ph))
            )
    if preview is not None:
        phantom_preview.write_preview(preview, panels)
    return paths
