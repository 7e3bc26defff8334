"""Whole-volume vs bounding-box (ROI) 3D dense CRF: time, peak memory, agreement.

Builds a CT-like phantom of 512x512xZ voxels (air, body wall with fat, soft
tissue, spine, a lobed liver at 60 HU against 40 HU soft tissue, noise
15 HU), windows it to [-150, 250] HU and scales it to [0, 255] as the
pipeline does, and makes a network-like liver probability (a sigmoid of the
signed distance to a slightly perturbed liver, with smooth noise). Each mode
runs in its own subprocess so its peak resident memory can be read.

Usage:
  python benchmarks/bench_crf.py [--slices 32] [--margins 0 10 20]
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

from liverseg.postprocess.crf import crf_roi, dense_crf_3d, dense_crf_3d_roi


def lobed_ellipsoid(shape, centre, radii, phase):
    x, y, z = np.ogrid[:shape[0], :shape[1], :shape[2]]
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
    spine = (x - 256) ** 2 + (y - 390) ** 2 <= 22 ** 2
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
    signed = (ndimage.distance_transform_edt(~guess) - ndimage.distance_transform_edt(guess))
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


def spawn(workdir, mode, margin=0):
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, __file__, "--mode", mode, "--margin", str(margin),
                          "--workdir", workdir], capture_output=True, text=True, env=env, check=True)
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    result = np.load(os.path.join(workdir, f"{mode}{margin}.npy"), allow_pickle=False).astype(bool)
    return stats, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--margins", type=int, nargs="+", default=[0, 10, 20])
    parser.add_argument("--mode", choices=["whole", "roi"], help=argparse.SUPPRESS)
    parser.add_argument("--margin", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        run_mode(args)
        return

    image, prob, liver = phantom(args.slices)
    print(f"phantom 512x512x{args.slices}; liver {liver.sum()} voxels; "
          f"threshold Dice {dice(prob > 0.5, liver):.4f}")
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "image.npy"), image, allow_pickle=False)
        np.save(os.path.join(tmp, "prob.npy"), prob, allow_pickle=False)
        del image, prob
        whole, whole_out = spawn(tmp, "whole")
        print(f"whole volume: {whole['voxels']} voxels, {whole['seconds']:.2f} s, "
              f"CRF memory +{whole['crf_mb']:.0f} MB, Dice to truth {dice(whole_out, liver):.4f}")
        for margin in args.margins:
            roi, roi_out = spawn(tmp, "roi", margin)
            print(f"ROI margin {margin}: {roi['voxels']} voxels, {roi['seconds']:.2f} s "
                  f"({whole['seconds'] / roi['seconds']:.1f}x faster), CRF memory "
                  f"+{roi['crf_mb']:.0f} MB, Dice to whole-volume CRF {dice(roi_out, whole_out):.5f} "
                  f"({np.count_nonzero(roi_out != whole_out)} voxels differ), "
                  f"Dice to truth {dice(roi_out, liver):.4f}")


if __name__ == "__main__":
    main()
