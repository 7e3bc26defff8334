"""Bilinear kernels, centre-crop offsets and the crop layer with dynamic shapes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from liverseg.models.layers import (
    Bilinear,
    CropToReference,
    SubpixelConv2DTranspose,
    bilinear_kernel,
    crop_offset,
)


def test_bilinear_kernel_size_4_exact():
    taps = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
    kernel = bilinear_kernel(4, 2)
    assert kernel.shape == (4, 4, 2, 2) and kernel.dtype == np.float32
    np.testing.assert_array_equal(kernel[:, :, 0, 0], np.outer(taps, taps))
    np.testing.assert_array_equal(kernel[:, :, 1, 1], np.outer(taps, taps))
    np.testing.assert_array_equal(kernel[:, :, 0, 1], 0)
    np.testing.assert_array_equal(kernel[:, :, 1, 0], 0)


def test_bilinear_kernel_size_3_exact():
    kernel = bilinear_kernel(3, 1)[:, :, 0, 0]
    expected = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]], np.float32)
    np.testing.assert_array_equal(kernel, expected)


def test_bilinear_kernel_large_sizes_sum_to_stride_squared():
    # A bilinear kernel of size 2s (stride s) spreads each input pixel with total weight s^2.
    for size, stride in ((8, 4), (16, 8), (32, 16)):
        assert bilinear_kernel(size, 1).sum() == pytest.approx(stride * stride)


def test_bilinear_initializer_matches_kernel_and_rejects_bad_shapes():
    value = Bilinear()((4, 4, 3, 3), dtype="float32")
    np.testing.assert_array_equal(np.asarray(value), bilinear_kernel(4, 3))
    with pytest.raises(ValueError, match="bilinear"):
        Bilinear()((4, 4, 3, 2))
    with pytest.raises(ValueError, match="bilinear"):
        Bilinear()((4, 3, 3, 3))


@pytest.mark.parametrize(
    "size_in, size_out, offset",
    [
        (36, 33, 1),
        (40, 33, 3),
        (48, 33, 7),
        (64, 33, 15),  # the heads at 33 px
        (6, 5, 0),
        (10, 9, 0),
        (18, 17, 0),
        (32, 32, 0),  # the decoder
    ],
)
def test_crop_offset_is_floor_half(size_in, size_out, offset):
    assert crop_offset(size_in, size_out) == offset


def test_crop_to_reference_takes_centre_window():
    x = np.arange(1 * 7 * 9 * 2, dtype=np.float32).reshape(1, 7, 9, 2)
    ref = np.zeros((1, 4, 4, 5), np.float32)
    out = CropToReference()([x, ref]).numpy()
    np.testing.assert_array_equal(out, x[:, 1:5, 2:6, :])


def test_crop_to_reference_dynamic_shapes_in_tf_function():
    layer = CropToReference()
    spec = tf.TensorSpec([None, None, None, None], tf.float32)
    fn = tf.function(lambda a, b: layer([a, b]), input_signature=[spec, spec])
    x = np.random.default_rng(0).normal(size=(2, 40, 48, 3)).astype(np.float32)
    out = fn(x, np.zeros((2, 33, 47, 1), np.float32)).numpy()
    np.testing.assert_array_equal(out, x[:, 3:36, 0:47, :])


def test_crop_layer_round_trips_through_keras_config():
    layer = CropToReference(name="score-dsn_2-crop")
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(clone, CropToReference) and clone.name == "score-dsn_2-crop"


@pytest.mark.parametrize(
    "kernel, strides, channels, height, width",
    [
        ((4, 4), (2, 2), (16, 16), 17, 9),
        ((4, 4), (2, 2), (3, 3), 8, 8),
        ((8, 8), (4, 4), (5, 2), 3, 4),
        ((4, 8), (2, 4), (2, 3), 5, 6),
    ],
)
def test_subpixel_transposed_conv_matches_tf_conv2d_transpose(
    kernel, strides, channels, height, width
):
    out_channels, in_channels = channels
    layer = SubpixelConv2DTranspose(out_channels, kernel, strides, padding="valid", use_bias=False)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, height, width, in_channels)).astype(np.float32)
    layer.build(x.shape)
    kernel_value = rng.normal(size=layer.kernel.shape).astype(np.float32)  # [kh, kw, out, in]
    layer.kernel.assign(kernel_value)
    out_h = (height - 1) * strides[0] + kernel[0]
    out_w = (width - 1) * strides[1] + kernel[1]
    expected = tf.nn.conv2d_transpose(
        x,
        kernel_value,
        [2, out_h, out_w, out_channels],
        strides=(1,) + strides + (1,),
        padding="VALID",
    ).numpy()
    actual = layer(x).numpy()
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * np.abs(expected).max())


def test_subpixel_transposed_conv_rejects_other_geometries():
    with pytest.raises(ValueError, match="kernel = 2 \\* stride"):
        SubpixelConv2DTranspose(3, 3, 2, padding="valid", use_bias=False)
    with pytest.raises(ValueError):
        SubpixelConv2DTranspose(3, 4, 2, padding="same", use_bias=False)
