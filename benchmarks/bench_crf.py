"""Whole-volume vs bounding-box (ROI) 3D dense CRF: time, peak memory, agreement.

Builds a CT-like phantom of 512x512xZ voxels (air, body wall with fat, soft
tissue, spine, a lobed liver at 60 HU against 40 HU soft tissue, noise
15 HU), windows it to [-150, 250] HU and scales it to [0, 255] as the
pipeline does, and makes a network-like liver probability (a sigmoid of the
signed distance to a slightly perturbed liver, with smooth noise). Each mode
runs in its own subprocess so its peak resident memory can be read.

``--slabs`` instead compares the ROI CRF done in one piece with the same CRF
cut into overlapping z slabs (``max_voxels``; ``liverseg.postprocess.crf.
z_slabs``) on a LiTS-like phantom from ``liverseg.phantoms.training`` (512x512xZ,
int16 HU, windowed and scaled as the cascade does) with a network-like liver
probability: a sigmoid of 2 x the signed distance to the true liver with
its boundary moved by smooth noise (sd 2 voxels), plus smooth logit noise,
plus an uncertain spleen (p 0.05-0.45). Each run is a fresh process (time,
peak memory); reported: Dice of the slabbed labels to the unslabbed ones and
to the truth, and pydensecrf's bytes per voxel.

Usage:
  python benchmarks/bench_crf.py [--slices 32] [--margins 0 10 20]
  python benchmarks/bench_crf.py --slabs [--slices 200] [--max_voxels 1500000 ...] \
      [--overlaps 0 3 7]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage, special

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liverseg.postprocess.crf import crf_roi, dense_crf_3d, dense_crf_3d_roi


def lobed_ellipsoid(shape, centre, radii, phase):
    x, y, z = np.ogrid[: shape[0], : shape[1], : shape[2]]
    f = sum(((a - c) / r) ** 2 for a, c, r in zip((x, y, z), centre, radii))
    f = f + 0.15 * np.sin(x / 9.0 + phase) * np.sin(y / 11.0) * np.sin(z / 5.0 + phase)
    return f <= 1.0


def phantom(slices: int, seed: int = 0):
    """(image 0..255 float32, liver probability float32, true liver mask)."""
    shape = (512, 512, slices)
    rng = np.random.default_rng(seed)
    x, y = np.ogrid[:512, :512]
    body = ((x - 256) / 230.0) ** 2 + ((y - 256) / 180.0) ** 2 <= 1
    inner = ((x - 256) / 215.0) ** 2 + ((y - 256) / 165.0) ** 2 <= 1
    spine = (x - 256) ** 2 + (y - 390) ** 2 <= 22**2
    plane = np.full((512, 512), -1000.0, dtype=np.float32)
    plane[body] = -100.0
    plane[inner] = 40.0
    plane[spine] = 400.0
    hu = np.repeat(plane[:, :, None], slices, axis=2)
    centre, radii = (210.0, 220.0, slices / 2), (100.0, 85.0, 0.42 * slices)
    liver = lobed_ellipsoid(shape, centre, radii, 0.0)
    hu[liver] = 60.0
    hu += rng.normal(0, 15, shape).astype(np.float32)
    image = (np.clip(hu, -150, 250) + 150) * (255.0 / 400.0)

    guess = lobed_ellipsoid(shape, (212.0, 218.0, slices / 2), (102.0, 84.0, 0.42 * slices), 0.4)
    signed = ndimage.distance_transform_edt(~guess) - ndimage.distance_transform_edt(guess)
    noise = ndimage.gaussian_filter(rng.normal(0, 1, shape), 2.0) * 6.0
    prob = special.expit(noise - 2.5 * signed)
    return image.astype(np.float32), prob.astype(np.float32), liver


def dice(a, b):
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark (VmHWM; unlike
    getrusage's ru_maxrss it is not inherited from the parent across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def lits_phantom(slices: int, seed: int = 0):
    """(CRF box image 0..255 float32, box probability float32, box truth, box) of a
    512x512 ``liverseg.phantoms.training`` volume, on the liver ROI the cascade would use."""
    from liverseg.data import preprocess as pp
    from liverseg.phantoms.training import Tissue, make_phantom

    ph = make_phantom((512, 512, slices), seed=seed, index=0, with_tissue=True)
    rng = np.random.default_rng(seed + 1)
    truth = ph.labels >= 1
    big = tuple(
        slice(max(b.start - 40, 0), min(b.stop + 40, n))
        for b, n in zip(crf_roi(truth.astype(np.float32), margin=0), truth.shape)
    )
    t = truth[big]

    def smooth(sigma, sd):
        """Gaussian-filtered white noise rescaled to standard deviation ``sd``."""
        f = ndimage.gaussian_filter(rng.normal(0, 1, t.shape).astype(np.float32), sigma)
        return (f * (sd / f.std())).astype(np.float32)

    def inside_distance(mask):
        return ndimage.distance_transform_edt(mask) - ndimage.distance_transform_edt(~mask)

    guess = inside_distance(t) + smooth(6.0, 2.0) > 0  # boundary moved by ~2 voxels (sd)
    prob = special.expit(2.0 * inside_distance(guess) + smooth(3.0, 1.0)).astype(np.float32)
    spleen = ph.tissue[big] == Tissue.SPLEEN
    prob[spleen] = np.maximum(prob[spleen], 0.05 + 0.4 * special.expit(smooth(4.0, 1.5))[spleen])
    box = crf_roi(prob, margin=10)
    lo, hi = pp.intensity_range(ph.hu)
    full_box = tuple(slice(a.start + b.start, a.start + b.stop) for a, b in zip(big, box))
    image = pp.window_and_scale(ph.hu[full_box], lo, hi)
    return image, np.ascontiguousarray(prob[box]), t[box], full_box


def run_slab_mode(args):
    image = np.load(os.path.join(args.workdir, "image.npy"), allow_pickle=False)
    prob = np.load(os.path.join(args.workdir, "prob.npy"), allow_pickle=False)
    base = peak_rss_mb()
    t = time.perf_counter()
    overlap = args.margin  # spawn()'s number: the slab overlap, -1 for one piece
    out = dense_crf_3d(
        prob,
        image,
        intensity_range=(0.0, 255.0),
        max_voxels=args.max_voxels[0] if overlap >= 0 else None,
        overlap=max(overlap, 0),
    )
    seconds = time.perf_counter() - t
    peak = peak_rss_mb()
    np.save(os.path.join(args.workdir, f"slab{overlap}.npy"), out, allow_pickle=False)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "voxels": prob.size,
                "crf_mb": peak - base,
                "load": os.getloadavg()[0],
            }
        )
    )


def slab_experiment(args):
    from liverseg.postprocess.crf import z_slabs

    t = time.perf_counter()
    image, prob, truth, box = lits_phantom(args.slices)
    print(
        f"phantom 512x512x{args.slices} ({time.perf_counter() - t:.0f} s); CRF box "
        f"{[(b.start, b.stop) for b in box]} = {prob.size} voxels; liver {truth.sum()} voxels; "
        f"threshold Dice {dice(prob > 0.5, truth):.4f}; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "image.npy"), image, allow_pickle=False)
        np.save(os.path.join(tmp, "prob.npy"), prob, allow_pickle=False)
        ref_stats, ref = spawn(tmp, "slab", -1, ["--max_voxels", "0"])
        print(
            f"one piece: {ref_stats['seconds']:.1f} s, +{ref_stats['crf_mb']:.0f} MB "
            f"({ref_stats['crf_mb'] * 2**20 / prob.size:.0f} B/voxel), Dice to truth "
            f"{dice(ref, truth):.4f}, load {ref_stats['load']:.1f}",
            flush=True,
        )
        rows.append(("one piece", 1, ref_stats, 1.0, dice(ref, truth)))
        for max_voxels in args.max_voxels:
            for overlap in args.overlaps:
                stats, out = spawn(tmp, "slab", overlap, ["--max_voxels", str(max_voxels)])
                n = len(z_slabs(prob.shape, max_voxels, overlap))
                name = f"{max_voxels / 1e6:g} M voxels, overlap {overlap}"
                print(
                    f"{name}: {n} slabs, {stats['seconds']:.1f} s, "
                    f"+{stats['crf_mb']:.0f} MB, Dice to one piece {dice(out, ref):.5f} "
                    f"({np.count_nonzero(out != ref)} voxels differ), Dice to truth "
                    f"{dice(out, truth):.4f}, load {stats['load']:.1f}",
                    flush=True,
                )
                rows.append((name, n, stats, dice(out, ref), dice(out, truth)))
    print(
        "\n| CRF | slabs | time | CRF memory | Dice to one piece | Dice to truth |\n"
        "|---|---|---|---|---|---|"
    )
    for name, n, stats, d_ref, d_truth in rows:
        print(
            f"| {name} | {n} | {stats['seconds']:.1f} s | +{stats['crf_mb']:.0f} MB | "
            f"{d_ref:.5f} | {d_truth:.4f} |"
        )


def run_mode(args):
    image = np.load(os.path.join(args.workdir, "image.npy"), allow_pickle=False)
    prob = np.load(os.path.join(args.workdir, "prob.npy"), allow_pickle=False)
    base = peak_rss_mb()
    t = time.perf_counter()
    if args.mode == "whole":
        out = dense_crf_3d(prob, image)
        voxels = prob.size
    else:
        box = crf_roi(prob, margin=args.margin)
        voxels = int(np.prod([s.stop - s.start for s in box]))
        out = dense_crf_3d_roi(prob, image, margin=args.margin)
    seconds = time.perf_counter() - t
    peak = peak_rss_mb()
    np.save(os.path.join(args.workdir, f"{args.mode}{args.margin}.npy"), out, allow_pickle=False)
    print(json.dumps({"seconds": seconds, "voxels": voxels, "crf_mb": peak - base}))


def spawn(workdir, mode, margin=0, extra=()):
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--mode",
            mode,
            "--margin",
            str(margin),
            "--workdir",
            workdir,
            *extra,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    name = f"{mode}{margin}.npy"
    result = np.load(os.path.join(workdir, name), allow_pickle=False).astype(bool)
    return stats, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--margins", type=int, nargs="+", default=[0, 10, 20])
    parser.add_argument(
        "--slabs",
        action="store_true",
        help="slabbed against one-piece ROI CRF on a LiTS-like phantom",
    )
    parser.add_argument("--max_voxels", type=int, nargs="+", default=[1_500_000])
    parser.add_argument("--overlaps", type=int, nargs="+", default=[0, 3, 7])
    parser.add_argument("--mode", choices=["whole", "roi", "slab"], help=argparse.SUPPRESS)
    parser.add_argument("--margin", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode == "slab":
        run_slab_mode(args)
        return
    if args.mode:
        run_mode(args)
        return
    if args.slabs:
        slab_experiment(args)
        return

    image, prob, liver = phantom(args.slices)
    print(
        f"phantom 512x512x{args.slices}; liver {liver.sum()} voxels; "
        f"threshold Dice {dice(prob > 0.5, liver):.4f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "image.npy"), image, allow_pickle=False)
        np.save(os.path.join(tmp, "prob.npy"), prob, allow_pickle=False)
        del image, prob
        whole, whole_out = spawn(tmp, "whole")
        print(
            f"whole volume: {whole['voxels']} voxels, {whole['seconds']:.2f} s, "
            f"CRF memory +{whole['crf_mb']:.0f} MB, Dice to truth {dice(whole_out, liver):.4f}"
        )
        for margin in args.margins:
            roi, roi_out = spawn(tmp, "roi", margin)
            print(
                f"ROI margin {margin}: {roi['voxels']} voxels, {roi['seconds']:.2f} s "
                f"({whole['seconds'] / roi['seconds']:.1f}x faster), CRF memory "
                f"+{roi['crf_mb']:.0f} MB, Dice to whole-volume CRF {dice(roi_out, whole_out):.5f} "
                f"({np.count_nonzero(roi_out != whole_out)} voxels differ), "
                f"Dice to truth {dice(roi_out, liver):.4f}"
            )


if __name__ == "__main__":
    main()
