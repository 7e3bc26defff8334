"""Paints one slice's tissue ids from an anatomy: body wall, couch, thorax, gut,
liver, retroperitoneum, spine and, last, the tumours (only on liver pixels)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from liverseg.phantoms.training.anatomy import _Anatomy
from liverseg.phantoms.training.shapes import _Blob, _Canvas, _union_box
from liverseg.phantoms.training.tissues import LIVER_TISSUES, Tissue


def _wall_shapes(an: _Anatomy, theta):
    """Angular profiles (t-independent) of the body outline and the fat layer."""
    body = 1.0 + sum(amp * np.cos(k * theta + ph) for k, amp, ph in an.body_harm)
    body = body * (1.0 - 0.07 * np.clip(np.sin(theta), 0, None) ** 4)  # flatter back
    fat = an.fat * (1.0 + sum(amp * np.cos(k * theta + ph) for k, amp, ph in an.fat_harm))
    fat = fat * (1.0 - 0.5 * np.clip(np.sin(theta), 0, None))  # thinner posteriorly
    if an.body_pad:  # obese: extra fat, widest at the flanks, thin under the back
        pad = an.body_pad * (1.0 + 0.3 * np.cos(theta) ** 2)
        pad = pad * (1.0 - 0.6 * np.clip(np.sin(theta), 0, None))
        body, fat = body + pad, fat + pad
    return body, fat


def _wall_radii(an: _Anatomy, t: float, body_shape, fat_shape):
    """(outer skin, inner skin, inner fat, cavity) radii in body units."""
    body_r = (1.0 + an.body_wave(t)) * body_shape
    skin = 3.0 / an.b
    return body_r, body_r - skin, body_r - skin - fat_shape, body_r - skin - fat_shape - an.muscle


def _paint_slice(
    an: _Anatomy,
    canvas: _Canvas,
    k: int,
    rho,
    theta,
    body_shape,
    fat_shape,
    liver_only: bool = False,
) -> None:
    """Paints the tissue ids of slice ``k`` into ``canvas.tissue``.

    ``liver_only`` skips what is painted before the liver (couch, lungs, ribs,
    gut): the liver overwrites those, so its final mask is the same.
    """
    t = an.t(k)
    cavity, cavity_r = _paint_wall(an, canvas, t, rho, body_shape, fat_shape)
    if not liver_only:
        _paint_couch(an, canvas)
        _paint_thorax(an, canvas, t, cavity)
        _paint_gut(an, canvas, t, cavity)
    _paint_liver(an, canvas, t, rho, cavity, cavity_r)
    _paint_retroperitoneum(an, canvas, t, cavity)
    _paint_spine(an, canvas, t, an.z_mm(k))
    _paint_tumours(an, canvas, t)


def _paint_wall(an: _Anatomy, canvas: _Canvas, t: float, rho, body_shape, fat_shape):
    """Body outline and wall layers (concentric, in the body's own polar frame)."""
    T = canvas.tissue
    outer, skin_in, fat_in, cavity_r = _wall_radii(an, t, body_shape, fat_shape)
    T[rho <= outer] = Tissue.SKIN
    T[rho <= skin_in] = Tissue.FAT
    T[rho <= fat_in] = Tissue.MUSCLE
    cavity = rho <= cavity_r
    T[cavity] = Tissue.FAT
    return cavity, cavity_r


def _paint_couch(an: _Anatomy, canvas: _Canvas) -> None:
    """Couch under the patient: two thin shells, lowest under the middle."""
    u = canvas.u
    pixel_mm = float(u[1] - u[0]) * an.a if u.size > 1 else an.spacing[0]
    top_mm = an.couch_top * an.b + an.couch_gap - 0.12 * an.b * u**2
    rel = canvas.v[None, :] * an.b - top_mm[:, None]
    thick = max(4.0, pixel_mm)
    in_span = (np.abs(u) < 1.2)[:, None]
    T = canvas.tissue
    T[in_span & (rel >= 0) & (rel < thick)] = Tissue.COUCH
    T[in_span & (rel >= 15.0) & (rel < 15.0 + thick)] = Tissue.COUCH


def _paint_thorax(an: _Anatomy, canvas: _Canvas, t: float, cavity) -> None:
    """Lung bases behind the liver dome; ribs in the wall sliding along it with z (upper slices)."""
    for lung in an.lungs:
        win, mask = canvas.blob_mask(lung, t)
        if win is not None:
            canvas.paint(win, mask & cavity[win], Tissue.LUNG)
    if t <= 0.45:
        return
    n_ribs = len(an.rib_jitter) // 2
    for side in (-1, 1):
        lo, hi = (
            (np.pi / 2 + 0.3, 1.5 * np.pi - 0.6)
            if side < 0
            else (-np.pi / 2 + 0.6, np.pi / 2 - 0.3)
        )
        for r in range(n_ribs):
            frac = (
                (r + 0.5 + an.rib_jitter[r + (side > 0) * n_ribs]) / n_ribs + 0.5 * t + an.rib_phase
            ) % 1.0
            ang = lo + frac * (hi - lo)
            rr = float(_wall_radii(an, t, *_wall_shapes(an, np.float32(ang)))[3]) + 0.5 * an.muscle
            rib = _Blob(
                cu=rr * math.cos(ang),
                cv=rr * math.sin(ang),
                ru=7.0 / an.a,
                rv=3.5 / an.b,
                angle=ang + np.pi / 2,
            )
            win, d = canvas.blob_depth(rib, t)
            if win is not None:
                canvas.paint(win, d <= 1.0, Tissue.CORTICAL_BONE)
                canvas.paint(win, d <= 0.45, Tissue.CANCELLOUS_BONE)


def _paint_gut(an: _Anatomy, canvas: _Canvas, t: float, cavity) -> None:
    """Mesenteric vessels, bowel and colon, stomach (wall, fluid, gas on top), pancreas."""
    for vessel in an.mesenteric:
        win, mask = canvas.blob_mask(vessel, t)
        if win is not None:
            canvas.paint(win, mask & cavity[win], Tissue.VESSEL)
    for loop, content in an.bowel:
        win, d = canvas.blob_depth(loop, t)
        if win is None:
            continue
        mask = (d <= 1.0) & cavity[win]
        canvas.paint(win, mask, Tissue.BOWEL_WALL)
        canvas.paint(win, (d <= 0.7) & mask, content)
    win, d = canvas.blob_depth(an.stomach, t)
    if win is not None:
        mask = (d <= 1.0) & cavity[win]
        canvas.paint(win, mask, Tissue.STOMACH_WALL)
        inner = (d <= 0.85) & mask
        canvas.paint(win, inner, Tissue.STOMACH_CONTENT)
        _, cv = an.stomach.centre(t)
        level = cv + an.stomach_gas_level * an.stomach.rv * an.stomach.scale(t)
        canvas.paint(win, inner & (canvas.v[None, win[1]] < level), Tissue.GAS)
    win, mask = canvas.blob_mask(an.pancreas, t)
    if win is not None:
        canvas.paint(win, mask & cavity[win], Tissue.PANCREAS)


def _paint_liver(an: _Anatomy, canvas: _Canvas, t: float, rho, cavity, cavity_r) -> None:
    """Liver: union of lobes inside the cavity (perihepatic fluid first), vessels, gallbladder."""
    grow = max(1.0, an.ascites)
    box = _union_box([lobe.box(t, grow) for lobe in an.liver_lobes])
    win = None if box is None else canvas.window(box)
    if win is not None:
        uu, vv = canvas.u[win[0], None], canvas.v[None, win[1]]
        depth = np.minimum.reduce([lobe.depth(uu, vv, t) for lobe in an.liver_lobes])
        inner_cavity = rho[win] <= cavity_r[win] - an.liver_gap / an.b
        if an.ascites:
            canvas.paint(
                win,
                (depth <= an.ascites) & cavity[win],
                Tissue.ASCITES,
                where=(Tissue.FAT, Tissue.VESSEL),
            )
        canvas.paint(win, (depth <= 1.0) & inner_cavity, Tissue.LIVER)
    for vessel in an.liver_vessels:
        canvas.paint_blob(vessel, t, Tissue.LIVER_VESSEL, where=(Tissue.LIVER,))
    canvas.paint_blob(an.gallbladder, t, Tissue.GALLBLADDER)


def _paint_retroperitoneum(an: _Anatomy, canvas: _Canvas, t: float, cavity) -> None:
    """Spleen, kidneys in their fat (renal impression on the liver), aorta and vena cava."""
    win, mask = canvas.blob_mask(an.spleen, t)
    if win is not None:
        canvas.paint(win, mask & cavity[win], Tissue.SPLEEN)
    for kidney in an.kidneys:
        canvas.paint_blob(kidney, t, Tissue.FAT, shrink=an.kidney_fat)
        win, d = canvas.blob_depth(kidney, t)
        if win is None:
            continue
        canvas.paint(win, d <= 1.0, Tissue.KIDNEY)
        if an.medulla:
            canvas.paint(win, d <= 0.72, Tissue.KIDNEY_MEDULLA, where=(Tissue.KIDNEY,))
        hilum = kidney.cu - math.copysign(0.35 * kidney.ru, kidney.cu)
        sinus = dataclasses.replace(
            kidney, cu=hilum, ru=kidney.ru * 0.45, rv=kidney.rv * 0.4, harmonics=()
        )
        canvas.paint_blob(
            sinus, t, Tissue.RENAL_SINUS, where=(Tissue.KIDNEY, Tissue.KIDNEY_MEDULLA)
        )
    for vessel, tissue in an.vessels:
        canvas.paint_blob(vessel, t, tissue)


def _paint_spine(an: _Anatomy, canvas: _Canvas, t: float, z_mm: float) -> None:
    """Psoas, vertebral body or disc, canal, posterior elements, paraspinal muscles."""
    mm_u, mm_v = 1.0 / an.a, 1.0 / an.b
    su, sv = an.spine_u, an.spine_v
    psoas_r = 8.0 + 14.0 * (1.0 - t)
    for side in (-1, 1):
        canvas.paint_blob(
            _Blob(
                cu=su + side * 30 * mm_u,
                cv=sv + 5 * mm_v,
                ru=psoas_r * mm_u,
                rv=psoas_r * 0.9 * mm_v,
            ),
            t,
            Tissue.MUSCLE,
        )
        canvas.paint_blob(
            _Blob(
                cu=su + side * 30 * mm_u,
                cv=sv + 44 * mm_v,
                ru=26 * mm_u,
                rv=20 * mm_v,
                angle=side * 0.25,
            ),
            t,
            Tissue.MUSCLE,
        )
    disc = ((z_mm / an.disc_period + an.disc_phase) % 1.0) < 8.0 / an.disc_period
    body = _Blob(cu=su, cv=sv, ru=18 * mm_u, rv=15 * mm_v, harmonics=((2, 0.05, 0.0),))
    win, d = canvas.blob_depth(body, t)
    if win is not None and disc:
        canvas.paint(win, d <= 1.0, Tissue.DISC)
    elif win is not None:
        canvas.paint(win, d <= 1.0, Tissue.CORTICAL_BONE)
        canvas.paint(win, d <= 0.85, Tissue.CANCELLOUS_BONE)
    for side in (-1, 1):
        canvas.paint_blob(
            _Blob(
                cu=su + side * 22 * mm_u,
                cv=sv + 24 * mm_v,
                ru=15 * mm_u,
                rv=3.5 * mm_v,
                angle=side * 0.3,
            ),
            t,
            Tissue.CORTICAL_BONE,
        )
    canvas.paint_blob(
        _Blob(cu=su, cv=sv + 31 * mm_v, ru=12 * mm_u, rv=11 * mm_v), t, Tissue.CORTICAL_BONE
    )
    canvas.paint_blob(
        _Blob(cu=su, cv=sv + 50 * mm_v, ru=3.5 * mm_u, rv=13 * mm_v), t, Tissue.CORTICAL_BONE
    )
    canvas.paint_blob(_Blob(cu=su, cv=sv + 29 * mm_v, ru=8 * mm_u, rv=7 * mm_v), t, Tissue.CSF)


_KIND_TISSUE = {
    "hypodense": Tissue.TUMOUR,
    "hyperdense": Tissue.TUMOUR_HYPER,
    "cystic": Tissue.TUMOUR_CYST,
    "rim-enhancing": Tissue.TUMOUR_RIM,
}


def _paint_tumours(an: _Anatomy, canvas: _Canvas, t: float) -> None:
    """Tumours last, and only on liver pixels: they never leave the liver.

    A rim-enhancing tumour's centre (inside ``rim`` of its outline) is necrotic.
    """
    kinds = an.tumour_kinds or ["hypodense"] * len(an.tumours)
    rims = an.tumour_rims or [0.0] * len(an.tumours)
    for tumour, kind, rim in zip(an.tumours, kinds, rims):
        win, d = canvas.blob_depth(tumour, t)
        if win is None:
            continue
        canvas.paint(win, d <= 1.0, _KIND_TISSUE[kind], where=LIVER_TISSUES)
        if kind == "rim-enhancing":
            canvas.paint(win, d <= rim, Tissue.TUMOUR_NECROSIS, where=(Tissue.TUMOUR_RIM,))
