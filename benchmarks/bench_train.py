"""Training throughput: updates/s of both recipes, and the input pipeline against the step.

Usage:
  python benchmarks/bench_train.py                    # 128x128 and 512x512, both recipes
  python benchmarks/bench_train.py --sizes=128 --steps=5

For each size it times (after one warm-up update) a few updates of the real
TrainStep fed by the real tf.data pipeline, then the same updates fed from
one batch already in memory (the model alone), and the pipeline alone
(batches/s). "model busy" = model-only time / pipeline-fed time.
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
from liverseg.data.examples import VolumeRecord
from liverseg.models import build_ds_sffnet
from liverseg.training.optimizers import make_optimizer
from liverseg.training.recipes import get_recipe
from liverseg.training.step import TrainStep


def _examples(size: int, n_slices: int = 12):
    rng = np.random.default_rng(0)
    hu = rng.integers(-1000, 1000, (size, size, n_slices)).astype(np.int16)
    labels = np.zeros_like(hu, dtype=np.uint8)
    labels[size // 4 : size // 2, size // 4 : 3 * size // 4, 1:-1] = 1
    return pipeline.examples_from_records([VolumeRecord("0", hu, labels)], "liver")


def bench(size: int, recipe_name: str, steps: int) -> dict:
    recipe = get_recipe(recipe_name)
    batch = recipe.batch_size if recipe_name == "fast" else 1
    if recipe_name == "original":
        # Each update accumulates iter_mean_grad = 10 batches of 1.
        recipe = dataclasses.replace(recipe, iter_mean_grad=10)
    examples = _examples(size)
    opts = pipeline.PipelineOptions(batch_size=batch, seed=0)
    ds = pipeline.dataset_from_examples(examples, opts)
    model = build_ds_sffnet("liver", seed=0)
    step = TrainStep(
        model,
        make_optimizer(recipe, model.trainable_variables),
        recipe,
        "liver",
        tf.distribute.get_strategy(),
    )
    it = iter(ds)
    step(it, "strong", recipe.learning_rate)  # trace + warm-up
    t = time.perf_counter()
    for _ in range(steps):
        step(it, "strong", recipe.learning_rate)
    fed = (time.perf_counter() - t) / steps

    one = next(iter(ds))
    fixed = iter(tf.data.Dataset.from_tensors(one).repeat())
    step(fixed, "strong", recipe.learning_rate)
    t = time.perf_counter()
    for _ in range(steps):
        step(fixed, "strong", recipe.learning_rate)
    model_only = (time.perf_counter() - t) / steps

    it2 = iter(ds)
    next(it2)
    n_batches = steps * recipe.iter_mean_grad * 4
    t = time.perf_counter()
    for _ in range(n_batches):
        next(it2)
    pipe = (time.perf_counter() - t) / n_batches
    examples_per_update = batch * recipe.iter_mean_grad
    flops = 3 * 168.2e9 * (size * size) / (512 * 512) * examples_per_update
    return {
        "size": size,
        "recipe": recipe_name,
        "batch": batch,
        "iter_mean_grad": recipe.iter_mean_grad,
        "updates_per_s": round(1 / fed, 4),
        "examples_per_s": round(examples_per_update / fed, 2),
        "model_only_updates_per_s": round(1 / model_only, 4),
        "model_busy_fraction": round(model_only / fed, 3),
        "pipeline_batches_per_s": round(1 / pipe, 1),
        "approx_train_gflop_per_s": round(flops / fed / 1e9, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,512")
    parser.add_argument("--recipes", default="fast,original")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--output", default=None, help="optional JSON output")
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        for name in args.recipes.split(","):
            r = bench(size, name, args.steps)
            print(json.dumps(r), flush=True)
            results.append(r)
    info = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "tf": tf.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "results": results,
    }
    if args.output:
        with open(args.output, "w") as f:
            json.dump(info, f, indent=2)


if __name__ == "__main__":
    main()
