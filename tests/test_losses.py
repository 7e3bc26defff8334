"""Class-balanced sigmoid CE (docs/ORIGINAL.md section 4) and the deep-supervision combination."""

import numpy as np
import pytest
import tensorflow as tf

from liverseg.errors import ConfigError
from liverseg.losses import (
    STAGE_CLASS_WEIGHTS,
    Supervision,
    class_balanced_sigmoid_ce,
    deep_supervision_loss,
    soft_dice_terms,
)


def _self_check_inputs():
    labels = np.random.default_rng(9).uniform(size=(1, 64, 64, 3)) > 0.7
    mask = (np.random.default_rng(11).uniform(size=(1, 64, 64, 3)) > 0.3).astype(np.float32)
    logits = np.random.default_rng(13).normal(0, 3, (1, 64, 64, 3)).astype(np.float32)
    return labels, mask, logits


def test_self_check_liver():
    labels, _, logits = _self_check_inputs()
    loss = class_balanced_sigmoid_ce(labels, logits, *STAGE_CLASS_WEIGHTS["liver"])
    assert loss.dtype == tf.float32
    assert float(loss) == pytest.approx(5536.375, rel=1e-4)


def test_self_check_tumour_with_mask():
    labels, mask, logits = _self_check_inputs()
    loss = class_balanced_sigmoid_ce(labels, logits, *STAGE_CLASS_WEIGHTS["tumor"], loss_mask=mask)
    assert float(loss) == pytest.approx(4032.8098, rel=1e-4)


def test_matches_float64_sigmoid_cross_entropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 4, (2, 8, 9, 3)).astype(np.float32)
    labels = rng.uniform(size=logits.shape)  # binarised at 0.5 inside
    mask = rng.uniform(size=(2, 8, 9, 1)).astype(np.float32)  # broadcast over slices
    x, y = logits.astype(np.float64), (labels > 0.5).astype(np.float64)
    ce = np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))
    m = np.broadcast_to(mask, x.shape)
    expected = 0.3 * np.sum(y * ce * m) + 0.7 * np.sum((1 - y) * ce * m)
    actual = class_balanced_sigmoid_ce(labels, logits, 0.3, 0.7, loss_mask=mask)
    assert float(actual) == pytest.approx(expected, rel=1e-5)
    normalized = class_balanced_sigmoid_ce(labels, logits, 0.3, 0.7, loss_mask=mask, normalize=True)
    assert float(normalized) == pytest.approx(expected / m.sum(), rel=1e-5)
    plain = class_balanced_sigmoid_ce(labels, logits, 0.3, 0.7, normalize=True)
    expected_plain = (0.3 * np.sum(y * ce) + 0.7 * np.sum((1 - y) * ce)) / x.size
    assert float(plain) == pytest.approx(expected_plain, rel=1e-5)


def test_labels_binarised_at_half_and_zero_mask_gives_zero():
    logits = np.array([[[[1.5, -2.0]]]], np.float32)
    soft = class_balanced_sigmoid_ce(np.array([[[[0.6, 0.4]]]]), logits, 0.9, 0.1)
    hard = class_balanced_sigmoid_ce(np.array([[[[1.0, 0.0]]]]), logits, 0.9, 0.1)
    assert float(soft) == float(hard)
    zero = class_balanced_sigmoid_ce(
        np.ones((1, 1, 1, 2)), logits, 0.9, 0.1, loss_mask=np.zeros((1, 1, 1, 2)), normalize=True
    )
    assert float(zero) == 0.0


@pytest.mark.parametrize("dtype", [tf.bfloat16, tf.float16])
def test_low_precision_logits_are_computed_in_float32(dtype):
    labels, mask, logits = _self_check_inputs()
    low = tf.cast(logits, dtype)
    loss = class_balanced_sigmoid_ce(labels, low, 0.8982, 0.1018, loss_mask=mask)
    reference = class_balanced_sigmoid_ce(
        labels, tf.cast(low, tf.float32), 0.8982, 0.1018, loss_mask=mask
    )
    assert loss.dtype == tf.float32 and float(loss) == float(reference)


def _outputs():
    rng = np.random.default_rng(3)
    return {
        name: rng.normal(0, 2, (1, 16, 16, 3)).astype(np.float32)
        for name in ("fuse", "dsn_2", "dsn_3", "dsn_4", "dsn_5")
    }


@pytest.mark.parametrize(
    "supervision, side_weight",
    [
        ("strong", 1.0),
        ("weak", 0.5),
        ("none", 0.0),
        (Supervision.WEAK, 0.5),
    ],
)
def test_deep_supervision_combination(supervision, side_weight):
    outputs = _outputs()
    labels = np.random.default_rng(4).uniform(size=(1, 16, 16, 3)) > 0.6
    total, per_output = deep_supervision_loss(labels, outputs, supervision, 0.931, 0.069)
    assert set(per_output) == set(outputs)
    for name, logits in outputs.items():
        assert float(per_output[name]) == float(
            class_balanced_sigmoid_ce(labels, logits, 0.931, 0.069)
        )
    side = sum(float(per_output[f"dsn_{k}"]) for k in (2, 3, 4, 5))
    assert float(total) == pytest.approx(float(per_output["fuse"]) + side_weight * side, rel=1e-6)


def test_deep_supervision_normalize_and_errors():
    outputs = _outputs()
    labels = np.zeros((1, 16, 16, 3))
    mask = np.ones((1, 16, 16, 3), np.float32)
    summed, _ = deep_supervision_loss(labels, outputs, "strong", 0.5, 0.5, mask)
    mean, _ = deep_supervision_loss(labels, outputs, "strong", 0.5, 0.5, mask, normalize=True)
    assert float(mean) == pytest.approx(float(summed) / mask.size, rel=1e-6)
    with pytest.raises(ConfigError, match="supervision"):
        deep_supervision_loss(labels, outputs, 2, 0.5, 0.5)
    del outputs["dsn_4"]
    with pytest.raises(ConfigError, match="dsn_4"):
        deep_supervision_loss(labels, outputs, "none", 0.5, 0.5)


def test_works_inside_tf_function_with_gradients():
    labels, mask, logits = _self_check_inputs()
    variable = tf.Variable(logits)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = class_balanced_sigmoid_ce(labels, variable, 0.8982, 0.1018, loss_mask=mask)
        return loss, tape.gradient(loss, variable)

    loss, grad = step()
    assert float(loss) == pytest.approx(4032.8098, rel=1e-4)
    y = labels.astype(np.float64)
    sigmoid = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = mask * (0.8982 * y * (sigmoid - 1) + 0.1018 * (1 - y) * sigmoid)
    np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_soft_dice_value_and_surrogate_gradient_on_one_device():
    rng = np.random.default_rng(4)
    labels = (rng.uniform(size=(2, 6, 5, 3)) > 0.6).astype(np.float32)
    mask = (rng.uniform(size=(2, 6, 5, 3)) > 0.3).astype(np.float32)
    logits = tf.Variable(rng.normal(0, 2, (2, 6, 5, 3)).astype(np.float32))
    p = 1.0 / (1.0 + np.exp(-logits.numpy().astype(np.float64)))
    y = labels * mask
    inter, total = np.sum(p * mask * y), np.sum(p * mask) + np.sum(y)
    expected = 1.0 - (2.0 * inter + 1.0) / (total + 1.0)
    with tf.GradientTape(persistent=True) as tape:
        value, surrogate = soft_dice_terms(labels, logits, mask)
        pm = tf.sigmoid(logits) * mask
        direct = 1.0 - (2.0 * tf.reduce_sum(pm * y) + 1.0) / (
            tf.reduce_sum(pm) + tf.reduce_sum(y) + 1.0
        )
    assert float(value) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_allclose(
        tape.gradient(surrogate, logits).numpy(),
        tape.gradient(direct, logits).numpy(),
        rtol=1e-4,
        atol=1e-8,
    )
    # Masked-out pixels get no gradient; a perfect prediction scores ~0.
    assert np.all(tape.gradient(surrogate, logits).numpy()[mask == 0] == 0)
    perfect, _ = soft_dice_terms(labels, np.where(labels > 0, 30.0, -30.0), None)
    assert float(perfect) == pytest.approx(0.0, abs=1e-6)
