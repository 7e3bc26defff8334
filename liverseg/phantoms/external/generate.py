"""``make_external_phantom``: one phantom in memory, from its streams to the
stored arrays; the organs' priority order; what was drawn (``Drawn``)."""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np

from liverseg.phantoms.external.abdomen import (
    _arteries,
    _colon,
    _draw_kidneys,
    _gallbladder,
    _kidney_organs,
    _liver_organs,
    _pancreas,
    _small_bowel,
    _spleen,
    _stomach,
    _veins,
)
from liverseg.phantoms.external.body import _Body, _draw_body
from liverseg.phantoms.external.contrast import _Contrast, _draw_contrast
from liverseg.phantoms.external.draws import _options, _streams
from liverseg.phantoms.external.fields import _draw_fields
from liverseg.phantoms.external.grid import _draw_grid
from liverseg.phantoms.external.layers import _Organ
from liverseg.phantoms.external.render import _FieldCache, _render
from liverseg.phantoms.external.scan import _scan
from liverseg.phantoms.external.storage import (
    _draw_storage,
    _encode,
    _fov_circle,
    _override_storage,
    _reorient,
    _stored_affine,
)
from liverseg.phantoms.external.torso import _muscles, _pelvis, _ribs, _spine, _thorax, _wall_organs
from liverseg.phantoms.external.tumours import _add_tumours, _draw_tumours


@dataclasses.dataclass(frozen=True)
class Drawn:
    """What was drawn for one phantom (for reports, tests and stratified metrics)."""

    seed: int
    index: int
    phase: str
    axcodes: tuple[str, str, str]
    permutation: tuple[int, int, int]
    flips: tuple[bool, bool, bool]
    dtype: str
    suffix: str
    xform: str  # "both", "sform" or "qform": which header transforms are set
    fov_circle: bool
    padding: int  # HU outside the reconstruction circle (when fov_circle)
    fov_mode: str  # "fit" (whole body in view) or "zoom" (targeted reconstruction)
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    slab_mm: tuple[float, float]  # inferior, superior end (body z; 0 = right dome)
    body_width_mm: float
    liver_scale: float
    liver_hu: float
    noise_sd: float
    num_tumours: int
    num_tumours_labelled: int
    tumour_kinds: tuple[str, ...]
    tumour_diameters_mm: tuple[float, ...]


@dataclasses.dataclass(frozen=True, eq=False)
class ExternalPhantom:
    """One phantom as stored: raw data, labels, affine and what was drawn.

    ``data`` has the stored dtype and axis order; HU = data * scl_slope + scl_inter
    (``hu``). ``labels`` (uint8: 0 background, 1 liver, 2 tumour) share the
    orientation; ``spacing`` is the voxel size of the stored axes.
    """

    data: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    scl_slope: float
    scl_inter: float
    drawn: Drawn

    @property
    def hu(self) -> np.ndarray:
        """The stored values in HU (float32)."""
        return self.data.astype(np.float32) * np.float32(self.scl_slope) + np.float32(
            self.scl_inter
        )

    @property
    def info(self) -> dict:
        """``drawn`` as a plain dict."""
        return dataclasses.asdict(self.drawn)


def _build_organs(rng, body: _Body, contrast: _Contrast) -> list[_Organ]:
    """Every organ but the tumours, in priority order (later ones carve earlier ones)."""
    hu = contrast.hu
    kidneys = _draw_kidneys(rng, body)
    return (
        _wall_organs(rng, body, hu)
        + _spleen(rng, body, contrast)
        + _small_bowel(rng, body, hu)
        + _colon(rng, body, hu)
        + _liver_organs(rng, body, hu, kidneys[1])
        + _stomach(rng, body, hu)
        + _kidney_organs(kidneys, contrast)
        + _pancreas(rng, body, hu)
        + _gallbladder(rng, body, hu)
        + _pelvis(rng, body, hu)
        + _thorax(rng, body, hu)
        + _veins(rng, body, hu)
        + _arteries(rng, body, hu)
        + _muscles(rng, body, hu)
        + _spine(rng, body, hu)
        + _ribs(rng, body, hu)
    )


def make_external_phantom(
    seed: int,
    index: int,
    *,
    size: int = 96,
    num_slices: int = 32,
    spacing_range: tuple[float, float] = (0.6, 4.0),
    thickness_range: tuple[float, float] = (0.7, 5.0),
    max_tumours: int = 10,
    orientation=None,
    dtype: str | None = None,
    suffix: str | None = None,
) -> ExternalPhantom:
    """Builds phantom ``index`` of family ``seed``.

    The in-plane shape is at most ``size`` x ``size`` (the pixel size is chosen so
    the body fits, within ``spacing_range``), with ``num_slices`` slices of a
    thickness drawn in ``thickness_range``. ``orientation`` ((permutation, flips)
    of the canonical RAS axes), ``dtype`` and ``suffix`` force the storage; the
    anatomy and image do not change with them.
    """
    opts = _options(size, num_slices, spacing_range, thickness_range, max_tumours)
    rngs = _streams(seed, index)
    storage = _override_storage(_draw_storage(rngs["storage"]), orientation, dtype, suffix)
    contrast = _draw_contrast(rngs["contrast"])
    body = _draw_body(rngs["body"])
    grid = _draw_grid(rngs["geometry"], body, opts)
    fields = _FieldCache(_draw_fields(rngs["fields"]), grid)
    canvas = _render(_build_organs(rngs["organs"], body, contrast), fields, contrast.hu["air"])
    tumours = _draw_tumours(
        rngs["tumours"], canvas.liver, grid, contrast.hu["liver"], opts.max_tumours
    )
    labels, labelled = _add_tumours(canvas, tumours, fields)
    hu, noise_sd = _scan(rngs["scan"], canvas.image, grid, body)
    if storage.fov_circle:
        outside = _fov_circle(grid)
        hu[outside] = storage.padding
        labels[outside] = 0
    data, slope, inter = _encode(hu, storage.dtype)
    affine = _stored_affine(grid, storage)
    drawn = Drawn(
        seed=int(seed),
        index=int(index),
        phase=contrast.phase,
        axcodes=tuple(nib.aff2axcodes(affine)),
        permutation=storage.permutation,
        flips=storage.flips,
        dtype=storage.dtype,
        suffix=storage.suffix,
        xform=storage.xform,
        fov_circle=storage.fov_circle,
        padding=storage.padding,
        fov_mode=grid.fov_mode,
        shape=tuple(int(grid.shape[p]) for p in storage.permutation),
        spacing=tuple(float(grid.spacing[p]) for p in storage.permutation),
        slab_mm=(round(grid.slab[0], 1), round(grid.slab[1], 1)),
        body_width_mm=round(2 * body.half_width, 1),
        liver_scale=round(body.liver_scale, 3),
        liver_hu=round(contrast.hu["liver"], 1),
        noise_sd=round(noise_sd, 1),
        num_tumours=len(tumours),
        num_tumours_labelled=labelled,
        tumour_kinds=tuple(t.kind for t in tumours),
        tumour_diameters_mm=tuple(round(2 * max(t.radii), 1) for t in tumours),
    )
    return ExternalPhantom(
        data=_reorient(data, storage),
        labels=_reorient(labels, storage),
        affine=affine,
        spacing=drawn.spacing,
        scl_slope=slope,
        scl_inter=inter,
        drawn=drawn,
    )
