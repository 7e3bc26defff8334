"""Every random choice of one phantom's anatomy, drawn up front: the image frame
and the narrow style's organs (``_Anatomy``), which the wide style then redraws."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from liverseg.phantoms.training.shapes import _Blob, _harmonics, _Wave
from liverseg.phantoms.training.tissues import _HU_RANGES, Tissue

_SLICE_THICKNESSES = (1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
_BLUR_PX = 0.7  # in-plane Gaussian blur (partial volume and noise correlation), pixels


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
