"""The abdominal organs: liver (with its veins), spleen, stomach, bowel and
colon, kidneys, pancreas, gallbladder, aorta, vena cava and portal vein."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from liverseg.phantoms.external.body import _Body
from liverseg.phantoms.external.contrast import _TEXTURE, _Contrast
from liverseg.phantoms.external.draws import _choice, _jitter, _uniform
from liverseg.phantoms.external.layers import _around, _Organ, _points_box
from liverseg.phantoms.external.sdf import (
    _capsule,
    _chain,
    _ellipsoid,
    _frame,
    _rot_x,
    _rot_z,
    _slab,
    _smax,
    _smin,
    _union,
    _ztube,
)


def _gut(name, rng, points, radius, wall, hu, contents, gas_prob, k=8.0) -> list[_Organ]:
    """A hollow tube (capsule chain): wall, contents and, sometimes, gas above a level."""
    pts = [tuple(float(v) for v in p) for p in points]
    radii = list(radius)
    box = _points_box(pts, max(radii))
    lumen_r = [max(r - wall, 1.0) for r in radii]

    def outer(x, y, z, f):
        return _chain(x, y, z, pts, radii, k)

    def lumen(x, y, z, f):
        return _chain(x, y, z, pts, lumen_r, k)

    organs = [
        _Organ(f"{name} wall", *box, outer, hu["bowel_wall"], _TEXTURE["wall"]),
        _Organ(f"{name} contents", *box, lumen, contents[0], contents[1]),
    ]
    if rng.uniform() < gas_prob:
        ys = np.asarray(pts)[:, 1]
        level = _uniform(rng, (ys.min() - max(radii), ys.max() + 0.5 * max(radii)))
        organs.append(
            _Organ(
                f"{name} gas",
                *box,
                lambda x, y, z, f: _smax(lumen(x, y, z, f), level - y, 1.0),
                hu["gas"],
                ((4, 5.0),),
            )
        )
    return organs


def _small_bowel(rng, body: _Body, hu: dict) -> list[_Organ]:
    """8-20 short loops below the liver: fluid-filled, gas-filled or collapsed."""
    ca, cb = body.cavity_a, body.cavity_b
    organs = []
    top = min(-110.0, body.liver_bottom + 40)
    for i in range(int(rng.integers(8, 21))):
        c = np.array(
            [rng.uniform(-0.55, 0.55) * ca, rng.uniform(-0.1, 0.65) * cb, rng.uniform(-330, top)]
        )
        d = rng.standard_normal(3)
        d *= _uniform(rng, (15, 35)) / np.linalg.norm(d)
        r = _uniform(rng, (9, 14))
        state = _choice(rng, ("fluid", "gas", "collapsed"), (0.6, 0.15, 0.25))
        wall = r - 2.0 if state == "collapsed" else _uniform(rng, (1.5, 3.0))
        contents = (hu["fluid"], _TEXTURE["fluid"])
        organs += _gut(
            f"small bowel {i}",
            rng,
            (c - d, c + d),
            (r, r),
            wall,
            hu,
            contents,
            1.0 if state == "gas" else 0.2 if state == "fluid" else 0.0,
        )
    return organs


def _liver_shape(rng, body: _Body, kidney: _Kidney):
    """The liver: a smooth union of lobes displaced by noise, under the dome, in the cavity.

    Behind and around the right ``kidney`` it is cut away (the renal impression), so the
    kidney lies posterior to the liver rather than inside it.
    """
    ca, cb, s = body.cavity_a, body.cavity_b, body.liver_scale

    def jit(v, amount=0.1):
        return tuple(float(x * _uniform(rng, (1 - amount, 1 + amount))) for x in v)

    r_right = jit((70 * s, 85 * s, 82 * s))
    ivc = (22.0, body.spine_y + 28.0)
    lobes = [((ca - 0.85 * r_right[0], -0.05 * cb, -0.8 * r_right[2]), r_right)]
    lobes.append(
        ((lobes[0][0][0] - 55 * s, 0.35 * cb, -0.6 * r_right[2]), jit((45 * s, 50 * s, 50 * s)))
    )
    left = _uniform(rng, (0.5, 1.3))
    lobes.append(
        (
            (-0.25 * ca * left, 0.35 * cb, body.left_dome - 35 * s),
            jit((55 * s * left, 38 * s, 28 * s)),
        )
    )
    lobes.append(((ivc[0] - 12, ivc[1] + 25, -45 * s), jit((22 * s, 22 * s, 35 * s))))
    if rng.uniform() < 0.15:  # Riedel's lobe
        lobes.append(((lobes[0][0][0] + 10, 0.0, -150 * s), jit((30 * s, 40 * s, 55 * s))))
    lobes = [(_jitter(rng, c, 6.0), r) for c, r in lobes]
    k = _uniform(rng, (12, 22))
    wobble = _uniform(rng, (3, 8))
    gap = _uniform(rng, (2, 6))
    back = 60.0
    fossa_c = (kidney.centre[0], kidney.centre[1] - back, kidney.centre[2])
    fossa_r = (kidney.radii[0] + gap, kidney.radii[1] + back + gap, kidney.radii[2] + gap)

    def sdf(x, y, z, f):
        d = None
        for c, r in lobes:
            e = _ellipsoid(x, y, z, c, r)
            d = e if d is None else _smin(d, e, k)
        d = d + wobble * f(1)
        d = _smax(d, body.cavity(x, y, z, f) + 2.0, 6.0)
        d = _smax(d, -_ellipsoid(x, y, z, fossa_c, fossa_r), 4.0)
        return _smax(d, z - body.dome(x, y), 4.0)

    lo = np.min([np.subtract(c, r) for c, r in lobes], axis=0) - k - wobble - 5
    hi = np.max([np.add(c, r) for c, r in lobes], axis=0) + k + wobble + 5
    return sdf, (tuple(lo), tuple(hi)), lobes


def _liver_organs(rng, body: _Body, hu: dict, kidney: _Kidney) -> list[_Organ]:
    """The liver and its veins (hepatic veins to the IVC, portal branches from the hilum)."""
    sdf, box, lobes = _liver_shape(rng, body, kidney)
    organs = [_Organ("liver", *box, sdf, hu["liver"], _TEXTURE["liver"], liver=True)]
    s, ca, cb = body.liver_scale, body.cavity_a, body.cavity_b
    right, medial = lobes[0][0], lobes[1][0]
    ivc_top = (22.0, body.spine_y + 28.0, -12.0)
    size = _uniform(rng, (0.8, 1.25))
    veins = [
        _jitter(rng, p, 8.0)
        for p in (
            (right[0] + 30 * s, body.spine_y + 40, -70 * s),
            (medial[0], 0.35 * cb, -75 * s),
            (-0.15 * ca, 0.3 * cb, -45 * s),
        )
    ]
    hilum = _jitter(rng, ((right[0] + medial[0]) / 2, body.spine_y + 70, -65 * s), 6.0)
    branches = [
        _jitter(rng, p, 8.0)
        for p in (
            (right[0] + 15, 0.0, -80 * s),
            (-0.1 * ca, 0.35 * cb, -50 * s),
            (right[0], 0.2 * cb, -110 * s),
        )
    ]

    def hepatic(x, y, z, f):
        return _union([_capsule(x, y, z, ivc_top, p, 6 * size, 2 * size) for p in veins])

    def portal(x, y, z, f):
        return _union([_capsule(x, y, z, hilum, p, 6 * size, 2.5 * size) for p in branches])

    organs.append(
        _Organ(
            "hepatic veins",
            *box,
            hepatic,
            hu["hepatic_vein"],
            _TEXTURE["blood"],
            liver=True,
            within="liver",
        )
    )
    organs.append(
        _Organ(
            "portal branches",
            *box,
            portal,
            hu["portal_vein"],
            _TEXTURE["blood"],
            liver=True,
            within="liver",
        )
    )
    return organs


def _spleen(rng, body: _Body, contrast: _Contrast) -> list[_Organ]:
    """A crescent under the left dome, mottled in the arterial phase."""
    hu = contrast.hu
    s = _uniform(rng, (0.8, 1.4))
    r = (35 * s, 55 * s, 55 * s)
    c = (-(body.cavity_a - 0.8 * r[0]), -0.35 * body.cavity_b, body.left_dome - 45 * s)
    c = _jitter(rng, c, 8.0)
    rot = _rot_z(math.radians(_uniform(rng, (-40, -20))))
    hollow = (c[0] + 1.5 * r[0], c[1] + 0.6 * r[0], c[2])
    r_hollow = (1.1 * r[0], 1.1 * r[1], 1.3 * r[2])

    def sdf(x, y, z, f):
        d = _smax(_ellipsoid(x, y, z, c, r, rot), -_ellipsoid(x, y, z, hollow, r_hollow), 5.0)
        return _smax(d, body.cavity(x, y, z, f) + 2.0, 5.0)

    tex = _TEXTURE["spleen"] + (((3, 20.0),) if contrast.phase == "arterial" else ())
    return [_Organ("spleen", *_around(c, max(r)), sdf, hu["spleen"], tex)]


def _stomach(rng, body: _Body, hu: dict) -> list[_Organ]:
    """A J-shaped tube under the left dome (fundus to pylorus), usually with a gas cap."""
    ca, cb, z0 = body.cavity_a, body.cavity_b, body.left_dome
    fill = _uniform(rng, (0.6, 1.15))
    pts = [
        _jitter(rng, p, 8.0)
        for p in (
            (-0.45 * ca, -0.05 * cb, z0 - 30),
            (-0.35 * ca, 0.3 * cb, z0 - 75),
            (0.0, 0.5 * cb, z0 - 105),
            (0.15 * ca, 0.4 * cb, z0 - 100),
        )
    ]
    radii = [40 * fill, 35 * fill, 22 * fill, 12.0]
    contents = (hu["fluid"] + _uniform(rng, (0, 30)), _TEXTURE["fluid"] + ((5, 8.0),))
    return _gut("stomach", rng, pts, radii, _uniform(rng, (3, 5)), hu, contents, 0.85, k=12)


@dataclasses.dataclass(frozen=True)
class _Kidney:
    name: str
    centre: tuple[float, float, float]
    radii: tuple[float, float, float]
    rot: np.ndarray
    cortex: float  # thickness, mm


def _draw_kidneys(rng, body: _Body) -> tuple[_Kidney, _Kidney]:
    """Left and right kidney beside the spine, the right one lower; long axes tilted."""
    kidneys = []
    left_z = -100 - _uniform(rng, (0, 20))
    for side, z in ((-1, left_z), (1, left_z - _uniform(rng, (5, 25)))):
        r = tuple(v * _uniform(rng, (0.85, 1.15)) for v in (27.0, 20.0, 57.0))
        c = _jitter(rng, (side * _uniform(rng, (55, 72)), body.spine_y + 8, z), 5.0)
        turn, tilt = math.radians(_uniform(rng, (20, 40))), math.radians(_uniform(rng, (5, 20)))
        medial = (-side * math.cos(turn), math.sin(turn), 0.0)
        rot = _frame((-side * math.sin(tilt), -0.3 * math.sin(tilt), math.cos(tilt)), medial)
        kidneys.append(
            _Kidney("right kidney" if side > 0 else "left kidney", c, r, rot, _uniform(rng, (5, 8)))
        )
    return tuple(kidneys)


def _kidney_organs(kidneys, contrast: _Contrast) -> list[_Organ]:
    """Cortex, medulla and sinus (fat, or excreted contrast) of each kidney."""
    hu = contrast.hu
    organs = []
    for k in kidneys:
        sinus_c = tuple(float(v) for v in np.add(k.centre, 0.6 * k.radii[0] * k.rot[:, 0]))
        sinus_r = (0.5 * k.radii[0], 0.45 * k.radii[1], 0.5 * k.radii[2])

        def shape(x, y, z, f, k=k):
            return _ellipsoid(x, y, z, k.centre, k.radii, k.rot)

        box = _around(k.centre, max(k.radii))
        organs += [
            _Organ(f"{k.name} cortex", *box, shape, hu["kidney_cortex"], _TEXTURE["kidney"]),
            _Organ(
                f"{k.name} medulla",
                *box,
                shape,
                hu["kidney_medulla"],
                _TEXTURE["kidney"],
                offset=k.cortex,
            ),
            _Organ(
                f"{k.name} sinus",
                *box,
                lambda x, y, z, f, c=sinus_c, r=sinus_r, q=k.rot: _ellipsoid(x, y, z, c, r, q),
                contrast.excretion if contrast.excretion else hu["fat"],
                _TEXTURE["fat"],
            ),
        ]
    return organs


def _pancreas(rng, body: _Body, hu: dict) -> list[_Organ]:
    """A tapering tube from the splenic hilum across the aorta to the head."""
    ca, y0 = body.cavity_a, body.spine_y
    pts = [
        _jitter(rng, p, 6.0)
        for p in (
            (-0.55 * ca, y0 + 40, -70),
            (-10, y0 + 62, -80),
            (35, y0 + 60, -100),
            (22, y0 + 45, -115),
        )
    ]
    radii = [_uniform(rng, (7, 10)), _uniform(rng, (9, 12)), _uniform(rng, (12, 16)), 9.0]
    box = _points_box(pts, max(radii))
    return [
        _Organ(
            "pancreas",
            *box,
            lambda x, y, z, f: _chain(x, y, z, pts, radii, 8.0),
            hu["pancreas"],
            _TEXTURE["pancreas"],
        )
    ]


def _colon(rng, body: _Body, hu: dict) -> list[_Organ]:
    """The frame of the abdomen (caecum to rectum): stool, and gas above a level."""
    ca, cb = body.cavity_a, body.cavity_b
    flexure = min(body.liver_bottom + 15, -120.0)
    path = (
        (0.55 * ca, 0.2 * cb, -270),
        (0.6 * ca, 0.05 * cb, flexure),
        (0.25 * ca, 0.55 * cb, flexure - 35),
        (-0.25 * ca, 0.55 * cb, flexure - 25),
        (-0.62 * ca, 0.0, body.left_dome - 100),
        (-0.65 * ca, -0.05 * cb, -250),
        (-0.3 * ca, 0.2 * cb, -330),
        (0.0, -0.45 * cb, -390),
    )
    pts = [_jitter(rng, p, 10.0) for p in path]
    radii = [_uniform(rng, (16, 25)) for _ in pts]
    contents = (hu["stool"], _TEXTURE["stool"])
    return _gut("colon", rng, pts, radii, _uniform(rng, (2, 3)), hu, contents, 0.9)


def _gallbladder(rng, body: _Body, hu: dict) -> list[_Organ]:
    """A tilted ellipsoid of bile under the liver (absent with p = 0.15)."""
    if rng.uniform() >= 0.85:
        return []
    s = body.liver_scale
    c = _jitter(rng, (0.45 * body.cavity_a - 30 * s, 0.25 * body.cavity_b, -105 * s), 8.0)
    r = tuple(v * _uniform(rng, (0.7, 1.3)) for v in (16.0, 38.0, 18.0))
    rot = _rot_x(math.radians(-_uniform(rng, (20, 45))))
    return [
        _Organ(
            "gallbladder",
            *_around(c, max(r)),
            lambda x, y, z, f: _ellipsoid(x, y, z, c, r, rot),
            hu["bile"],
            _TEXTURE["fluid"],
        )
    ]


def _arteries(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Aorta (a z-swept tube, left of the midline) and the iliac arteries below its fork."""
    y0 = body.spine_y
    fork = -_uniform(rng, (230, 280))
    r = _uniform(rng, (9, 13))
    x0 = -_uniform(rng, (8, 18))
    knots, xs, ys = (fork, -50.0, 400.0), (x0, x0 - 2, x0 - 12), (y0 + 35, y0 + 30, y0 + 10)
    radii = (0.85 * r, r, 1.1 * r)

    def aorta(x, y, z, f):
        return np.maximum(_ztube(x, y, z, knots, xs, ys, radii, radii), fork - z)

    ends = [(side * _uniform(rng, (45, 60)), y0 + 20, fork - 130) for side in (-1, 1)]
    start = (x0, y0 + 35, fork + 3)
    ri = _uniform(rng, (5.5, 7.5))

    def iliac(x, y, z, f):
        return np.minimum(
            _capsule(x, y, z, start, ends[0], ri, ri), _capsule(x, y, z, start, ends[1], ri, ri)
        )

    column = ((-60.0, y0 - 20, fork - 10), (60.0, y0 + 60, 420.0))
    return [
        _Organ("aorta", *column, aorta, hu["aorta"], _TEXTURE["blood"]),
        _Organ(
            "iliac arteries",
            *_points_box([start, *ends], ri),
            iliac,
            hu["aorta"],
            _TEXTURE["blood"],
        ),
    ]


def _veins(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Inferior vena cava (flattened, right of the midline, through the liver) and portal vein."""
    y0, s = body.spine_y, body.liver_scale
    vx, vr = _uniform(rng, (18, 28)), _uniform(rng, (0.8, 1.2))
    bottom = body.crest - _uniform(rng, (0, 20))

    def ivc(x, y, z, f):
        d = _ztube(
            x,
            y,
            z,
            (bottom, 20.0),
            (vx, vx + 4),
            (y0 + 28, y0 + 32),
            (13 * vr, 15 * vr),
            (9 * vr, 12 * vr),
        )
        return np.maximum(d, _slab(z, bottom, 20.0))

    hilum = ((0.45 * body.cavity_a - 25 * s), y0 + 70, -65 * s)
    confluence = (5.0, y0 + 55, -95.0)
    rp = _uniform(rng, (6.5, 9))
    return [
        _Organ(
            "ivc",
            (-60.0, y0 - 20, bottom - 5),
            (60.0, y0 + 60, 25.0),
            ivc,
            hu["ivc"],
            _TEXTURE["blood"],
        ),
        _Organ(
            "portal vein",
            *_points_box([hilum, confluence], rp),
            lambda x, y, z, f: _capsule(x, y, z, confluence, hilum, rp, rp),
            hu["portal_vein"],
            _TEXTURE["blood"],
        ),
    ]
