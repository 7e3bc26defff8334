"""Forward-pass throughput of DS-SFFNet on CPU against the machine's matmul rate.

Times the tumour net (the liver net has the same cost) at 512x512 and 256x256,
batches 1, 4 and 8, in float32 and in mixed bfloat16, each in a traced
``tf.function`` with dynamic H, W (as inference runs it). Work per forward is
counted from the model's layers (2 x multiply-adds of every conv and
transposed conv at nominal size: 168.2 GFLOP at 512x512) and compared with a
float32 square matmul timed in the same run, interleaved with the forward
passes (one matmul before each timed forward), so that both see the same
machine load; the best matmul rate of the run is the reference. A bfloat16
matmul is timed once for information.

Figures are best-of-``--repeats`` wall times after one warm-up call; on a
shared machine they are indicative.

Usage:
  python benchmarks/bench_forward.py [--sizes=512,256] [--batches=1,4,8] \\
      [--dtypes=float32,bfloat16] [--repeats=3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras
import numpy as np
import tensorflow as tf

from liverseg.models import build_ds_sffnet

POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def forward_gflop(model, height: int, width: int) -> float:
    """Nominal GFLOP of one forward pass of one image (convs and transposed convs)."""
    convs = [
        l
        for l in model.layers
        if isinstance(l, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))
    ]
    probe = keras.Model(model.input, {l.name: [l.input, l.output] for l in convs})
    spec = probe.compute_output_spec(keras.KerasTensor((1, height, width, 3)))
    total = 0
    for layer in convs:
        x, y = spec[layer.name]
        kh, kw = layer.kernel_size
        # A transposed conv does its multiply-adds per input pixel, a conv per output pixel.
        pixels = (
            x.shape[1] * x.shape[2]
            if isinstance(layer, keras.layers.Conv2DTranspose)
            else y.shape[1] * y.shape[2]
        )
        total += 2 * pixels * kh * kw * x.shape[3] * layer.filters
    return total / 1e9


class Matmul:
    """A square matmul whose best rate over all calls is kept."""

    def __init__(self, dtype, n: int = 4096):
        self.n = n
        self.a = tf.cast(tf.random.normal([n, n], dtype=tf.float32), dtype)
        self.fn = tf.function(lambda m: tf.linalg.matmul(m, m))
        self.fn(self.a).numpy()
        self.best = 0.0

    def __call__(self, repeats: int = 1) -> float:
        for _ in range(repeats):
            start = time.perf_counter()
            self.fn(self.a).numpy()
            self.best = max(self.best, 2 * self.n**3 / (time.perf_counter() - start) / 1e9)
        return self.best


def time_forward(fn, batch: np.ndarray, repeats: int, matmul: Matmul) -> float:
    tf.nest.map_structure(lambda t: t.numpy(), fn(batch))  # warm-up (trace, oneDNN primitives)
    best = float("inf")
    for _ in range(repeats):
        matmul()
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(batch))
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="512,256")
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    dtypes = args.dtypes.split(",")

    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"TF {tf.__version__}, Keras {keras.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}"
    )
    matmul = Matmul(tf.float32)
    matmul(repeats=3)

    rng = np.random.default_rng(0)
    rows = []
    previous = keras.config.dtype_policy()
    for dtype in dtypes:
        try:
            keras.config.set_dtype_policy(POLICIES[dtype])
            model = build_ds_sffnet("tumor", seed=0)
        finally:
            keras.config.set_dtype_policy(previous)
        fn = tf.function(
            lambda x, m=model: m(x, training=False),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
        )
        for size in sizes:
            gflop = forward_gflop(model, size, size)
            for batch in batches:
                images = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
                seconds = time_forward(fn, images, args.repeats, matmul)
                rows.append((dtype, size, batch, gflop, seconds))
                print(f"  {dtype} {size}x{size} batch {batch}: {seconds:.3f} s", flush=True)

    reference = matmul(repeats=3)
    bf16_matmul = Matmul(tf.bfloat16)(repeats=3)
    print(
        f"\nfloat32 matmul 4096^2: best {reference:.1f} GFLOP/s (bfloat16 matmul: "
        f"{bf16_matmul:.1f}); load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| dtype | size | batch | GFLOP / image | s / batch | images / s | GFLOP/s "
        "| % of fp32 matmul |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for dtype, size, batch, gflop, seconds in rows:
        rate = gflop * batch / seconds
        print(
            f"| {dtype} | {size} | {batch} | {gflop:.1f} | {seconds:.3f} | "
            f"{batch / seconds:.2f} | {rate:.1f} | {100 * rate / reference:.0f} % |"
        )


if __name__ == "__main__":
    main()
