"""How a phantom is stored: axis order and flips (with the affine that keeps
world positions), data type and scaling, suffix, header transforms and the
reconstruction circle."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from liverseg.errors import ConfigError
from liverseg.phantoms.external.draws import _choice
from liverseg.phantoms.external.grid import _Grid
from liverseg.phantoms.external.scan import HU_MIN

DTYPES = ("int16", "uint16", "float32")
DTYPE_WEIGHTS = (0.45, 0.25, 0.3)
SUFFIXES = (".nii", ".nii.gz")


@dataclasses.dataclass(frozen=True)
class _Storage:
    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    dtype: str
    suffix: str
    xform: str
    fov_circle: bool
    padding: int


def _draw_storage(rng) -> _Storage:
    """Axis order and flips (any of 48), data type, suffix, header transforms, FOV circle."""
    perms = list(itertools.permutations(range(3)))
    if rng.uniform() < 0.9:
        perm = _choice(rng, [(0, 1, 2), (1, 0, 2)], (0.5, 0.5))
    else:
        perm = _choice(rng, [p for p in perms if p[2] != 2], (1,) * 4)
    flips = tuple(bool(v) for v in rng.uniform(size=3) < 0.5)
    dtype = _choice(rng, DTYPES, DTYPE_WEIGHTS)
    suffix = _choice(rng, SUFFIXES, (0.4, 0.6))
    xform = _choice(rng, ("both", "sform", "qform"), (0.7, 0.15, 0.15))
    circle = bool(rng.uniform() < 0.25)
    padding = -2048 if circle and dtype != "uint16" and rng.uniform() < 0.3 else -1024
    return _Storage(tuple(perm), flips, dtype, suffix, xform, circle, padding)


def _override_storage(storage: _Storage, orientation, dtype, suffix) -> _Storage:
    changes = {}
    if orientation is not None:
        perm, flips = orientation
        if sorted(perm) != [0, 1, 2] or len(flips) != 3:
            raise ConfigError(
                f"orientation must be (permutation of 0,1,2, three flips), got {orientation}"
            )
        changes.update(permutation=tuple(int(p) for p in perm), flips=tuple(bool(f) for f in flips))
    if dtype is not None:
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        changes["dtype"] = dtype
        if dtype == "uint16":
            changes["padding"] = -1024
    if suffix is not None:
        if suffix not in SUFFIXES:
            raise ConfigError(f"suffix must be one of {SUFFIXES}, got {suffix!r}")
        changes["suffix"] = suffix
    return dataclasses.replace(storage, **changes)


def _fov_circle(grid: _Grid) -> np.ndarray:
    """True outside the reconstruction circle inscribed in the in-plane field of view."""
    x = (np.arange(grid.shape[0]) - (grid.shape[0] - 1) / 2) * grid.spacing[0]
    y = (np.arange(grid.shape[1]) - (grid.shape[1] - 1) / 2) * grid.spacing[1]
    radius = min(grid.shape[0] * grid.spacing[0], grid.shape[1] * grid.spacing[1]) / 2
    return (x[:, None] ** 2 + y[None, :] ** 2) > radius**2


def _reorient(array: np.ndarray, storage: _Storage) -> np.ndarray:
    """The canonical (RAS) array in the stored axis order and directions."""
    out = np.transpose(array, storage.permutation)
    for a, flip in enumerate(storage.flips):
        if flip:
            out = np.flip(out, axis=a)
    return np.ascontiguousarray(out)


def _stored_affine(grid: _Grid, storage: _Storage) -> np.ndarray:
    """The affine of the stored array: world positions are unchanged by the reordering."""
    index_map = np.zeros((4, 4))
    index_map[3, 3] = 1.0
    for a, (p, flip) in enumerate(zip(storage.permutation, storage.flips)):
        index_map[p, a] = -1.0 if flip else 1.0
        index_map[p, 3] = grid.shape[p] - 1 if flip else 0.0
    affine = grid.affine @ index_map
    return affine.astype(np.float32).astype(np.float64)


def _encode(hu: np.ndarray, dtype: str) -> tuple[np.ndarray, float, float]:
    """(stored array, scl_slope, scl_inter): uint16 stores HU + 1024 with intercept -1024."""
    if dtype == "uint16":
        return (hu - HU_MIN).astype(np.uint16), 1.0, float(HU_MIN)
    return hu.astype(np.dtype(dtype)), 1.0, 0.0
