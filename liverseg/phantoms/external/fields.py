"""Smooth periodic random fields (cubic B-splines of a random lattice): the
low-frequency shape wobble and the tissue textures."""

from __future__ import annotations

import dataclasses

import numpy as np

_FIELD_WAVELENGTHS = (60.0, 40.0, 24.0, 18.0, 8.0, 6.0)  # mm; 0-1 shape wobble, 2-5 texture
_LATTICE = 20


def _bspline_weights(t: np.ndarray) -> tuple[np.ndarray, ...]:
    return (
        (1 - t) ** 3 / 6,
        (3 * t**3 - 6 * t**2 + 4) / 6,
        (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6,
        t**3 / 6,
    )


def _bspline_rms() -> float:
    """RMS of a cubic B-spline sum of unit-variance lattice values, averaged over 3D."""
    w = _bspline_weights(np.linspace(0, 1, 1001))
    return float(np.sqrt(np.mean(sum(wi**2 for wi in w)) ** 3))


_FIELD_NORM = 1.0 / _bspline_rms()


@dataclasses.dataclass(frozen=True, eq=False)
class _Field:
    """A periodic smooth random field of unit variance (cubic B-spline of a random lattice)."""

    coeffs: np.ndarray
    wavelength: float

    def _taps(self, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lattice indices and weights (len(coords), 4) of the four B-spline taps."""
        t = np.asarray(coords, dtype=np.float64) / self.wavelength
        base = np.floor(t)
        index = (base.astype(np.int64)[:, None] - 1 + np.arange(4)) % self.coeffs.shape[0]
        return index, np.stack(_bspline_weights(t - base), axis=1)

    def _matrix(self, coords: np.ndarray) -> np.ndarray:
        index, weights = self._taps(coords)
        m = np.zeros((len(coords), self.coeffs.shape[0]))
        np.add.at(m, (np.arange(len(coords))[:, None], index), weights)
        return m

    def on_axes(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> np.ndarray:
        """Values on the grid spanned by three coordinate vectors (mm), float32."""
        n = self.coeffs.shape[0]
        v = (self._matrix(xs) @ self.coeffs.reshape(n, n * n)).reshape(-1, n, n)  # (nx, n, n)
        v = np.matmul(self._matrix(ys), v).astype(np.float32)  # (nx, ny, n)
        index, weights = self._taps(zs)
        weights = (weights * _FIELD_NORM).astype(np.float32)
        out = v[:, :, index[:, 0]] * weights[:, 0]
        for k in range(1, 4):  # only four taps per z: cheaper than a dense product
            out += v[:, :, index[:, k]] * weights[:, k]
        return out


def _draw_fields(rng: np.random.Generator) -> tuple[_Field, ...]:
    return tuple(_Field(rng.standard_normal((_LATTICE,) * 3), w) for w in _FIELD_WAVELENGTHS)
