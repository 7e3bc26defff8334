"""What a phantom is drawn from: the checked options, one random stream per
concern (so forcing one, e.g. storage, moves nothing else) and the small draw
helpers every part of the family uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from liverseg.errors import ConfigError

_SALT = 0x45585450  # separates this family's random streams from any other generator's
_STREAMS = ("storage", "contrast", "body", "geometry", "fields", "organs", "tumours", "scan")


@dataclasses.dataclass(frozen=True)
class _Options:
    size: int
    num_slices: int
    spacing_range: tuple[float, float]
    thickness_range: tuple[float, float]
    max_tumours: int


def _options(size, num_slices, spacing_range, thickness_range, max_tumours) -> _Options:
    if int(size) != size or size < 16 or size > 1024:
        raise ConfigError(f"size must be an integer in 16..1024, got {size}")
    if int(num_slices) != num_slices or num_slices < 2 or num_slices > 1024:
        raise ConfigError(f"num_slices must be an integer in 2..1024, got {num_slices}")
    for name, rng in (("spacing_range", spacing_range), ("thickness_range", thickness_range)):
        if len(rng) != 2 or not 0.1 <= rng[0] <= rng[1] <= 20.0:
            raise ConfigError(
                f"{name} must be (low, high) with 0.1 <= low <= high <= 20 mm, got {tuple(rng)}"
            )
    if int(max_tumours) != max_tumours or not 0 <= max_tumours <= 50:
        raise ConfigError(f"max_tumours must be an integer in 0..50, got {max_tumours}")
    return _Options(
        int(size),
        int(num_slices),
        tuple(map(float, spacing_range)),
        tuple(map(float, thickness_range)),
        int(max_tumours),
    )


def _streams(seed: int, index: int) -> dict[str, np.random.Generator]:
    """Independent generators per concern, so forcing one (e.g. storage) moves nothing else."""
    if int(seed) != seed or int(index) != index or seed < 0 or index < 0:
        raise ConfigError(f"seed and index must be non-negative integers, got {seed}, {index}")
    return {
        name: np.random.default_rng([_SALT, int(seed), int(index), k])
        for k, name in enumerate(_STREAMS)
    }


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _choice(rng: np.random.Generator, items: Sequence, weights: Sequence[float]):
    return items[int(rng.choice(len(items), p=np.asarray(weights) / np.sum(weights)))]


def _jitter(rng, point, amount: float):
    return tuple(float(v) for v in np.asarray(point) + rng.uniform(-amount, amount, 3))
