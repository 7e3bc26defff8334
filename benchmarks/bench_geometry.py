"""In-plane resampling to a model grid and back: time, peak memory, noise.

Forward: an int16 CT of 512x512xZ (default 300) voxels of 0.8 mm, in LPS
storage, brought to an RAS model grid of 3.9 mm pixels (105x105xZ, float32).
Backward: a float32 probability on that model grid brought back to the
512x512xZ storage grid (linear). Every method gives the same exact output
shape and pixel-area-aligned grid:

* ``geometry``: ``liverseg.data.geometry`` (separable weight matrices: linear
  interpolation, after a symmetric triangle low-pass when downsampling; cut
  into bands of 16 output pixels, BLAS matmul in float32 slabs);
* ``dense``: the same, one product with the whole weight matrix per axis;
* ``sparse``: the same weights as scipy.sparse CSR matrices, slab by slab;
* ``zoom``: ``scipy.ndimage.zoom(order=1, grid_mode=True, mode="nearest")``
  per slab (2D zoom, no antialiasing);
* ``zoom_gauss``: ``zoom`` after a Gaussian low-pass (sigma 0.4 x factor);
* ``tf``: ``tf.image.resize`` bilinear in slabs, ``antialias=True``;
* ``labels``: ``liverseg.data.geometry`` with ``order=0`` on uint8 label maps
  of the same shapes (nearest neighbour).

Each method and direction runs in its own process; reported: best of
``--repeats`` wall and CPU (all threads) times, the peak of numpy
allocations above the inputs (tracemalloc; not TensorFlow's own buffers)
and the process's peak resident memory above its level after the inputs
were made. ``noise`` is the standard deviation of
the forward output of pure noise (sigma 20 HU): the noise the network sees.
``max |diff|`` compares each method's outputs to ``geometry``'s.

Usage: python benchmarks/bench_geometry.py [--slices 300] [--repeats 3] [--methods ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from liverseg.data import geometry as geo

METHODS = ("geometry", "dense", "sparse", "zoom", "zoom_gauss", "tf", "labels")
SPACING_IN, SPACING_OUT = 0.8, 3.9


def _inputs(slices: int):
    rng = np.random.default_rng(0)
    x, y = np.ogrid[:512, :512]
    body = ((x - 256) / 230.0) ** 2 + ((y - 256) / 180.0) ** 2 <= 1
    plane = np.where(body, 40, -1000).astype(np.int16)
    ct = np.empty((512, 512, slices), np.int16, order="F")
    for z in range(slices):
        ct[:, :, z] = plane + rng.normal(0, 20, (512, 512)).astype(np.int16)
    affine = np.diag([-SPACING_IN, -SPACING_IN, 2.0, 1.0])  # LPS storage
    grid = geo.GridTransform.for_volume(
        affine,
        ct.shape,
        (SPACING_IN, SPACING_IN, 2.0),
        geo.Geometry("RAS", (SPACING_OUT, SPACING_OUT)),
    )
    prob = np.asfortranarray(rng.random(grid.model_shape, dtype=np.float32))
    return ct, prob, grid


def _slabs(n: int, step: int):
    for z0 in range(0, n, step):
        yield slice(z0, min(z0 + step, n))


def _per_slab(src: np.ndarray, shape: tuple, resize_slab) -> np.ndarray:
    """Helper of the alternatives: ``resize_slab((k, x, y) float32) -> (k, X, Y)``."""
    out = np.empty(shape, np.float32, order="F")
    for sl in _slabs(src.shape[2], geo._slab_length(src.shape, shape)):
        slab = np.ascontiguousarray(src[:, :, sl].transpose(2, 0, 1), dtype=np.float32)
        out[:, :, sl] = resize_slab(slab).transpose(1, 2, 0)
    return out


def _sparse(src, shape):
    from scipy import sparse

    w0 = sparse.csr_matrix(geo.linear_weights(src.shape[0], shape[0]))
    w1t = sparse.csr_matrix(geo.linear_weights(src.shape[1], shape[1]).T).T

    def resize(slab):
        k, n0, n1 = slab.shape
        a = (w1t @ slab.reshape(k * n0, n1).T).T.reshape(k, n0, shape[1])
        a = np.ascontiguousarray(a.transpose(1, 0, 2)).reshape(n0, k * shape[1])
        return np.asarray(w0 @ a, np.float32).reshape(shape[0], k, shape[1]).transpose(1, 0, 2)

    return _per_slab(src, shape, resize)


def _zoom(src, shape, gauss: bool):
    from scipy import ndimage

    factors = [m / n for m, n in zip(shape[:2], src.shape[:2])]

    def resize(slab):
        if gauss:
            sigma = [0.0] + [0.4 / f if f < 1 else 0.0 for f in factors]
            slab = ndimage.gaussian_filter(slab, sigma, mode="nearest")
        return ndimage.zoom(slab, [1.0] + factors, order=1, grid_mode=True, mode="nearest")

    return _per_slab(src, shape, resize)


def _tf(src, shape):
    import tensorflow as tf

    def resize(slab):
        return tf.image.resize(slab[..., None], shape[:2], antialias=True).numpy()[..., 0]

    return _per_slab(src, shape, resize)


def _runner(method: str):
    """``(forward(ct, grid), backward(prob, grid))`` of one method."""
    if method == "dense":
        geo._BLOCK_ROWS = 1 << 30
    if method in ("geometry", "dense", "labels"):
        order = 0 if method == "labels" else 1
        return (lambda ct, g: g.forward(ct, order)), (lambda p, g: g.backward(p, order))
    alt = {
        "sparse": _sparse,
        "zoom": lambda s, t: _zoom(s, t, False),
        "zoom_gauss": lambda s, t: _zoom(s, t, True),
        "tf": _tf,
    }[method]
    return (
        lambda ct, g: alt(geo.ornt_lib.apply_orientation(ct, g.transform), g.model_shape),
        lambda p, g: geo.ornt_lib.apply_orientation(
            alt(p, g.reoriented_shape),
            geo.ornt_lib.ornt_transform(
                geo.ornt_lib.axcodes2ornt("RAS"), geo.ornt_lib.axcodes2ornt("LPS")
            ),
        ),
    )


def _measure(fn, repeats: int):
    """(result, best wall s, best CPU s, peak numpy MiB, peak RSS growth MiB) of ``fn()``."""
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, cpu = [], []
    for _ in range(repeats + 1):  # the first run warms up (TensorFlow tracing)
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        del out
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return out, min(times[1:]), min(cpu[1:]), peak, rss


def run_one(method: str, direction: str, slices: int, repeats: int, out_dir: Path) -> dict:
    """One method and direction, in this process (run it in a fresh one)."""
    ct, prob, grid = _inputs(slices)
    if method == "labels":
        ct, prob = np.asfortranarray(ct > 0, np.uint8), np.asfortranarray(prob > 0.5, np.uint8)
    fwd, bwd = _runner(method)
    if method == "tf":
        import tensorflow  # noqa: F401 - imported before the memory baseline
    result = {}
    if direction == "forward":
        out, *figures = _measure(lambda: fwd(ct, grid), repeats)
        noise = np.random.default_rng(1).normal(0, 20, (512, 512, 8)).astype(np.float32)
        small = geo.GridTransform.for_volume(
            grid.input_affine, noise.shape, grid.input_spacing, grid.target
        )
        if method != "labels":
            result["noise_sd"] = float(np.std(fwd(noise, small)))
    else:
        out, *figures = _measure(lambda: bwd(prob, grid), repeats)
    result.update(zip(("s", "cpu_s", "numpy_mib", "rss_mib"), figures))
    result["shape"] = list(out.shape)
    np.save(out_dir / f"{method}_{direction}.npy", np.asarray(out[:, :, :4]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(*args.one, args.slices, args.repeats, Path(args.out))))
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for method in args.methods:
            row = {"method": method}
            for direction in ("forward", "backward"):
                cmd = [
                    sys.executable,
                    __file__,
                    "--one",
                    method,
                    direction,
                    "--slices",
                    str(args.slices),
                    "--repeats",
                    str(args.repeats),
                    "--out",
                    tmp,
                ]
                env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                row[direction] = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append(row)
        _report(rows, Path(tmp), args.slices)


def _report(rows: list[dict], tmp: Path, slices: int) -> None:
    print(
        f"512x512x{slices} int16 at {SPACING_IN} mm (LPS) -> RAS {SPACING_OUT} mm "
        f"{rows[0]['forward']['shape']}; back to {rows[0]['backward']['shape']} (float32)"
    )
    print(
        f"{'method':<11} {'fwd s':>6} {'CPU s':>6} {'np MiB':>7} {'RSS MiB':>7} {'bwd s':>6} "
        f"{'CPU s':>6} {'np MiB':>7} {'RSS MiB':>7} {'noise':>6} {'max|diff| fwd/bwd':>18}"
    )
    have_ref = any(r["method"] == "geometry" for r in rows)
    for r in rows:
        diff = (
            "/".join(_max_diff(tmp, r["method"], d) for d in ("forward", "backward"))
            if have_ref and r["method"] != "labels"
            else "-"
        )
        f, b = r["forward"], r["backward"]
        noise = f"{f['noise_sd']:6.2f}" if "noise_sd" in f else f"{'-':>6}"
        print(
            f"{r['method']:<11} {f['s']:6.2f} {f['cpu_s']:6.2f} {f['numpy_mib']:7.0f} "
            f"{f['rss_mib']:7.0f} {b['s']:6.2f} {b['cpu_s']:6.2f} {b['numpy_mib']:7.0f} "
            f"{b['rss_mib']:7.0f} {noise} "
            f"{diff:>18}"
        )


def _max_diff(tmp: Path, method: str, direction: str) -> str:
    ref = np.load(tmp / f"geometry_{direction}.npy")
    return f"{np.max(np.abs(np.load(tmp / f'{method}_{direction}.npy') - ref)):.2g}"


if __name__ == "__main__":
    main()
