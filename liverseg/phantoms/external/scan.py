"""The scanner: point-spread blur, correlated noise and integer HU."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from liverseg.phantoms.external.body import _Body
from liverseg.phantoms.external.draws import _uniform
from liverseg.phantoms.external.grid import _Grid

HU_MIN, HU_MAX = -1024, 3071


def _scan(rng, image: np.ndarray, grid: _Grid, body: _Body) -> tuple[np.ndarray, float]:
    """Point-spread blur (in-plane kernel, slice profile), correlated noise, integer HU."""
    sx, sy, sz = grid.spacing
    psf = _uniform(rng, (0.4, 0.8))
    sigma = [psf / sx, psf / sy, _uniform(rng, (0.2, 0.45))]
    sigma = [s if s >= 0.2 else 0.0 for s in sigma]
    out = ndimage.gaussian_filter(image, sigma, mode="nearest")
    sd = _uniform(rng, (8, 20)) * (body.half_width / 165) ** 1.5 * math.sqrt(2.5 / max(sz, 0.7))
    sd = float(np.clip(sd, 5.0, 30.0))
    grain = _uniform(rng, (0.5, 0.9))
    noise = rng.standard_normal(grid.shape, dtype=np.float32)
    corr = [grain / sx, grain / sy, 0.0]
    if corr[0] >= 0.3:
        noise = ndimage.gaussian_filter(noise, corr, mode="wrap")
    noise *= np.float32(sd / max(float(noise.std()), 1e-6))
    out += noise
    return np.clip(np.rint(out), HU_MIN, HU_MAX), sd
