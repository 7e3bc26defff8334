"""One update of a small model equals the recipe's formula, computed by hand."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from liverseg.training.optimizers import make_optimizer
from liverseg.training.recipes import DSN_WEIGHT, FAST, ORIGINAL, gradient_factor
from liverseg.training.step import TrainStep
from tests.training.tiny import tiny_model

H = W = 8


def _batches(n, batch, seed=0):
    rng = np.random.default_rng(seed)
    return [{"image": rng.uniform(0, 255, (batch, H, W, 3)).astype(np.float32),
             "label": (rng.uniform(size=(batch, H, W, 3)) > 0.7).astype(np.float32),
             "mask": (rng.uniform(size=(batch, H, W, 3)) > 0.2).astype(np.float32)}
            for _ in range(n)]


def _dataset(batches):
    return tf.data.Dataset.from_tensor_slices(
        {k: np.concatenate([b[k] for b in batches]) for k in batches[0]})


def _hand_loss(labels, logits, mask, pos_w, neg_w):
    """DESIGN.md section 4, written out independently of liverseg.losses."""
    x = tf.cast(logits, tf.float32)
    ge = tf.cast(x >= 0, tf.float32)
    l = x * (labels - ge) - tf.math.log(1 + tf.exp(x - 2 * x * ge))
    pos = tf.reduce_sum(-labels * l * mask)
    neg = tf.reduce_sum(-(1 - labels) * l * mask)
    return pos_w * pos + neg_w * neg


def _hand_grads(model, batch, recipe, stage, dsn_weight):
    mode = recipe.class_weights
    mode = mode[stage] if isinstance(mode, dict) else mode
    pos_w, neg_w = (0.5, 0.5) if mode == "uniform" else \
        {"liver": (0.931, 0.069), "tumor": (0.8982, 0.1018)}[stage]
    decay = recipe.weight_decay * recipe.weight_decay_factor[stage]
    norm = float(np.sum(batch["mask"])) if recipe.loss_reduction == "mean" else 1.0
    dice_w = recipe.dice_weight[stage] if isinstance(recipe.dice_weight, dict) \
        else recipe.dice_weight

    def output_loss(logits):
        loss = _hand_loss(batch["label"], logits, batch["mask"], pos_w, neg_w) / norm
        if dice_w:  # 1 - (2 sum(p y m) + 1) / (sum(p m) + sum(y m) + 1) over the batch
            p = tf.sigmoid(logits) * batch["mask"]
            y = batch["label"] * batch["mask"]
            loss += dice_w * (1.0 - (2.0 * tf.reduce_sum(p * y) + 1.0)
                              / (tf.reduce_sum(p) + tf.reduce_sum(y) + 1.0))
        return loss

    with tf.GradientTape() as tape:
        out = model(batch["image"], training=True)
        total = output_loss(out["fuse"])
        for k in (2, 3, 4, 5):
            total += dsn_weight * output_loss(out[f"dsn_{k}"])
        kernels = [v for v in model.weights if v.path.endswith("kernel")]
        total += decay * 0.5 * tf.add_n([tf.reduce_sum(k * k) for k in kernels])
    return [g.numpy() for g in tape.gradient(total, model.trainable_variables)]


@pytest.mark.parametrize("stage", ["liver", "tumor"])
def test_original_update_equals_formula(stage):
    recipe = dataclasses.replace(ORIGINAL, iter_mean_grad=3)
    batches = _batches(6, 1)
    lr = 0.01
    model = tiny_model()
    w0 = [v.numpy() for v in model.trainable_variables]
    frozen0 = [v.numpy() for v in model.non_trainable_weights]
    paths = [v.path for v in model.trainable_variables]
    assert "score-dsn_2-up/kernel" in [v.path for v in model.non_trainable_weights]
    # Hand computation: two updates of TF1 momentum on the mean of 3 gradients.
    ref = tiny_model()
    momentum = [np.zeros_like(w) for w in w0]
    expected = []
    for update in range(2):
        grads = [np.zeros_like(w) for w in w0]
        for b in batches[3 * update:3 * update + 3]:
            for i, g in enumerate(_hand_grads(ref, b, recipe, stage, DSN_WEIGHT["weak"])):
                grads[i] += g / 3
        for i, v in enumerate(ref.trainable_variables):
            g = grads[i] * gradient_factor(paths[i])
            momentum[i] = 0.9 * momentum[i] + g
            v.assign(v.numpy() - lr * momentum[i])
        expected.append([v.numpy() for v in ref.trainable_variables])

    strategy = tf.distribute.get_strategy()
    opt = make_optimizer(recipe, model.trainable_variables)
    step = TrainStep(model, opt, recipe, stage, strategy)
    it = iter(_dataset(batches).batch(1))
    for update in range(2):
        step(it, DSN_WEIGHT["weak"], lr)
        for got, want in zip(model.trainable_variables, expected[update]):
            np.testing.assert_allclose(got.numpy(), want, rtol=2e-5, atol=1e-7)
    for got, want in zip(model.non_trainable_weights, frozen0):
        np.testing.assert_array_equal(got.numpy(), want)
    assert int(opt.iterations.numpy()) == 2


def test_fast_update_equals_adam_formula():
    batches = _batches(1, 4)
    lr = 1e-3
    model = tiny_model()
    ref = tiny_model()
    grads = _hand_grads(ref, batches[0], FAST, "liver", DSN_WEIGHT["strong"])
    w0 = [v.numpy() for v in model.trainable_variables]
    step = TrainStep(model, make_optimizer(FAST, model.trainable_variables), FAST, "liver",
                     tf.distribute.get_strategy())
    metrics = step(iter(_dataset(batches).batch(4)), DSN_WEIGHT["strong"], lr)
    for v, w, g in zip(model.trainable_variables, w0, grads):
        m = 0.1 * g
        s = 0.001 * g * g
        want = w - lr * (np.sqrt(1 - 0.999) / (1 - 0.9)) * m / (np.sqrt(s) + 1e-7)
        np.testing.assert_allclose(v.numpy(), want, rtol=1e-4, atol=1e-7)
    assert set(metrics) >= {"loss_total", "loss_fuse", "loss_dsn_2", "dice"}
    assert 0.0 <= metrics["dice"] <= 1.0


def test_loss_metrics_match_hand_loss():
    batches = _batches(1, 2, seed=4)
    model = tiny_model()
    out = model(batches[0]["image"])
    want = float(_hand_loss(batches[0]["label"], out["fuse"], batches[0]["mask"], 0.931, 0.069))
    recipe = dataclasses.replace(ORIGINAL, iter_mean_grad=1)
    step = TrainStep(model, make_optimizer(recipe, model.trainable_variables), recipe, "liver",
                     tf.distribute.get_strategy())
    metrics = step(iter(_dataset(batches).batch(2)), DSN_WEIGHT["none"], 0.0)
    assert metrics["loss_fuse"] == pytest.approx(want, rel=1e-5)
