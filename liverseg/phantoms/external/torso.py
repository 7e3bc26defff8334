"""The torso around the abdomen: table, body wall and visceral fat, diaphragm,
lungs and heart, back and psoas muscles, spine, ribs, and the pelvis."""

from __future__ import annotations

import math

import numpy as np

from liverseg.phantoms.external.body import _Body
from liverseg.phantoms.external.contrast import _TEXTURE
from liverseg.phantoms.external.draws import _uniform
from liverseg.phantoms.external.layers import _INF, _around, _Organ
from liverseg.phantoms.external.sdf import (
    _capsule,
    _ellipse,
    _ellipsoid,
    _rot_x,
    _rot_z,
    _smax,
    _ztube,
)


def _wall_organs(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Table, skin/fat, muscle wall and visceral fat."""
    organs = []
    if rng.uniform() < 0.7:
        top = -body.half_depth - _uniform(rng, (0, 12))
        bend = 1.0 / (2 * _uniform(rng, (500, 900)))
        half = body.half_width + 60

        shell = _uniform(rng, (3, 7))

        def table(x, y, z, f):
            centre = top - 22 + bend * x * x
            return np.maximum(np.abs(y - centre) - 22, np.abs(x) - half)

        box = ((-half - 5, top - 60, -_INF), (half + 5, top + 5 + bend * half**2, _INF))
        organs.append(_Organ("table shell", *box, table, hu["table_shell"]))
        organs.append(_Organ("table core", *box, table, hu["table_core"], offset=shell))
    a, b = body.width_at(-400.0) + 2 * body.wobble + 5, body.half_depth + 2 * body.wobble + 5
    box = ((-a, -b, -_INF), (a, b, _INF))
    organs += [
        _Organ("subcutaneous fat", *box, body.outline, hu["fat"], _TEXTURE["fat"]),
        _Organ(
            "muscle wall", *box, body.outline, hu["muscle"], _TEXTURE["muscle"], offset=body.fat
        ),
        _Organ(
            "visceral fat",
            *box,
            body.outline,
            hu["fat"] + _uniform(rng, (-5, 10)),
            _TEXTURE["fat"],
            offset=body.fat + body.muscle,
        ),
    ]
    return organs


def _thorax(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Diaphragm, lungs and heart: laid after the abdominal organs, so they carve their tops."""
    a, b = body.width_at(-400.0) + 2 * body.wobble + 5, body.half_depth + 2 * body.wobble + 5
    drop = (body.cavity_a + body.dome_x) ** 2 / (2 * body.dome_rx) + (
        body.cavity_b + body.dome_y
    ) ** 2 / (2 * body.dome_ry_back)
    top = ((-a, -b, body.left_dome - drop - 10), (a, b, _INF))

    def thorax(x, y, z, f):
        return _smax(body.cavity(x, y, z, f), body.dome(x, y) - z, 3.0)

    organs = [
        _Organ("diaphragm", *top, thorax, hu["muscle"], _TEXTURE["muscle"]),
        _Organ(
            "lung", *top, thorax, hu["lung"], _TEXTURE["lung"], offset=_uniform(rng, (3.5, 5.0))
        ),
    ]
    ca, cb = body.cavity_a, body.cavity_b
    c = (-0.2 * ca, 0.25 * cb, body.left_dome + _uniform(rng, (50, 65)))
    r = (0.45 * ca * _uniform(rng, (0.85, 1.1)), 0.42 * cb, _uniform(rng, (55, 70)))
    organs.append(
        _Organ(
            "heart",
            *_around(c, max(r)),
            lambda x, y, z, f: _smax(_ellipsoid(x, y, z, c, r), body.dome(x, y) + 5 - z, 4.0),
            hu["heart"],
            _TEXTURE["blood"],
        )
    )
    return organs


def _muscles(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Paraspinal muscles, and the psoas widening downwards from the kidneys."""
    y0 = body.spine_y
    px, py = _uniform(rng, (28, 36)), _uniform(rng, (40, 50))
    pr = (_uniform(rng, (24, 32)), _uniform(rng, (18, 24)))

    def paraspinal(x, y, z, f):
        return np.minimum(_ellipse(x, y, px, y0 - py, *pr), _ellipse(x, y, -px, y0 - py, *pr))

    grow = _uniform(rng, (0.08, 0.12))
    zk = (-420.0, -300.0, -200.0, -80.0)
    rk = tuple(min(25.0, 4 + grow * (-80 - z)) for z in zk)
    xk = tuple(26 + 0.15 * (-80 - z) for z in zk)

    def psoas(x, y, z, f):
        d = np.minimum(
            _ztube(x, y, z, zk, xk, (y0,) * 4, rk, rk),
            _ztube(x, y, z, zk, tuple(-v for v in xk), (y0,) * 4, rk, rk),
        )
        return np.maximum(d, z + 80)

    return [
        _Organ(
            "paraspinal muscles",
            (-px - pr[0] - 3, y0 - py - pr[1] - 3, -_INF),
            (px + pr[0] + 3, y0 - py + pr[1] + 3, _INF),
            paraspinal,
            hu["muscle"],
            _TEXTURE["muscle"],
        ),
        _Organ(
            "psoas",
            (-110.0, y0 - 30, -430.0),
            (110.0, y0 + 30, -75.0),
            psoas,
            hu["muscle"],
            _TEXTURE["muscle"],
        ),
    ]


def _spine(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Vertebral bodies (cortex, marrow) between discs, arches and canal, down to the sacrum."""
    y0 = body.spine_y
    rx, ry = 22 * _uniform(rng, (0.9, 1.15)), 17 * _uniform(rng, (0.9, 1.15))
    period, disc = _uniform(rng, (28, 36)), _uniform(rng, (5, 9))
    phase = _uniform(rng, (0, period))
    shell = _uniform(rng, (1.5, 2.5))

    end = body.crest - 25  # the lumbosacral junction

    def gaps(z, extra=0.0):
        w = np.mod(z - phase + period / 2, period) - period / 2
        return np.maximum(np.abs(w) - (period - disc) / 2 + extra, end - z)

    def discs(x, y, z, f):
        return np.maximum(_ellipse(x, y, 0.0, y0, rx, ry), end - z)

    def body_col(x, y, z, f):
        return np.maximum(_ellipse(x, y, 0.0, y0, rx, ry), gaps(z))

    def arch(x, y, z, f):
        spinous = _capsule(x, y, 0.0, (0, y0 - ry, 0), (0, y0 - ry - 42, 0), 6.0, 5.0)
        transverse = _capsule(x, y, 0.0, (-34, y0 - ry - 8, 0), (34, y0 - ry - 8, 0), 5.0, 5.0)
        return np.maximum(np.minimum(spinous, transverse), gaps(z, 4.0))

    def canal(x, y, z, f):
        return np.maximum(_ellipse(x, y, 0.0, y0 - ry - 10, 9.0, 8.0), end - z)

    col = ((-rx - 4, y0 - ry - 4, end - 5), (rx + 4, y0 + ry + 4, _INF))
    back = ((-45.0, y0 - ry - 55, end - 5), (45.0, y0 - ry + 2, _INF))
    return [
        _Organ("discs", *col, discs, hu["disc"]),
        _Organ("vertebral cortex", *col, body_col, hu["cortical"], _TEXTURE["bone"]),
        _Organ(
            "vertebral marrow",
            *col,
            lambda x, y, z, f: body_col(x, y, z, f) + shell,
            hu["cancellous"],
            _TEXTURE["bone"],
        ),
        _Organ("vertebral arches", *back, arch, hu["cortical"], _TEXTURE["bone"]),
        _Organ("spinal canal", *back, canal, hu["csf"]),
    ]


def _ribs(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Ribs in the muscle wall, sloping down anteriorly, the last two floating; cartilage."""
    period = _uniform(rng, (24, 32))
    lowest = -_uniform(rng, (110, 150))
    count = int(math.ceil((120 - lowest) / period))
    top = lowest + (count - 1) * period
    slope = _uniform(rng, (20, 35))
    rr, rz = _uniform(rng, (3.5, 5)), _uniform(rng, (5, 8))
    depth = body.fat + 0.5 * body.muscle
    reach = np.full(count, 2.6)
    reach[-2:] = (1.6, 1.1)  # floating ribs end laterally
    bone_end = 2.0

    def rib(x, y, z, f, lo, hi):
        u = np.arctan2(np.abs(x), -y)
        n = np.clip(np.rint((top - slope * u - z) / period), 0, count - 1)
        zc = top - n * period - slope * u
        radial = body.outline(x, y, z, f) + depth
        e = np.sqrt((radial / rr) ** 2 + ((z - zc) / rz) ** 2)
        rho = np.sqrt(x * x + y * y)
        end = np.minimum(reach[n.astype(np.int64)], hi)
        return np.maximum((e - 1) * min(rr, rz), np.maximum(rho * (lo - u), rho * (u - end)))

    a, b = body.half_width + 10, body.half_depth + 10
    box = ((-a, -b, lowest - slope * 2.7 - 10), (a, b, top + 10))
    front = ((box[0][0], 0.0, box[0][2]), box[1])  # the cartilage lies where u > 2 rad
    return [
        _Organ(
            "ribs",
            *box,
            lambda x, y, z, f: rib(x, y, z, f, 0.3, bone_end),
            hu["rib"],
            _TEXTURE["bone"],
        ),
        _Organ(
            "costal cartilage",
            *front,
            lambda x, y, z, f: rib(x, y, z, f, bone_end, 9.0),
            hu["cartilage"],
        ),
    ]


def _pelvis(rng, body: _Body, hu: dict) -> list[_Organ]:
    """Bladder, iliac wings and sacrum (cortex and marrow)."""
    ca, cb = body.cavity_a, body.cavity_b
    organs = []
    c = (0.0, 0.3 * cb, -_uniform(rng, (380, 410)))
    r = tuple(v * _uniform(rng, (0.5, 1.3)) for v in (45.0, 35.0, 40.0))
    organs.append(
        _Organ(
            "bladder",
            *_around(c, max(r)),
            lambda x, y, z, f: _ellipsoid(x, y, z, c, r),
            hu["urine"],
            _TEXTURE["fluid"],
        )
    )
    crest = body.crest
    for side in (-1, 1):
        wc = (side * 0.62 * ca, -0.2 * cb, crest - 55)
        wr = (12.0, 55.0, 55.0)
        rot = _rot_z(side * math.radians(_uniform(rng, (25, 40))))
        for name, grow, key in (("cortex", 0.0, "cortical"), ("marrow", 3.0, "cancellous")):
            organs.append(
                _Organ(
                    f"iliac wing {name}",
                    *_around(wc, 60.0),
                    lambda x, y, z, f, c=wc, r=wr, q=rot, g=grow: _ellipsoid(x, y, z, c, r, q) + g,
                    hu[key],
                    _TEXTURE["bone"],
                )
            )
    sc, sr = (0.0, body.spine_y - 5, crest - 70), (45.0, 20.0, 60.0)
    srot = _rot_x(math.radians(_uniform(rng, (20, 35))))
    for name, grow, key in (("cortex", 0.0, "cortical"), ("marrow", 3.0, "cancellous")):
        organs.append(
            _Organ(
                f"sacrum {name}",
                *_around(sc, 60.0),
                lambda x, y, z, f, g=grow: _ellipsoid(x, y, z, sc, sr, srot) + g,
                hu[key],
                _TEXTURE["bone"],
            )
        )
    return organs
