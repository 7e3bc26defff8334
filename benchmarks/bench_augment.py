"""Cost of on-the-fly augmentation: is the model still busy >= 95 % of a training step?

Usage:
  python benchmarks/bench_augment.py                       # default and "every" options
  python benchmarks/bench_augment.py --steps=10 --rounds=2 --options=default

Times the real TrainStep (fast recipe, liver DS-SFFNet, float32) at batch 4 on
96x96 patches fed (a) by the augmented tf.data pipeline (random 96x96 patches
of LiTS-size 512x512 examples, augmented in the pipeline's parallel map) and
(b) by one pre-computed batch repeated (no input work). Rounds alternate (a)
and (b) so that load from other processes hits both alike. "model busy" =
time of (b) / time of (a) from the summed times, in wall time and in this
process's CPU time: on a shared machine other processes' load makes the wall
ratio noisy, while the CPU ratio counts only the work the input pipeline adds
(which, with the model using every core, is what it costs in wall time).
Then the pipeline alone (no model): augmented examples/s and process CPU
milliseconds per example, and from it the estimate "model busy" = step CPU /
(step CPU + the pipeline's CPU per batch), which other load barely moves.

Options: "default" = AugmentOptions() (nnU-Net-like probabilities), "every" =
every transform at probability 1, elastic deformation included (worst case).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from liverseg.data import pipeline
from liverseg.data.augment import AugmentOptions
from liverseg.data.examples import VolumeRecord
from liverseg.models import build_ds_sffnet
from liverseg.training.optimizers import make_optimizer
from liverseg.training.recipes import get_recipe
from liverseg.training.step import TrainStep


def _every() -> AugmentOptions:
    return dataclasses.replace(
        AugmentOptions(),
        **{
            f.name: 1.0
            for f in dataclasses.fields(AugmentOptions)
            if f.name.endswith("_probability") and f.name != "mirror_probability"
        },
    )


OPTIONS = {"default": AugmentOptions, "every": _every}


def _examples(size: int, n_slices: int = 12):
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 1000, (size, size, n_slices)).astype(np.int16)
    labels = np.zeros_like(hu, dtype=np.uint8)
    labels[size // 4 : size // 2, size // 4 : 3 * size // 4, 1:-1] = 1
    return pipeline.examples_from_records([VolumeRecord("0", hu, labels)], "liver")


def _time_steps(step, iterator, n: int, lr: float) -> tuple[float, float]:
    """(wall, process CPU) seconds of ``n`` updates."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        step(iterator, "strong", lr)
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(name: str, args) -> dict:
    recipe = get_recipe("fast")
    patch = (args.patch, args.patch)
    opts = pipeline.PipelineOptions(
        batch_size=args.batch, seed=0, augment=OPTIONS[name](), patch_size=patch
    )
    ds = pipeline.dataset_from_examples(_examples(args.source_size), opts)
    model = build_ds_sffnet("liver", seed=0)
    step = TrainStep(
        model,
        make_optimizer(recipe, model.trainable_variables),
        recipe,
        "liver",
        tf.distribute.get_strategy(),
    )
    lr = recipe.learning_rate
    fed_it = iter(ds)
    fixed_it = iter(tf.data.Dataset.from_tensors(next(iter(ds))).repeat())
    step(fed_it, "strong", lr)  # trace + warm-up of both feeds
    step(fixed_it, "strong", lr)
    fed, fixed = [], []
    for r in range(args.rounds):
        order = (
            ((fed, fed_it), (fixed, fixed_it)) if r % 2 == 0 else ((fixed, fixed_it), (fed, fed_it))
        )
        for times, it in order:
            times.append(_time_steps(step, it, args.steps, lr))
    n = args.steps * args.rounds
    fed_wall, fed_cpu = (sum(t[i] for t in fed) for i in (0, 1))
    fixed_wall, fixed_cpu = (sum(t[i] for t in fixed) for i in (0, 1))

    # The pipeline alone.
    it = iter(ds)
    next(it)
    batches = args.pipeline_batches
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(it)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    examples = batches * args.batch
    pipeline_cpu_per_batch = cpu / batches
    step_cpu = fixed_cpu / n
    return {
        "options": name,
        "batch": args.batch,
        "patch": args.patch,
        "source_size": args.source_size,
        "fed_updates_per_s": round(n / fed_wall, 3),
        "fixed_batch_updates_per_s": round(n / fixed_wall, 3),
        "model_busy_wall": round(fixed_wall / fed_wall, 3),
        "median_round_busy_wall": round(
            float(np.median([b[0] / a[0] for a, b in zip(fed, fixed)])), 3
        ),
        "fed_cpu_s_per_update": round(fed_cpu / n, 3),
        "fixed_batch_cpu_s_per_update": round(fixed_cpu / n, 3),
        "model_busy_cpu": round(fixed_cpu / fed_cpu, 3),
        "augment_examples_per_s": round(examples / wall, 1),
        "augment_cpu_ms_per_example": round(1e3 * cpu / examples, 2),
        "model_busy_estimate": round(step_cpu / (step_cpu + pipeline_cpu_per_batch), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--options", default="default,every")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--source_size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2, help="updates per round and feed")
    parser.add_argument("--rounds", type=int, default=24)
    parser.add_argument("--pipeline_batches", type=int, default=400)
    parser.add_argument("--output", default=None, help="optional JSON output")
    args = parser.parse_args()
    results = []
    for name in args.options.split(","):
        r = bench(name, args)
        print(json.dumps(r), flush=True)
        results.append(r)
    info = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "tf": tf.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average": os.getloadavg(),
        "results": results,
    }
    print(json.dumps({k: v for k, v in info.items() if k != "results"}), flush=True)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
