"""The wide style: the narrow anatomy redrawn over wider ranges (habitus, field
of view, liver size and shape, slab placement, contrast phase, textures, noise
and blur). The package docstring and docs/PHANTOMS.md give every range and why."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from liverseg.phantoms.training.anatomy import _Anatomy, _draw_organs, _Frame
from liverseg.phantoms.training.shapes import _Blob
from liverseg.phantoms.training.tissues import _HU_RANGES, Tissue

PHASES = ("non-contrast", "arterial", "portal venous", "delayed")
HABITUS = ("thin", "average", "obese")
LIVER_SHAPES = ("typical", "small", "large", "left-lobe-dominant")
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
