"""What the tissues look like: the contrast phase, each tissue's mean HU
(static, or per phase with one enhancement level shared by all organs) and
the amplitudes of their smooth textures."""

from __future__ import annotations

import dataclasses

import numpy as np

from liverseg.phantoms.external.draws import _choice, _uniform

PHASES = ("noncontrast", "arterial", "portal", "delayed")
PHASE_WEIGHTS = (0.15, 0.2, 0.5, 0.15)


STATIC_HU = {
    "air": (-1000.0, -990.0),
    "fat": (-120.0, -80.0),
    "muscle": (40.0, 60.0),
    "lung": (-900.0, -800.0),
    "cortical": (700.0, 1200.0),
    "cancellous": (300.0, 450.0),
    "rib": (350.0, 700.0),
    "disc": (70.0, 100.0),
    "cartilage": (100.0, 200.0),
    "csf": (0.0, 15.0),
    "bile": (0.0, 20.0),
    "urine": (0.0, 15.0),
    "fluid": (0.0, 25.0),
    "gas": (-1000.0, -950.0),
    "stool": (-150.0, 50.0),
    "table_shell": (150.0, 300.0),
    "table_core": (-950.0, -850.0),
}
"""Mean HU range of the tissues that do not enhance."""

PHASE_HU = {
    "liver": ((50, 65), (65, 85), (100, 130), (80, 100)),
    "spleen": ((40, 55), (90, 130), (110, 135), (85, 105)),
    "kidney_cortex": ((30, 40), (150, 220), (150, 190), (130, 160)),
    "kidney_medulla": ((25, 35), (60, 100), (140, 180), (130, 170)),
    "aorta": ((35, 50), (250, 400), (150, 200), (100, 140)),
    "heart": ((35, 50), (200, 350), (140, 190), (100, 130)),
    "ivc": ((35, 50), (70, 110), (120, 160), (100, 130)),
    "portal_vein": ((35, 50), (100, 160), (160, 210), (110, 140)),
    "hepatic_vein": ((35, 50), (50, 80), (130, 180), (100, 130)),
    "pancreas": ((35, 50), (100, 140), (80, 110), (60, 85)),
    "bowel_wall": ((30, 45), (60, 100), (80, 110), (70, 95)),
}
"""Mean HU range per contrast phase, in the order of PHASES."""

EXCRETION_HU = (300.0, 900.0)
"""Contrast in the renal collecting system (delayed phase only, probability 0.6)."""

_TEXTURE = {  # HU amplitude of the smooth texture: ((field index, amplitude), ...)
    "fat": ((2, 4.0), (4, 3.0)),
    "muscle": ((2, 4.0), (5, 3.0)),
    "lung": ((3, 15.0), (4, 25.0)),
    "liver": ((1, 3.0), (2, 4.0)),
    "spleen": ((2, 5.0),),
    "kidney": ((3, 4.0),),
    "blood": ((2, 2.0),),
    "pancreas": ((3, 4.0), (5, 10.0)),
    "bone": ((4, 40.0), (3, 25.0)),
    "stool": ((4, 70.0), (5, 50.0)),
    "fluid": ((3, 2.0),),
    "wall": ((5, 5.0),),
}


@dataclasses.dataclass(frozen=True)
class _Contrast:
    phase: str
    hu: dict
    excretion: float | None


def _draw_contrast(rng: np.random.Generator) -> _Contrast:
    """The phase and every tissue's mean HU; one enhancement level is shared by all organs."""
    phase = _choice(rng, PHASES, PHASE_WEIGHTS)
    p = PHASES.index(phase)
    level = rng.uniform()  # one enhancement level shared by all organs of the scan
    hu = {name: _uniform(rng, bounds) for name, bounds in STATIC_HU.items()}
    for name, ranges in PHASE_HU.items():
        lo, hi = ranges[p]
        hu[name] = lo + (hi - lo) * float(np.clip(0.6 * level + 0.4 * rng.uniform(), 0, 1))
    excreted = phase == "delayed" and rng.uniform() < 0.6
    return _Contrast(phase, hu, _uniform(rng, EXCRETION_HU) if excreted else None)
