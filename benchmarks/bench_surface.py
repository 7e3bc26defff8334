"""Times LiTS surface distances and full case metrics on a LiTS-size volume.

Builds a synthetic 512x512x500 liver (a lobed ellipsoid, about 2.4 M voxels)
and a prediction that is shifted, resized and differently lobed, with a few
lesions, then times ``surface_distances`` on the liver pair and
``case_metrics`` on the label maps. ``--full`` also times the same distances
without the bounding-box crop (one distance transform of the whole volume
per direction) for comparison; it needs several GB and minutes.

Usage:
  python benchmarks/bench_surface.py [--shape 512 512 500] [--spacing 0.7 0.7 1.0] [--full]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from scipy import ndimage

from liverseg.evaluation.metrics import case_metrics
from liverseg.evaluation.surface import surface_distances


def lobed_ellipsoid(shape, centre, radii, phase):
    """Ellipsoid with a smooth radial modulation, computed inside its box only."""
    mask = np.zeros(shape, dtype=bool)
    lo = [max(int(c - 1.2 * r), 0) for c, r in zip(centre, radii)]
    hi = [min(int(c + 1.2 * r) + 1, n) for c, r, n in zip(centre, radii, shape)]
    x, y, z = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    f = (
        ((x - centre[0]) / radii[0]) ** 2
        + ((y - centre[1]) / radii[1]) ** 2
        + ((z - centre[2]) / radii[2]) ** 2
    )
    f = f + 0.15 * np.sin(x / 9.0 + phase) * np.sin(y / 11.0) * np.sin(z / 7.0 + phase)
    mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = f <= 1.0
    return mask


def make_case(shape):
    sx, sy, sz = shape
    centre = (0.4 * sx, 0.45 * sy, 0.5 * sz)
    radii = (0.2 * sx, 0.17 * sy, 0.15 * sz)
    ref = lobed_ellipsoid(shape, centre, radii, 0.0).astype(np.uint8)
    pred = lobed_ellipsoid(
        shape, tuple(c + 3 for c in centre), tuple(1.03 * r for r in radii), 0.7
    ).astype(np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(6):
        c = np.asarray(centre) + rng.uniform(-0.5, 0.5, 3) * np.asarray(radii)
        r = rng.uniform(4, 12)
        lesion = lobed_ellipsoid(shape, tuple(c), (r, r, r), 0.0)
        ref[lesion & (ref > 0)] = 2
        moved = ndimage.shift(lesion.astype(np.uint8), (1, 1, 0), order=0).astype(bool)
        pred[moved & (pred > 0)] = 2
    return pred, ref


def full_volume_distances(pred, ref, spacing):
    """Reference timing: the same definitions without the bounding-box crop."""
    structure = ndimage.generate_binary_structure(3, 2)
    sp = pred ^ ndimage.binary_erosion(pred, structure)
    sr = ref ^ ndimage.binary_erosion(ref, structure)
    a = ndimage.distance_transform_edt(~sr, sampling=spacing)[sp]
    b = ndimage.distance_transform_edt(~sp, sampling=spacing)[sr]
    d = np.concatenate([a, b])
    return d.mean(), d.max(), np.sqrt((d**2).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 500])
    parser.add_argument("--spacing", type=float, nargs=3, default=[0.7, 0.7, 1.0])
    parser.add_argument("--full", action="store_true", help="also time the uncropped computation")
    args = parser.parse_args()
    shape, spacing = tuple(args.shape), tuple(args.spacing)

    pred, ref = make_case(shape)
    liver_p, liver_r = pred >= 1, ref >= 1
    print(
        f"volume {shape}, spacing {spacing}; liver {liver_r.sum()} ref / {liver_p.sum()} pred voxels"
    )

    t = time.perf_counter()
    d = surface_distances(liver_p, liver_r, spacing)
    t_surface = time.perf_counter() - t
    print(
        f"surface_distances (bounding box): {t_surface:.2f} s  "
        f"assd {d.assd:.4f} msd {d.msd:.4f} rmsd {d.rmsd:.4f}"
    )

    t = time.perf_counter()
    m = case_metrics(pred, ref, spacing)
    t_case = time.perf_counter() - t
    print(
        f"case_metrics (liver + tumour, {m['tumor']['num_reference_lesions']} lesions, "
        f"{m['tumor']['num_detected']} detected): {t_case:.2f} s"
    )

    if args.full:
        t = time.perf_counter()
        full = full_volume_distances(liver_p, liver_r, spacing)
        t_full = time.perf_counter() - t
        print(
            f"uncropped distances: {t_full:.2f} s  assd {full[0]:.4f} msd {full[1]:.4f} "
            f"rmsd {full[2]:.4f}  (speed-up {t_full / t_surface:.1f}x)"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
