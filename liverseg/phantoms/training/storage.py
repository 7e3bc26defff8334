"""How a phantom is stored: its affine, and the wide style's flips and transposes
of the arrays (the affine follows, so the world positions are unchanged)."""

from __future__ import annotations

import numpy as np

from liverseg.phantoms.training.anatomy import _Anatomy


def _affine(an: _Anatomy, rng: np.random.Generator) -> np.ndarray:
    s, _, dz = an.spacing
    aff = np.diag([-s, -s, dz, 1.0])
    aff[0, 3] = s * an.cx + rng.uniform(-5, 5)
    aff[1, 3] = s * an.cy + rng.uniform(-5, 5)
    aff[2, 3] = -rng.uniform(200.0, 600.0)
    return aff.astype(np.float32).astype(np.float64)  # what the header can hold


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
