"""Batched slice-stack prediction: channel choice, padding, tracing, bfloat16, XLA."""

import numpy as np
import pytest

from liverseg.errors import ConfigError
from liverseg.inference.predictor import (
    PredictorOptions,
    StackPredictor,
    auto_batch_size,
    bfloat16_copy,
    predict_slices,
    predict_volume,
    shift_image,
)
from tests.inference import helpers

OFFSETS = (-1.0, 0.0, 1.0)
SCALE = 0.01
INTENSITY = (-150.0, 250.0)  # x = 0.6375 * (HU + 150)


def slice_coded_volume(num_slices, shape=(20, 24)):
    """Slice k is constant HU -150 + 10 k, so its scaled intensity is 6.375 k."""
    hu = np.empty(shape + (num_slices,), np.int16)
    for k in range(num_slices):
        hu[:, :, k] = -150 + 10 * k
    return hu


def logit(p):
    p = p.astype(np.float64)
    return np.log(p / (1.0 - p))


def expected_channel(k, n):
    return 0 if k == 0 else 2 if k == n - 1 else 1


@pytest.mark.parametrize("batch_size", [1, 4])
def test_every_slice_takes_its_own_stack_and_channel(batch_size):
    n = 7
    predictor = StackPredictor(helpers.linear_model(SCALE, OFFSETS), PredictorOptions(batch_size))
    prob = predict_slices(predictor, slice_coded_volume(n), INTENSITY)
    assert prob.shape == (20, 24, n) and prob.dtype == np.float32
    for k in range(n):
        expected = SCALE * 6.375 * k + OFFSETS[expected_channel(k, n)]
        np.testing.assert_allclose(logit(prob[:, :, k]), expected, atol=2e-5)


def test_selected_slices_in_a_region_keep_the_choice_and_order():
    n = 6
    predictor = StackPredictor(helpers.linear_model(SCALE, OFFSETS), PredictorOptions(2))
    hu = slice_coded_volume(n)
    prob = predict_slices(
        predictor, hu, INTENSITY, slice_ids=[5, 0, 3], region=(slice(2, 18), slice(4, 21))
    )
    assert prob.shape == (16, 17, 3)
    for j, k in enumerate([5, 0, 3]):
        expected = SCALE * 6.375 * k + OFFSETS[expected_channel(k, n)]
        np.testing.assert_allclose(logit(prob[:, :, j]), expected, atol=2e-5)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("batch_size", [1, 4])
def test_mean_fusion_averages_every_stack_holding_the_slice(batch_size):
    n = 6
    predictor = StackPredictor(helpers.linear_model(SCALE, OFFSETS), PredictorOptions(batch_size))
    prob = predict_slices(predictor, slice_coded_volume(n), INTENSITY, fusion="mean")
    counts = [1, 2, 3, 3, 2, 1]
    for k in range(n):
        channels = [k - s for s in range(max(k - 2, 0), min(k, n - 3) + 1)]
        assert len(channels) == counts[k]
        expected = np.mean([sigmoid(SCALE * 6.375 * k + OFFSETS[ch]) for ch in channels])
        np.testing.assert_allclose(prob[:, :, k], expected, rtol=1e-5)


def test_mean_fusion_of_selected_slices_uses_neighbouring_stacks():
    n = 8
    predictor = StackPredictor(helpers.linear_model(SCALE, OFFSETS), PredictorOptions(2))
    hu = slice_coded_volume(n)
    full = predict_slices(predictor, hu, INTENSITY, fusion="mean")
    some = predict_slices(
        predictor, hu, INTENSITY, slice_ids=[4, 3], region=(slice(1, 9), slice(0, 5)), fusion="mean"
    )
    np.testing.assert_allclose(some, full[1:9, 0:5][:, :, [4, 3]], rtol=1e-6)
    with pytest.raises(ConfigError, match="slice_fusion"):
        predict_slices(predictor, hu, INTENSITY, fusion="max")


def test_shift_image_moves_and_repeats_the_edge():
    a = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
    down_right = shift_image(a, 1, 2)[0, :, :, 0]
    np.testing.assert_array_equal(down_right, [[0, 0, 0, 1], [0, 0, 0, 1], [4, 4, 4, 5]])
    up_left = shift_image(a, -1, -1)[0, :, :, 0]
    np.testing.assert_array_equal(up_left, [[5, 6, 7, 7], [9, 10, 11, 11], [9, 10, 11, 11]])


def test_shifted_passes_average_the_moved_back_predictions():
    """A pixel-wise net: each shifted pass gives the plain prediction back, except
    on the border rows/columns the shift pushed out, which repeat the edge."""
    n = 5
    predictor = StackPredictor(helpers.linear_model(SCALE, OFFSETS), PredictorOptions(2))
    hu = slice_coded_volume(n)
    hu[:, :, :] += np.arange(20, dtype=np.int16)[:, None, None]  # vary along rows
    plain = predict_slices(predictor, hu, INTENSITY)
    shifted = predict_slices(predictor, hu, INTENSITY, shifts=[(2, 0)])
    np.testing.assert_allclose(shifted[:18], plain[:18], rtol=1e-6)
    np.testing.assert_allclose(shifted[18:], (plain[18:] + plain[17:18]) / 2, rtol=1e-6)
    with pytest.raises(ConfigError, match="tta_shifts"):
        predict_slices(predictor, hu, INTENSITY, shifts=[(0, 0)])
    with pytest.raises(ConfigError, match="tta_shifts"):
        predict_slices(predictor, hu, INTENSITY, shifts=[(1,)])


def test_three_slices_use_the_single_stack():
    predictor = StackPredictor(helpers.linear_model(SCALE, OFFSETS), PredictorOptions(4))
    prob = predict_slices(predictor, slice_coded_volume(3), INTENSITY)
    for k in range(3):
        np.testing.assert_allclose(logit(prob[:, :, k]), SCALE * 6.375 * k + OFFSETS[k], atol=2e-5)


def test_predict_volume_scales_with_the_volume_range_and_counts_progress():
    hu = slice_coded_volume(5)
    hu[0, 0, 0] = -1000  # clipped to -150: the range stays (-150, -110)
    predictor = StackPredictor(helpers.linear_model(0.01, (0.0, 0.0, 0.0)), PredictorOptions(2))
    prob = predict_volume(predictor, hu)
    # x = 255 * (HU + 150) / 40: 0 on slice 0, 63.75 on slice 1, 255 on slice 4
    np.testing.assert_allclose(prob[:, :, 0], 0.5)
    np.testing.assert_allclose(logit(prob[:, :, 1]), 0.6375, atol=2e-5)
    np.testing.assert_allclose(logit(prob[:, :, 4]), 2.55, atol=2e-5)
    calls, stats = [], {}
    predict_slices(
        predictor, hu, (-150.0, -110.0), stats=stats, progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(2, 3), (3, 3)]
    assert set(stats) == {"preprocess", "network"}


def test_too_few_slices_and_bad_batch_size():
    predictor = StackPredictor(helpers.linear_model(SCALE, OFFSETS), PredictorOptions(2))
    with pytest.raises(ValueError, match="at least 3"):
        predict_slices(predictor, slice_coded_volume(2), INTENSITY)
    with pytest.raises(ConfigError):
        PredictorOptions(batch_size=0)
    with pytest.raises(ConfigError):
        PredictorOptions(batch_size="8")


def test_one_trace_for_volumes_of_different_sizes_real_net():
    liver, _ = helpers.real_models()
    predictor = StackPredictor(liver, PredictorOptions(batch_size=3))
    a = predict_volume(predictor, slice_coded_volume(5, (32, 32)))
    b = predict_volume(predictor, slice_coded_volume(4, (48, 40)))
    assert predictor.trace_count == 1
    assert a.shape == (32, 32, 5) and b.shape == (48, 40, 4)
    # padding the last batch does not change the result
    single = predict_volume(
        StackPredictor(liver, PredictorOptions(batch_size=1)), slice_coded_volume(5, (32, 32))
    )
    np.testing.assert_allclose(a, single, atol=1e-5)


def test_xla_matches_and_does_not_retrace():
    model = helpers.linear_model(SCALE, OFFSETS)
    plain = StackPredictor(model, PredictorOptions(batch_size=2))
    xla = StackPredictor(model, PredictorOptions(batch_size=2, jit_compile=True))
    for shape in ((20, 24), (32, 16)):
        hu = slice_coded_volume(5, shape)
        np.testing.assert_allclose(
            predict_slices(xla, hu, INTENSITY), predict_slices(plain, hu, INTENSITY), atol=1e-6
        )
    assert xla.trace_count == 1


def test_auto_batch_size_is_a_pixel_budget_between_1_and_8():
    assert PredictorOptions().batch_size == "auto"
    assert auto_batch_size(512, 512) == 1 and auto_batch_size(600, 500) == 1
    assert auto_batch_size(256, 256) == 4 and auto_batch_size(228, 190) == 6
    assert auto_batch_size(181, 181) == 8 and auto_batch_size(16, 16) == 8
    assert auto_batch_size(512, 512, batch_pixels=2 * 512 * 512) == 2
    assert PredictorOptions(batch_pixels=1000).batch_size_for(20, 24) == 2
    assert PredictorOptions(batch_size=3).batch_size_for(512, 512) == 3
    for bad in ("big", 0, True, 2.0):
        with pytest.raises(ConfigError, match="batch_size"):
            PredictorOptions(batch_size=bad)
    with pytest.raises(ConfigError, match="batch_pixels"):
        PredictorOptions(batch_pixels=0)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_auto_batches_are_padded_to_the_size_budget_and_traced_once(jit_compile):
    # budget 2000 pixels: 2 stacks of 32x30, 1 of 48x40
    predictor = StackPredictor(
        helpers.linear_model(SCALE, OFFSETS),
        PredictorOptions(batch_pixels=2000, jit_compile=jit_compile),
    )
    fixed = StackPredictor(helpers.linear_model(SCALE, OFFSETS), PredictorOptions(batch_size=1))
    seen = []
    real = predictor.predict_batch
    predictor.predict_batch = lambda batch: (seen.append(batch.shape), real(batch))[1]
    for shape, batch in (((32, 30), 2), ((48, 40), 1)):
        seen.clear()
        hu = slice_coded_volume(7, shape)
        np.testing.assert_allclose(
            predict_slices(predictor, hu, INTENSITY),
            predict_slices(fixed, hu, INTENSITY),
            atol=1e-6,
        )
        # 5 stacks for 7 slices: every call gets a full batch (the last one padded)
        assert seen == [(batch,) + shape + (3,)] * (-(-5 // batch))
    assert predictor.trace_count == 1


def test_bfloat16_copy_computes_in_bfloat16_and_stays_close():
    liver, _ = helpers.real_models()
    copy = bfloat16_copy(liver)
    assert copy.get_layer("conv1_1").compute_dtype == "bfloat16"
    assert copy.get_layer("conv1_1").kernel.dtype == "float32"
    for a, b in zip(copy.get_weights(), liver.get_weights()):
        np.testing.assert_array_equal(a, b)
    hu = slice_coded_volume(4, (32, 32)).astype(np.float32)
    hu += np.random.default_rng(0).normal(0, 30, hu.shape).astype(np.float32)
    ref = predict_volume(StackPredictor(liver, PredictorOptions(2)), hu)
    mixed_predictor = StackPredictor(liver, PredictorOptions(2, mixed_precision=True))
    mixed = predict_volume(mixed_predictor, hu)
    assert mixed.dtype == np.float32
    # bfloat16 keeps 8 significant bits: the untrained net's logits (|l| < 0.3) move by
    # well under 0.01 in probability.
    assert np.max(np.abs(mixed - ref)) < 0.01


def test_bfloat16_needs_a_liverseg_network():
    with pytest.raises(ConfigError):
        StackPredictor(helpers.linear_model(SCALE, OFFSETS), PredictorOptions(mixed_precision=True))
