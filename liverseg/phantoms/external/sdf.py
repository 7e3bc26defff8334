"""Implicit shapes: approximate signed distances in mm, negative inside
(ellipsoids, superellipses, capsules and their chains, z-swept tubes, smooth
unions and intersections), and the rotations that place them."""

from __future__ import annotations

import math

import numpy as np


def _smin(a, b, k: float):
    """Smooth minimum (union) with blend radius ``k`` mm."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.minimum(np.maximum(0.5 + 0.5 * (b - a) / k, 0.0), 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def _smax(a, b, k: float):
    """Smooth maximum (intersection) with blend radius ``k`` mm."""
    return -_smin(-a, -b, k)


def _local(x, y, z, c, rot):
    """Coordinates in a shape's frame (Python floats keep float32 arrays float32)."""
    dx, dy, dz = x - float(c[0]), y - float(c[1]), z - float(c[2])
    if rot is None:
        return dx, dy, dz
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = np.asarray(rot, float).tolist()
    return (
        r00 * dx + r10 * dy + r20 * dz,
        r01 * dx + r11 * dy + r21 * dz,
        r02 * dx + r12 * dy + r22 * dz,
    )


def _ellipsoid(x, y, z, c, r, rot=None):
    """First-order distance to an ellipsoid (centre ``c``, semi-axes ``r``, rotation ``rot``)."""
    u, v, w = _local(x, y, z, c, rot)
    r0, r1, r2 = map(float, r)
    qu, qv, qw = u / r0, v / r1, w / r2
    q = np.sqrt(qu * qu + qv * qv + qw * qw)
    gu, gv, gw = qu / r0, qv / r1, qw / r2
    grad = np.sqrt(gu * gu + gv * gv + gw * gw) / np.maximum(q, 1e-9)
    return (q - 1.0) / np.maximum(grad, 1e-9)


def _superellipse(x, y, a, b: float, p: int):
    """First-order distance to the 2D superellipse |x/a|^p + |y/b|^p = 1 (p = 2 or 3).

    ``a`` may vary along z: the powers of x and y are taken before it is
    broadcast, and the integer exponent avoids slow general powers.
    """
    ax, ay = np.abs(x) + 1e-9, np.abs(y) + 1e-9
    ax1, ay1 = (ax, ay) if p == 2 else (ax * ax, ay * ay)
    inv_a = np.asarray(a, dtype=np.float32) ** -p
    total = ax1 * ax * inv_a + ay1 * ay * float(b) ** -p
    q = np.sqrt(total) if p == 2 else np.cbrt(total)
    grad = (q / total) * np.sqrt((ax1 * inv_a) ** 2 + (ay1 * float(b) ** -p) ** 2)
    return (q - 1.0) / np.maximum(grad, 1e-12)


def _ellipse(x, y, cx, cy, rx, ry):
    """First-order distance to an axis-aligned 2D ellipse (a z-invariant column)."""
    qx, qy = (x - cx) / rx, (y - cy) / ry
    q = np.sqrt(qx * qx + qy * qy)
    grad = np.sqrt((qx / rx) ** 2 + (qy / ry) ** 2) / np.maximum(q, 1e-9)
    return (q - 1.0) / np.maximum(grad, 1e-9)


def _capsule(x, y, z, a, b, ra: float, rb: float):
    """Distance to a segment a-b swept by a radius going from ``ra`` to ``rb``."""
    a0, a1, a2 = map(float, a)
    e0, e1, e2 = (float(v) - w for v, w in zip(b, (a0, a1, a2)))
    dx, dy, dz = x - a0, y - a1, z - a2
    t = (dx * e0 + dy * e1 + dz * e2) / (e0 * e0 + e1 * e1 + e2 * e2)
    t = np.minimum(np.maximum(t, 0.0), 1.0)
    dx, dy, dz = dx - t * e0, dy - t * e1, dz - t * e2
    return np.sqrt(dx * dx + dy * dy + dz * dz) - (ra + t * (rb - ra))


def _chain(x, y, z, points, radii, k: float = 0.0):
    """Union of capsules through consecutive ``points`` (a swept tube)."""
    d = None
    for i in range(len(points) - 1):
        di = _capsule(x, y, z, points[i], points[i + 1], radii[i], radii[i + 1])
        d = di if d is None else _smin(d, di, k)
    return d


def _ztube(x, y, z, knots_z, xs, ys, rx, ry):
    """A tube swept along z: centre and radii interpolated between knots (z increasing)."""
    cx, cy = np.interp(z, knots_z, xs), np.interp(z, knots_z, ys)
    return _ellipse(x, y, cx, cy, np.interp(z, knots_z, rx), np.interp(z, knots_z, ry))


def _slab(z, lo: float, hi: float):
    return np.maximum(lo - z, z - hi)


def _frame(axis_w, axis_u) -> np.ndarray:
    """Rotation whose columns are (u, v, w): w along ``axis_w``, u close to ``axis_u``."""
    w = np.asarray(axis_w, float) / np.linalg.norm(axis_w)
    u = np.asarray(axis_u, float) - (np.dot(axis_u, w)) * w
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(w, u), w], axis=1)


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _union(distances):
    return np.minimum.reduce(np.broadcast_arrays(*distances))
