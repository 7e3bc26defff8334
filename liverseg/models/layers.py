"""Building blocks of DS-SFFNet: bilinear kernels, centre crop, FFB.

The custom objects are registered with Keras so that ``.keras`` files holding
a liverseg network load in safe mode without ``custom_objects``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

_PACKAGE = "liverseg"


def bilinear_kernel(size: int, channels: int) -> np.ndarray:
    """Bilinear upsampling kernel [size, size, channels, channels] (float32).

    ``f = (size+1)//2``, centre ``c = f-1`` (odd size) or ``f-0.5`` (even),
    ``w[i, j] = (1-|i-c|/f) * (1-|j-c|/f)``, placed on the channel diagonal
    (output channel o reads only input channel o), as the original
    ``interp_surgery`` does for every variable whose name contains ``-up``.
    """
    if size < 1 or channels < 1:
        raise ValueError(f"bilinear kernel needs size, channels >= 1, got {size}, {channels}")
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1.0 - np.abs(np.arange(size, dtype=np.float64) - centre) / factor
    weights = np.outer(taps, taps)
    kernel = np.zeros((size, size, channels, channels), np.float64)
    for c in range(channels):
        kernel[:, :, c, c] = weights
    return kernel.astype(np.float32)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Bilinear(keras.initializers.Initializer):
    """Initialiser giving ``bilinear_kernel`` for a square, channel-preserving kernel."""

    def __call__(self, shape, dtype=None):
        if len(shape) != 4 or shape[0] != shape[1] or shape[2] != shape[3]:
            raise ValueError(f"bilinear kernels must be [k, k, c, c], got shape {tuple(shape)}")
        return ops.convert_to_tensor(
            bilinear_kernel(int(shape[0]), int(shape[2])), dtype=dtype or "float32"
        )

    def get_config(self):
        return {}


def crop_offset(size_in: int, size_out: int) -> int:
    """Offset of the original ``crop_features``: ``(size_in - size_out) // 2``."""
    return (size_in - size_out) // 2


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CropToReference(keras.layers.Layer):
    """Centre-crops ``x`` [N, h, w, C] to the height and width of ``reference``.

    Offsets are ``(in - out) // 2`` per axis, computed from the runtime shapes,
    so the layer works with unknown H, W inside ``tf.function``. Where sizes
    already agree the slice is the identity.
    """

    def call(self, inputs):
        x, reference = inputs
        x_shape = ops.shape(x)
        ref_shape = ops.shape(reference)
        top = (x_shape[1] - ref_shape[1]) // 2
        left = (x_shape[2] - ref_shape[2]) // 2
        return x[:, top : top + ref_shape[1], left : left + ref_shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = input_shape
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SubpixelConv2DTranspose(keras.layers.Conv2DTranspose):
    """VALID transposed conv with kernel 2*stride, computed as conv + depth_to_space.

    Same weights ([k, k, out, in]) and the same result as
    ``tf.nn.conv2d_transpose`` up to float32 rounding: output block (I, J) of
    size stride x stride only sees inputs (I-1..I, J-1..J), so a 2x2 VALID
    conv over the input padded by one pixel, with stride*stride*out channels,
    followed by ``depth_to_space`` gives all (in+1)*stride = (in-1)*stride +
    kernel rows and columns. TensorFlow's CPU transposed conv is about ten
    times slower than this at kernel 4, stride 2.
    """

    def __init__(self, filters, kernel_size, strides, **kwargs):
        super().__init__(filters, kernel_size, strides=strides, **kwargs)
        if (
            self.padding != "valid"
            or self.kernel_size[0] != 2 * self.strides[0]
            or self.kernel_size[1] != 2 * self.strides[1]
            or self.use_bias
            or self.data_format != "channels_last"
            or self.dilation_rate != (1, 1)
        ):
            raise ValueError(
                "SubpixelConv2DTranspose needs VALID padding, kernel = 2 * stride, "
                "no bias, channels_last"
            )

    def subpixel_kernel(self):
        """Rearranges [2s, 2s, out, in] to the [2, 2, in, s*s*out] conv kernel."""
        sh, sw = self.strides
        kernel = ops.reshape(self.kernel, (2, sh, 2, sw, self.filters, -1))
        kernel = ops.flip(kernel, axis=(0, 2))  # window row 0 reads the input above the block
        kernel = ops.transpose(kernel, (0, 2, 5, 1, 3, 4))  # [2, 2, in, sh, sw, out]
        return ops.reshape(kernel, (2, 2, -1, sh * sw * self.filters))

    def call(self, inputs):
        sh, sw = self.strides
        padded = ops.pad(inputs, ((0, 0), (1, 1), (1, 1), (0, 0)))
        blocks = ops.conv(padded, self.subpixel_kernel(), strides=1, padding="valid")
        if sh == sw:
            return tf.nn.depth_to_space(blocks, sh)
        shape = ops.shape(blocks)
        blocks = ops.reshape(blocks, (shape[0], shape[1], shape[2], sh, sw, self.filters))
        blocks = ops.transpose(blocks, (0, 1, 3, 2, 4, 5))
        return ops.reshape(blocks, (shape[0], shape[1] * sh, shape[2] * sw, self.filters))


def feature_fusion_block(
    x, prefix: str, *, make_initializer: Callable[[], Any], br2_activation=None, dtype=None
):
    """Residual attention FFB: ``x + x * sigmoid(br_2(relu(br_1(x))))``.

    Convs ``<prefix>_br_1`` (ReLU) and ``<prefix>_br_2`` are 3x3, SAME, with
    bias and as many channels as ``x``, kernels from ``make_initializer()``;
    ``br2_activation="relu"`` reproduces the original tumour net's
    ``add_up_k_br_2``. The result is named ``<prefix>_att``.
    """
    channels = x.shape[-1]
    conv_kw = dict(padding="same", bias_initializer="zeros", dtype=dtype)
    branch = keras.layers.Conv2D(
        channels,
        3,
        activation="relu",
        name=f"{prefix}_br_1",
        kernel_initializer=make_initializer(),
        **conv_kw,
    )(x)
    branch = keras.layers.Conv2D(
        channels,
        3,
        activation=br2_activation,
        name=f"{prefix}_br_2",
        kernel_initializer=make_initializer(),
        **conv_kw,
    )(branch)
    gate = keras.layers.Activation("sigmoid", name=f"{prefix}_gate", dtype=dtype)(branch)
    attended = keras.layers.Multiply(name=f"{prefix}_mul", dtype=dtype)([x, gate])
    return keras.layers.Add(name=f"{prefix}_att", dtype=dtype)([x, attended])
