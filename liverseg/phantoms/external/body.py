"""The body: outline (a superellipse widening at the hips), wall thickness,
diaphragm domes, spine position and liver scale, from which every organ is
placed."""

from __future__ import annotations

import dataclasses

import numpy as np

from liverseg.phantoms.external.draws import _choice, _uniform
from liverseg.phantoms.external.sdf import _smax, _superellipse


@dataclasses.dataclass(frozen=True)
class _Body:
    """Body outline and the landmarks the organs are placed from (mm, body frame)."""

    half_width: float
    half_depth: float
    exponent: int  # of the superellipse outline: 2 (ellipse) or 3 (squarer)
    fat: float
    muscle: float
    hip: float
    wobble: float
    liver_scale: float
    left_dome: float  # height of the left dome's apex (<= 0)
    dome_x: float
    dome_y: float
    dome_rx: float
    dome_ry_front: float
    dome_ry_back: float
    spine_y: float  # centre of the vertebral bodies
    crest: float  # height of the iliac crests; the lumbar spine ends just below

    @property
    def cavity_a(self) -> float:
        return self.half_width - self.fat - self.muscle

    @property
    def cavity_b(self) -> float:
        return self.half_depth - self.fat - self.muscle

    @property
    def liver_bottom(self) -> float:
        return -165.0 * self.liver_scale

    def width_at(self, z) -> np.ndarray | float:
        """Half-width of the body at height ``z``: constant above the hips."""
        z = np.asarray(z)
        if self.hip == 0 or np.all(z >= -200.0):
            return self.half_width
        s = np.clip((-200.0 - z) / 120.0, 0.0, 1.0)
        return self.half_width * (1.0 + self.hip * s * s * (3 - 2 * s))

    def outline(self, x, y, z, field) -> np.ndarray:
        """Skin: a superellipse widening at the hips, displaced by noise."""
        return _superellipse(
            x, y, self.width_at(z), self.half_depth, self.exponent
        ) + self.wobble * field(0)

    def cavity(self, x, y, z, field) -> np.ndarray:
        """Inner surface of the muscle wall."""
        return self.outline(x, y, z, field) + self.fat + self.muscle

    def dome(self, x, y) -> np.ndarray:
        """Height of the diaphragm: two paraboloid domes, posterior recesses deeper."""
        ry = np.where(y > self.dome_y, self.dome_ry_front, self.dome_ry_back)
        back = (y - self.dome_y) ** 2 / (2 * ry)
        right = -((x - self.dome_x) ** 2) / (2 * self.dome_rx) - back
        left = self.left_dome - (x + self.dome_x) ** 2 / (2 * self.dome_rx) - back
        return _smax(right, left, 15.0)


def _draw_body(rng: np.random.Generator) -> _Body:
    """Body size and shape, fat and muscle thickness, liver scale, diaphragm and spine."""
    a = _uniform(rng, (135, 200))
    b = a * _uniform(rng, (0.62, 0.85))
    fat = _uniform(rng, (5, 15)) + (a - 135) / 65 * _uniform(rng, (0, 25))
    muscle = _uniform(rng, (6, 15))
    cavity_a = a - fat - muscle
    cavity_b = b - fat - muscle
    return _Body(
        half_width=a,
        half_depth=b,
        exponent=_choice(rng, (2, 3), (0.35, 0.65)),
        fat=fat,
        muscle=muscle,
        hip=_uniform(rng, (0.0, 0.12)),
        wobble=_uniform(rng, (2, 6)),
        liver_scale=_uniform(rng, (0.78, 1.3)),
        left_dome=-_uniform(rng, (5, 25)),
        dome_x=0.45 * cavity_a,
        dome_y=0.1 * cavity_b,
        dome_rx=_uniform(rng, (90, 160)),
        dome_ry_front=_uniform(rng, (120, 250)),
        dome_ry_back=(1.1 * cavity_b) ** 2 / (2 * _uniform(rng, (50, 90))),
        spine_y=-b + fat + _uniform(rng, (60, 72)),
        crest=-_uniform(rng, (250, 280)),
    )
