"""``make_phantom``: one phantom in memory (``Phantom``), from its seed, index,
shape and style, with the checks on those arguments."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import nibabel as nib
import numpy as np

from liverseg.data import nifti
from liverseg.errors import ConfigError
from liverseg.phantoms.training.anatomy import _BLUR_PX, _draw_anatomy
from liverseg.phantoms.training.render import _render
from liverseg.phantoms.training.storage import _affine, _draw_storage, _store
from liverseg.phantoms.training.tissues import Tissue
from liverseg.phantoms.training.tumours import _CoarseLiver, _place_tumours, _place_wide_tumours
from liverseg.phantoms.training.wide import _draw_wide

MIN_SHAPE = (16, 16, 4)
STYLES = ("narrow", "wide")


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


def _check_style(style: str) -> str:
    if style not in STYLES:
        raise ConfigError(f"phantom style must be one of {', '.join(STYLES)}, got {style!r}")
    return style


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
