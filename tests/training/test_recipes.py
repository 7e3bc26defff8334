import pytest

from liverseg.training import recipes
from liverseg.training.recipes import FAST, ORIGINAL, gradient_factor


def test_original_learning_rate_schedule():
    # The update that runs with global_step == boundary keeps the old rate.
    total = 50_000
    expected = {
        0: 1e-8,
        9_999: 1e-8,
        10_000: 1e-8,
        10_001: 1e-9,
        15_000: 1e-9,
        15_001: 1e-8,
        25_000: 1e-8,
        25_001: 1e-9,
        30_000: 1e-9,
        30_001: 1e-8,
        40_000: 1e-8,
        40_001: 1e-9,
        49_999: 1e-9,
    }
    for step, lr in expected.items():
        assert ORIGINAL.learning_rate_at(step, total) == pytest.approx(lr, rel=1e-12), step


@pytest.mark.parametrize("total", [50_000, 1000, 777, 40, 7])
def test_learning_rate_equals_tf1_piecewise_constant(total):
    """Every update around every (scaled) boundary has the rate the original's
    ``tf.compat.v1.train.piecewise_constant(global_step, ...)`` gives it."""
    tf = pytest.importorskip("tensorflow")
    for recipe in (ORIGINAL, FAST):
        boundaries = [recipe.scaled(b, total) for b in recipe.lr_boundaries]
        values = [recipe.learning_rate * f for f in recipe.lr_factors]
        steps = sorted(
            {max(s, 0) for b in boundaries for s in (b - 1, b, b + 1, b + 2)} | {0, total - 1}
        )
        global_step = tf.Variable(0, dtype=tf.int64)
        rate = tf.compat.v1.train.piecewise_constant(global_step, boundaries, values)
        for step in steps:
            global_step.assign(step)
            want = float(rate() if callable(rate) else rate)
            assert recipe.learning_rate_at(step, total) == pytest.approx(want, rel=1e-6), (
                recipe.name,
                total,
                step,
            )


def test_original_supervision_phases_and_proportional_scaling():
    assert ORIGINAL.supervision_at(0, 50_000) == "strong"
    assert ORIGINAL.supervision_at(14_999, 50_000) == "strong"
    assert ORIGINAL.supervision_at(15_000, 50_000) == "weak"
    assert ORIGINAL.supervision_at(29_999, 50_000) == "weak"
    assert ORIGINAL.supervision_at(30_000, 50_000) == "none"
    # 1000 updates: switches at 300 and 600, lr boundaries at 200, 300, 500, 600, 800.
    assert ORIGINAL.supervision_at(299, 1000) == "strong"
    assert ORIGINAL.supervision_at(300, 1000) == "weak"
    assert ORIGINAL.supervision_at(600, 1000) == "none"
    assert ORIGINAL.learning_rate_at(200, 1000) == pytest.approx(1e-8)
    assert ORIGINAL.learning_rate_at(201, 1000) == pytest.approx(1e-9)
    assert ORIGINAL.phase_index(650, 1000) == 2


def test_original_recipe_numbers():
    assert ORIGINAL.iter_mean_grad == 10 and ORIGINAL.batch_size == 1
    assert ORIGINAL.momentum == 0.9 and ORIGINAL.weight_decay == 0.0002
    assert ORIGINAL.weight_decay_factor == {"liver": 0.001, "tumor": 1.0}
    assert recipes.class_weights(ORIGINAL, "liver") == (0.931, 0.069)
    assert recipes.class_weights(ORIGINAL, "tumor") == (0.8982, 0.1018)
    assert recipes.class_weights(FAST, "liver") == (0.5, 0.5)
    assert recipes.class_weights(FAST, "liver") == (0.5, 0.5)
    assert recipes.class_weights(FAST, "tumor") == (0.8982, 0.1018)
    assert recipes.DSN_WEIGHT == {"strong": 1.0, "weak": 0.5, "none": 0.0}


@pytest.mark.parametrize(
    "path,factor",
    [
        ("conv1_1/kernel", 1.0),
        ("conv1_1/bias", 2.0),
        ("side_2_br_1/bias", 2.0),
        ("score-dsn_3/kernel", 0.1),
        ("score-dsn_3/bias", 0.2),
        ("upscore-fuse/kernel", 0.01),
        ("upscore-fuse/bias", 0.02),
        ("score-dsn_2-up/kernel", 1.0),
    ],
)
def test_gradient_factors(path, factor):
    assert gradient_factor(path) == pytest.approx(factor)


def test_unknown_recipe():
    with pytest.raises(ValueError, match="unknown recipe"):
        recipes.get_recipe("slow")
