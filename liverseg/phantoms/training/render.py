"""Renders an anatomy slice by slice: tissue ids to HU (textures, darker tumour
centres), correlated noise, blur and int16 quantisation, plus the label map."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from liverseg.phantoms.training.anatomy import _Anatomy
from liverseg.phantoms.training.paint import _paint_slice, _wall_shapes
from liverseg.phantoms.training.shapes import _Canvas
from liverseg.phantoms.training.tissues import LIVER_TISSUES, TUMOUR_TISSUES, Tissue

_HU_MIN, _HU_MAX = -1024, 3071


def _add_textures(an: _Anatomy, canvas: _Canvas, img: np.ndarray, t: float) -> None:
    """Adds each textured tissue's smooth pattern (arterial-phase spleen, mottled liver)."""
    z = t * (an.z_len or 1.0)
    for tissue, (amp, kx1, kx2, ky1, ky2, phase, kz) in an.textures.items():
        if amp <= 0:
            continue
        i, j = np.nonzero(canvas.tissue == tissue)
        if i.size:
            x, y = canvas.u[i] * an.a, canvas.v[j] * an.b
            img[i, j] += amp * (
                np.sin(kx1 * x + ky1 * y + phase + kz * z) * np.sin(kx2 * x + ky2 * y - phase)
            )


def _render(
    an: _Anatomy, u: np.ndarray, v: np.ndarray, noise_rng: np.random.Generator, with_tissue: bool
) -> list:
    """[hu, labels, tissue or None] in narrow layout: paint, HU, noise, blur, slice by slice."""
    shape, s = an.shape, an.spacing[0]
    uu, vv = u[:, None], v[None, :]
    rho = np.sqrt(uu * uu + vv * vv)
    theta = np.arctan2(vv, uu)
    body_shape, fat_shape = _wall_shapes(an, theta)

    lut = np.zeros(256, dtype=np.float32)
    for tissue, value in an.hu.items():
        lut[int(tissue)] = value
    # White noise blurred like the image; scaled so the blurred noise has noise_sd.
    delta = np.zeros((15, 15), dtype=np.float32)
    delta[7, 7] = 1.0
    noise_gain = float(np.sqrt(np.sum(ndimage.gaussian_filter(delta, an.blur_px) ** 2)))
    noise_scale = np.float32(an.noise_sd / noise_gain)

    hu = np.empty(shape, dtype=np.int16, order="F")
    labels = np.empty(shape, dtype=np.uint8, order="F")
    tissue_vol = np.empty(shape, dtype=np.uint8, order="F") if with_tissue else None
    label_lut = np.zeros(256, dtype=np.uint8)
    label_lut[[int(t) for t in LIVER_TISSUES]] = 1
    label_lut[[int(t) for t in TUMOUR_TISSUES]] = 2
    tumour_core = np.float32(-6.0)
    for k in range(shape[2]):
        canvas = _Canvas(u, v)
        _paint_slice(an, canvas, k, rho, theta, body_shape, fat_shape)
        img = lut[canvas.tissue]
        is_tumour = canvas.tissue == Tissue.TUMOUR
        if is_tumour.any():  # slightly darker centres
            dist = ndimage.distance_transform_edt(is_tumour).astype(np.float32)
            img[is_tumour] += tumour_core * np.minimum(dist[is_tumour] * s / 10.0, 1.0)
        if an.textures:
            _add_textures(an, canvas, img, an.t(k))
        img += noise_scale * noise_rng.standard_normal(img.shape, dtype=np.float32)
        img = ndimage.gaussian_filter(img, an.blur_px, mode="nearest")
        np.clip(np.rint(img), _HU_MIN, _HU_MAX, out=img)
        hu[:, :, k] = img
        labels[:, :, k] = label_lut[canvas.tissue]
        if tissue_vol is not None:
            tissue_vol[:, :, k] = canvas.tissue
    return [hu, labels, tissue_vol]
