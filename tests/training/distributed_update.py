"""Runs one update of the tiny model under a strategy and saves the weights.

Run as a script (each mode needs a fresh process, since logical devices and
TF_CONFIG must be set before TensorFlow starts):
  python -m tests.training.distributed_update MODE RECIPE OUT.npz
RECIPE is a recipe name, optionally with "+dice" (soft Dice term on).
MODE is "single", "mirrored" (2 logical CPUs) or "worker" (TF_CONFIG set).
"""

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np


def main(mode: str, recipe_name: str, out: str) -> None:
    from liverseg.training import distribute

    strategy = distribute.make_strategy(
        {"single": "none", "mirrored": "mirrored", "worker": "multi_worker"}[mode],
        cpu_devices=2 if mode == "mirrored" else 0,
    )

    import tensorflow as tf

    from liverseg.training.optimizers import make_optimizer
    from liverseg.training.recipes import get_recipe
    from liverseg.training.step import TrainStep
    from tests.training.tiny import tiny_model

    base, _, extra = recipe_name.partition("+")
    recipe = get_recipe(base)
    if extra == "dice":  # the soft Dice term needs global-batch sums across replicas
        recipe = dataclasses.replace(recipe, dice_weight=1.0)
    if recipe.iter_mean_grad > 1:
        recipe = dataclasses.replace(recipe, iter_mean_grad=2)
    global_batch = 4
    rng = np.random.default_rng(5)
    n = global_batch * recipe.iter_mean_grad
    data = {
        "image": rng.uniform(0, 255, (n, 8, 8, 3)).astype(np.float32),
        "label": (rng.uniform(size=(n, 8, 8, 3)) > 0.6).astype(np.float32),
        "mask": (rng.uniform(size=(n, 8, 8, 3)) > 0.3).astype(np.float32),
    }
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices(data)
        # Each global batch is the next 4 examples; pipelines split them.
        per_replica = ctx.get_per_replica_batch_size(global_batch)
        if ctx.num_input_pipelines > 1:
            ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        return ds.batch(per_replica)

    with strategy.scope():
        model = tiny_model(seed=3)
        optimizer = make_optimizer(recipe, model.trainable_variables)
    step = TrainStep(model, optimizer, recipe, "tumor", strategy)
    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    metrics = step(iterator, "strong", 1e-3)
    np.savez(
        out,
        replicas=replicas,
        loss=metrics["loss_total"],
        **{f"w{i}": v.numpy() for i, v in enumerate(model.trainable_variables)},
    )


if __name__ == "__main__":
    main(*sys.argv[1:4])
