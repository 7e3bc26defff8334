"""One training update: loss, gradient accumulation, factors, optimiser.

An update consumes ``iter_mean_grad`` batches. Each replica computes the
gradient of its share of the loss; gradients are summed across replicas at
every micro-batch (so one update on N replicas equals the single-device
update on the same global batch), accumulated, averaged over the
micro-batches, multiplied by the per-variable factors and applied. With one
micro-batch per update the gradient is applied as it is (no accumulator).
Which variables an update applies depends on the supervision mode and the
recipe's ``variable_selection`` (``variable_selection.py``).

Total loss = sum over outputs of the class-balanced loss, plus the recipe's
soft Dice term where it has one (``main`` + ``dsn_weight`` x sum of the four
side outputs) + weight decay
(``factor * decay * sum(w^2) / 2`` over every conv and transposed-conv kernel).
"""

from __future__ import annotations

import tensorflow as tf

from liverseg import losses
from liverseg.training import variable_selection
from liverseg.training.optimizers import Optimizer
from liverseg.training.recipes import (
    DSN_WEIGHT,
    Recipe,
    class_weights,
    dice_weight,
    gradient_factor,
)

SIDE_OUTPUTS = ("dsn_2", "dsn_3", "dsn_4", "dsn_5")
METRIC_NAMES = (
    "loss_total",
    "loss_fuse",
    "loss_dsn_2",
    "loss_dsn_3",
    "loss_dsn_4",
    "loss_dsn_5",
    "loss_decay",
    "dice_intersection",
    "dice_sum",
)


def decay_kernels(model) -> list:
    """Every conv and transposed-conv kernel (trainable or not), as the original."""
    return [v for v in model.weights if v.path.endswith("kernel")]


class TrainStep:
    """Builds the compiled update for a model, recipe and stage."""

    def __init__(
        self,
        model,
        optimizer: Optimizer,
        recipe: Recipe,
        stage: str,
        strategy: tf.distribute.Strategy,
        selection: str | None = None,
    ):
        self.model = model
        self.optimizer = optimizer
        self.recipe = recipe
        self.stage = stage
        self.strategy = strategy
        self.pos_weight, self.neg_weight = class_weights(recipe, stage)
        self.decay = recipe.weight_decay * recipe.weight_decay_factor[stage]
        self.dice_weight = dice_weight(recipe, stage)
        self.variables = optimizer.variables
        self.factors = [
            gradient_factor(v.path) if recipe.gradient_factors else 1.0 for v in self.variables
        ]
        self.kernels = decay_kernels(model)
        self.selection = selection or recipe.variable_selection
        self._creation_order = variable_selection.creation_order(model)
        with strategy.scope():
            mean = tf.VariableAggregation.MEAN
            # One micro-batch per update (the fast recipe) applies its gradient directly.
            self.accumulators = (
                [
                    tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False, aggregation=mean)
                    for v in self.variables
                ]
                if recipe.iter_mean_grad > 1
                else []
            )
            self.metrics = {
                n: tf.Variable(0.0, trainable=False, aggregation=mean) for n in METRIC_NAMES
            }
        self._update = tf.function(self._update_fn, reduce_retracing=True)

    # ---- replica functions -------------------------------------------------
    def _loss(self, batch, dsn_weight, normaliser):
        """(differentiable data loss, decay, per-output loss values, outputs):
        ``losses.deep_supervision_loss`` over the global batch, plus decay."""
        outputs = self.model(batch["image"], training=True)
        logits = {name: tf.cast(outputs[name], tf.float32) for name in ("fuse",) + SIDE_OUTPUTS}
        data_loss, per_output = losses.deep_supervision_loss(
            batch["label"],
            logits,
            dsn_weight,
            self.pos_weight,
            self.neg_weight,
            batch["mask"],
            normaliser=normaliser,
            dice_weight=self.dice_weight,
            replica_context=tf.distribute.get_replica_context(),
        )
        decay = tf.constant(0.0)
        if self.decay:
            decay = self.decay * 0.5 * tf.add_n([tf.reduce_sum(tf.square(k)) for k in self.kernels])
        return data_loss, decay, per_output, outputs

    def _gradients(self, batch, dsn_weight) -> list:
        """Gradients of one micro-batch summed over replicas; adds its metrics."""
        ctx = tf.distribute.get_replica_context()
        mask_sum = tf.reduce_sum(batch["mask"])
        if self.recipe.loss_reduction == "mean":
            normaliser = tf.maximum(ctx.all_reduce(tf.distribute.ReduceOp.SUM, mask_sum), 1.0)
        else:
            normaliser = tf.constant(1.0)
        n_rep = tf.cast(ctx.num_replicas_in_sync, tf.float32)
        with tf.GradientTape() as tape:
            data_loss, decay, per_output, outputs = self._loss(batch, dsn_weight, normaliser)
            # Decay is computed on every replica; share it so the sum counts it once.
            total = data_loss + decay / n_rep
        grads = tape.gradient(total, self.variables)
        grads = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for g, v in zip(grads, self.variables)
        ]
        grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        prob = tf.sigmoid(tf.cast(outputs["fuse"], tf.float32))
        pred = tf.cast(prob > 0.5, tf.float32) * tf.cast(batch["mask"] > 0, tf.float32)
        label = batch["label"] * tf.cast(batch["mask"] > 0, tf.float32)
        values = {
            "loss_total": per_output["fuse"]
            + dsn_weight * tf.add_n([per_output[n] for n in SIDE_OUTPUTS]),
            "loss_fuse": per_output["fuse"],
            **{f"loss_{n}": per_output[n] for n in SIDE_OUTPUTS},
            "dice_intersection": tf.reduce_sum(pred * label),
            "dice_sum": tf.reduce_sum(pred) + tf.reduce_sum(label),
        }
        values = ctx.all_reduce(tf.distribute.ReduceOp.SUM, values)
        values["loss_total"] += decay
        values["loss_decay"] = decay
        for name, value in values.items():
            self.metrics[name].assign_add(value)
        return grads

    def _accumulate(self, batch, dsn_weight):
        for acc, g in zip(self.accumulators, self._gradients(batch, dsn_weight)):
            acc.assign_add(g)

    def _scaled(self, grads, k: float) -> list:
        return [g if f == 1.0 and k == 1.0 else g / k * f for g, f in zip(grads, self.factors)]

    def _apply(self, learning_rate, applied):
        self.optimizer.apply(
            self._scaled(self.accumulators, float(self.recipe.iter_mean_grad)),
            learning_rate,
            applied,
        )
        for acc in self.accumulators:
            acc.assign(tf.zeros_like(acc))

    def _update_once(self, batch, dsn_weight, learning_rate, applied):
        self.optimizer.apply(
            self._scaled(self._gradients(batch, dsn_weight), 1.0), learning_rate, applied
        )

    def applied(self, supervision: str) -> tuple[bool, ...] | None:
        """One flag per optimiser variable: does an update under ``supervision``
        move it? ``None`` when every variable moves."""
        moved = variable_selection.applied_paths(
            self._creation_order, DSN_WEIGHT[supervision], self.decay, self.selection
        )
        flags = tuple(v.path in moved for v in self.variables)
        return None if all(flags) else flags

    # ---- compiled update ---------------------------------------------------
    def _update_fn(self, iterator, dsn_weight, learning_rate, applied):
        for m in self.metrics.values():
            m.assign(0.0)
        if self.recipe.iter_mean_grad == 1:
            self.strategy.run(
                self._update_once, args=(next(iterator), dsn_weight, learning_rate, applied)
            )
        else:
            for _ in tf.range(self.recipe.iter_mean_grad):
                batch = next(iterator)
                self.strategy.run(self._accumulate, args=(batch, dsn_weight))
            self.strategy.run(self._apply, args=(learning_rate, applied))
        k = float(self.recipe.iter_mean_grad)
        return {
            n: m.read_value() / (1.0 if n.startswith("dice") else k)
            for n, m in self.metrics.items()
        }

    def __call__(self, iterator, supervision: str, learning_rate: float) -> dict:
        """One update under ``supervision`` ("strong", "weak" or "none"); one
        trace per distinct set of moved variables."""
        out = self._update(
            iterator,
            tf.constant(DSN_WEIGHT[supervision], tf.float32),
            tf.constant(learning_rate, tf.float32),
            self.applied(supervision),
        )
        result = {n: float(v) for n, v in out.items()}
        result["dice"] = (
            2.0 * result["dice_intersection"] / result["dice_sum"]
            if result["dice_sum"] > 0
            else 1.0
        )
        return result
