"""Optimisers with explicit, checkpointable slot variables.

Written out rather than taken from ``keras.optimizers`` so that the update is
exactly the original's (TF1 ``MomentumOptimizer``: ``a = m*a + g;
w -= lr*a``, which differs from Keras' SGD when the learning rate changes)
and so that the update is identical on one device and on several replicas
(gradients arrive already summed across replicas). Each variable is updated
by TensorFlow's fused in-place kernel (``ResourceApplyMomentum`` /
``ResourceApplyAdam``, the kernels of TF1's optimisers): one pass over the
weights and slots instead of a chain of temporaries (~30 ms of a 0.5 s
update of the 15 M-parameter network on 2 CPU cores).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from liverseg.training.recipes import Recipe


def _slot(variable, name: str) -> tf.Variable:
    return tf.Variable(
        tf.zeros(variable.shape, tf.float32),
        trainable=False,
        name=f"{name}/{variable.path.replace('/', '_')}",
        aggregation=tf.VariableAggregation.MEAN,
    )


class Optimizer:
    """Base: holds named slot variables per model variable."""

    slot_names: tuple[str, ...] = ()

    def __init__(self, variables):
        self.variables = list(variables)
        self.iterations = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            name="iterations",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self.slots = {name: [_slot(v, name) for v in self.variables] for name in self.slot_names}

    def apply(self, grads, learning_rate, applied=None) -> None:
        """One update. ``applied`` (one bool per variable, default all) leaves
        the variables marked False and their slots exactly as they are."""
        raise NotImplementedError

    def _selected(self, applied, *per_variable):
        rows = zip(self.variables, *per_variable)
        if applied is None:
            return list(rows)
        return [row for row, keep in zip(rows, applied) if keep]

    def state(self) -> dict[str, np.ndarray]:
        """Slot values as numpy, keyed ``<slot>/<index>`` (for npz checkpoints)."""
        out = {"iterations": np.asarray(self.iterations.numpy())}
        for name, slots in self.slots.items():
            for i, s in enumerate(slots):
                out[f"{name}/{i}"] = s.numpy()
        return out

    def load_state(self, state) -> None:
        self.iterations.assign(int(state["iterations"]))
        for name, slots in self.slots.items():
            for i, s in enumerate(slots):
                key = f"{name}/{i}"
                if key not in state or tuple(state[key].shape) != tuple(s.shape):
                    raise ValueError(f"optimizer state lacks or mis-shapes {key}")
                s.assign(state[key])


class TF1Momentum(Optimizer):
    """``a = momentum * a + g; w -= lr * a`` (tf.compat.v1.train.MomentumOptimizer)."""

    slot_names = ("momentum",)

    def __init__(self, variables, momentum: float = 0.9):
        super().__init__(variables)
        self.momentum = momentum

    def apply(self, grads, learning_rate, applied=None) -> None:
        lr = tf.cast(learning_rate, tf.float32)
        for v, a, g in self._selected(applied, self.slots["momentum"], grads):
            # one fused kernel: a = momentum * a + g; v -= lr * a (in place)
            tf.raw_ops.ResourceApplyMomentum(
                var=v.handle,
                accum=a.handle,
                lr=lr,
                grad=g,
                momentum=tf.constant(self.momentum, tf.float32),
            )
        self.iterations.assign_add(1)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction, epsilon outside the sqrt."""

    slot_names = ("m", "v")

    def __init__(self, variables, beta1=0.9, beta2=0.999, epsilon=1e-7):
        super().__init__(variables)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def apply(self, grads, learning_rate, applied=None) -> None:
        t = tf.cast(self.iterations + 1, tf.float32)
        lr = tf.cast(learning_rate, tf.float32)
        b1, b2, eps = (tf.constant(x, tf.float32) for x in (self.beta1, self.beta2, self.epsilon))
        b1_power, b2_power = tf.pow(b1, t), tf.pow(b2, t)
        for var, m, v, g in self._selected(applied, self.slots["m"], self.slots["v"], grads):
            # one fused kernel, in place: m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
            # var -= lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle,
                m=m.handle,
                v=v.handle,
                beta1_power=b1_power,
                beta2_power=b2_power,
                lr=lr,
                beta1=b1,
                beta2=b2,
                epsilon=eps,
                grad=g,
            )
        self.iterations.assign_add(1)


def make_optimizer(recipe: Recipe, variables) -> Optimizer:
    if recipe.optimizer == "tf1_momentum":
        return TF1Momentum(variables, recipe.momentum)
    if recipe.optimizer == "adam":
        return Adam(variables, recipe.adam_beta1, recipe.adam_beta2, recipe.adam_epsilon)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")
