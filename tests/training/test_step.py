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
    return [
        {
            "image": rng.uniform(0, 255, (batch, H, W, 3)).astype(np.float32),
            "label": (rng.uniform(size=(batch, H, W, 3)) > 0.7).astype(np.float32),
            "mask": (rng.uniform(size=(batch, H, W, 3)) > 0.2).astype(np.float32),
        }
        for _ in range(n)
    ]


def _dataset(batches):
    return tf.data.Dataset.from_tensor_slices(
        {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    )


def _hand_loss(labels, logits, mask, pos_w, neg_w):
    """docs/ORIGINAL.md section 4, written out independently of liverseg.losses."""
    x = tf.cast(logits, tf.float32)
    ge = tf.cast(x >= 0, tf.float32)
    l = x * (labels - ge) - tf.math.log(1 + tf.exp(x - 2 * x * ge))
    pos = tf.reduce_sum(-labels * l * mask)
    neg = tf.reduce_sum(-(1 - labels) * l * mask)
    return pos_w * pos + neg_w * neg


def _hand_grads(model, batch, recipe, stage, dsn_weight):
    mode = recipe.class_weights
    mode = mode[stage] if isinstance(mode, dict) else mode
    pos_w, neg_w = (
        (0.5, 0.5)
        if mode == "uniform"
        else {"liver": (0.931, 0.069), "tumor": (0.8982, 0.1018)}[stage]
    )
    decay = recipe.weight_decay * recipe.weight_decay_factor[stage]
    norm = float(np.sum(batch["mask"])) if recipe.loss_reduction == "mean" else 1.0
    dice_w = (
        recipe.dice_weight[stage] if isinstance(recipe.dice_weight, dict) else recipe.dice_weight
    )

    def output_loss(logits):
        loss = _hand_loss(batch["label"], logits, batch["mask"], pos_w, neg_w) / norm
        if dice_w:  # 1 - (2 sum(p y m) + 1) / (sum(p m) + sum(y m) + 1) over the batch
            p = tf.sigmoid(logits) * batch["mask"]
            y = batch["label"] * batch["mask"]
            loss += dice_w * (
                1.0
                - (2.0 * tf.reduce_sum(p * y) + 1.0) / (tf.reduce_sum(p) + tf.reduce_sum(y) + 1.0)
            )
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
        for b in batches[3 * update : 3 * update + 3]:
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
        step(it, "weak", lr)
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
    step = TrainStep(
        model,
        make_optimizer(FAST, model.trainable_variables),
        FAST,
        "liver",
        tf.distribute.get_strategy(),
    )
    opt = step.optimizer
    metrics = step(iter(_dataset(batches).batch(4)), "strong", lr)
    for i, (v, w, g) in enumerate(zip(model.trainable_variables, w0, grads)):
        m = 0.1 * g
        s = 0.001 * g * g
        want = w - lr * (np.sqrt(1 - 0.999) / (1 - 0.9)) * m / (np.sqrt(s) + 1e-7)
        np.testing.assert_allclose(v.numpy(), want, rtol=1e-4, atol=1e-7)
        # The first Adam step is about lr * sign(g) whatever the gradient's size, so
        # the moments check the magnitudes: m = 0.1 g, v = 0.001 g^2.
        np.testing.assert_allclose(opt.slots["m"][i].numpy(), m, rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(opt.slots["v"][i].numpy(), s, rtol=2e-4, atol=1e-12)
    assert set(metrics) >= {"loss_total", "loss_fuse", "loss_dsn_2", "dice"}
    assert 0.0 <= metrics["dice"] <= 1.0


def test_loss_metrics_match_hand_loss():
    batches = _batches(1, 2, seed=4)
    model = tiny_model()
    out = model(batches[0]["image"])
    want = float(_hand_loss(batches[0]["label"], out["fuse"], batches[0]["mask"], 0.931, 0.069))
    recipe = dataclasses.replace(ORIGINAL, iter_mean_grad=1)
    step = TrainStep(
        model,
        make_optimizer(recipe, model.trainable_variables),
        recipe,
        "liver",
        tf.distribute.get_strategy(),
    )
    metrics = step(iter(_dataset(batches).batch(2)), "none", 0.0)
    assert metrics["loss_fuse"] == pytest.approx(want, rel=1e-5)


def _original_moved(model, batch, supervision, decay):
    """Indices (into ``trainable_variables``) that one original update moves,
    written from the original's rules: ``compute_gradients`` of the phase's
    loss (sides left out under "none") gives None where no term reaches a
    variable; accumulators exist for the others and are then indexed
    0 .. count - 1 over the full list, skipping the missing gradients."""
    with tf.GradientTape() as tape:
        out = model(batch["image"], training=True)
        total = tf.reduce_sum(out["fuse"])
        if supervision != "none":
            total += tf.add_n([tf.reduce_sum(out[f"dsn_{k}"]) for k in (2, 3, 4, 5)])
        if decay:
            total += decay * tf.add_n(
                [tf.reduce_sum(v * v) for v in model.weights if v.path.endswith("kernel")]
            )
    grads = tape.gradient(total, model.trainable_variables)
    count = sum(g is not None for g in grads)
    return [i for i in range(count) if grads[i] is not None]


@pytest.mark.parametrize("selection", ["original", "all"])
def test_original_recipe_moves_the_originals_variables_by_its_amount(selection):
    """Three updates, one per supervision mode, with momentum carried across
    phases: under "none" the original leaves the score-dsn biases, score-dsn_5
    and upscore-fuse (and their momentum) as they were."""
    stage = "tumor"  # weight decay factor 1: decay reaches the score-dsn kernels
    recipe = dataclasses.replace(ORIGINAL, iter_mean_grad=1)
    decay = recipe.weight_decay * recipe.weight_decay_factor[stage]
    batches = _batches(3, 1, seed=7)
    lr = 0.01
    model, ref = tiny_model(), tiny_model()
    paths = [v.path for v in model.trainable_variables]
    momentum = [np.zeros(v.shape, np.float32) for v in ref.trainable_variables]
    opt = make_optimizer(recipe, model.trainable_variables)
    step = TrainStep(model, opt, recipe, stage, tf.distribute.get_strategy(), selection=selection)
    it = iter(_dataset(batches).batch(1))
    for batch, supervision in zip(batches, ("strong", "weak", "none")):
        grads = _hand_grads(ref, batch, recipe, stage, DSN_WEIGHT[supervision])
        moved = (
            _original_moved(ref, batch, supervision, decay)
            if selection == "original"
            else range(len(paths))
        )
        for i in moved:
            momentum[i] = 0.9 * momentum[i] + grads[i] * gradient_factor(paths[i])
            v = ref.trainable_variables[i]
            v.assign(v.numpy() - lr * momentum[i])
        before = [v.numpy() for v in model.trainable_variables]
        step(it, supervision, lr)
        for i, (got, want) in enumerate(zip(model.trainable_variables, ref.trainable_variables)):
            np.testing.assert_allclose(
                got.numpy(),
                want.numpy(),
                rtol=2e-5,
                atol=1e-7,
                err_msg=f"{supervision}: {paths[i]}",
            )
        changed = {
            paths[i]
            for i, v in enumerate(model.trainable_variables)
            if not np.array_equal(v.numpy(), before[i])
        }
        assert changed == {paths[i] for i in moved}, supervision
        for i, slot in enumerate(opt.slots["momentum"]):
            np.testing.assert_allclose(slot.numpy(), momentum[i], rtol=2e-5, atol=1e-8)
    frozen = {
        "score-dsn_2/bias",
        "score-dsn_3/bias",
        "score-dsn_4/bias",
        "score-dsn_5/kernel",
        "score-dsn_5/bias",
        "upscore-fuse/kernel",
        "upscore-fuse/bias",
    }
    assert (set(paths) - {paths[i] for i in moved}) == (
        frozen if selection == "original" else set()
    )


@pytest.mark.parametrize("stage", ["liver", "tumor"])
def test_original_last_phase_freezes_seven_variables_of_the_real_network(stage):
    """DS-SFFNet under the original recipe: strong and weak move all 68
    trainable variables, "none" moves 61 (by their TF1 names)."""
    from liverseg.models import build_ds_sffnet
    from liverseg.models.converter import model_config_of, tf1_variable_map

    model = build_ds_sffnet(stage, seed=0)
    recipe = dataclasses.replace(ORIGINAL, iter_mean_grad=1)
    opt = make_optimizer(recipe, model.trainable_variables)
    step = TrainStep(model, opt, recipe, stage, tf.distribute.get_strategy())
    names = {
        f"{ref.layer}/{ref.attr}": name
        for name, ref in tf1_variable_map(model_config_of(model)).items()
    }
    trainable = [names[v.path] for v in model.trainable_variables]
    assert len(trainable) == 68
    scope = model_config_of(model).scope
    expected_frozen = {f"{scope}/score-dsn_{k}/biases" for k in (2, 3, 4, 5)} | {
        f"{scope}/score-dsn_5/weights",
        f"{scope}/upscore-fuse/weights",
        f"{scope}/upscore-fuse/biases",
    }
    for supervision in ("strong", "weak"):
        assert step.applied(supervision) is None
    flags = step.applied("none")
    assert {n for n, f in zip(trainable, flags) if not f} == expected_frozen
    # One real update under "none": exactly the 61 others take a step (their
    # momentum slot becomes the gradient; the liver net's weight-decay-only
    # step of the score-dsn kernels is below float32 resolution of the weights).
    rng = np.random.default_rng(3)
    batch = {
        "image": rng.uniform(0, 255, (1, 32, 32, 3)).astype(np.float32),
        "label": (rng.uniform(size=(1, 32, 32, 3)) > 0.5).astype(np.float32),
        "mask": np.ones((1, 32, 32, 3), np.float32),
    }
    before = [v.numpy() for v in model.trainable_variables]
    step(iter(_dataset([batch]).batch(1)), "none", 1e-3)
    stepped = {n for n, a in zip(trainable, opt.slots["momentum"]) if np.any(a.numpy())}
    assert len(stepped) == 61 and stepped == set(trainable) - expected_frozen
    for n, v, b in zip(trainable, model.trainable_variables, before):
        if n in expected_frozen:
            np.testing.assert_array_equal(v.numpy(), b, err_msg=n)
