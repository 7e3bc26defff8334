"""Runs a network over slice stacks of a volume, batch by batch.

The compiled function has one input signature ([batch, None, None, C]) and
every batch is padded to ``batch_size``, so it is traced once per predictor,
whatever the volumes' sizes; with ``jit_compile`` XLA compiles once per
distinct in-plane size. Scaling to 0..255 happens per batch (never a float
copy of the whole volume).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

from liverseg.data import preprocess as pp


@dataclasses.dataclass(frozen=True)
class PredictorOptions:
    batch_size: int = 8
    jit_compile: bool = False
    output: str = "fuse"


class StackPredictor:
    """Sigmoid probabilities of a model's main output for stacks of slices."""

    def __init__(self, model, options: PredictorOptions = PredictorOptions()):
        self.model = model
        self.options = options
        self.number_slices = int(model.inputs[0].shape[-1])
        self.trace_count = 0
        spec = tf.TensorSpec([options.batch_size, None, None, self.number_slices], tf.float32)

        def run(x):
            self.trace_count += 1
            outputs = model(x, training=False)
            return tf.sigmoid(tf.cast(outputs[options.output], tf.float32))

        self._fn = tf.function(run, input_signature=[spec], jit_compile=options.jit_compile,
                               reduce_retracing=True)

    def predict(self, stacks: np.ndarray) -> np.ndarray:
        """``stacks`` [n, h, w, c] float32 0..255 -> probabilities [n, h, w, c]."""
        n = stacks.shape[0]
        b = self.options.batch_size
        out = np.empty(stacks.shape, np.float32)
        for i in range(0, n, b):
            chunk = stacks[i:i + b]
            m = chunk.shape[0]
            if m < b:
                chunk = np.concatenate(
                    [chunk, np.zeros((b - m,) + chunk.shape[1:], np.float32)], axis=0)
            out[i:i + m] = self._fn(tf.constant(chunk, tf.float32)).numpy()[:m]
        return out


def stacks_for_slices(slice_ids: Sequence[int], num_slices: int,
                      number_slices: int = pp.NUMBER_SLICES) -> tuple[np.ndarray, dict[int, tuple[int, int]]]:
    """Distinct stack starts needed for ``slice_ids`` and each slice's (start, channel)."""
    choice = {int(k): pp.slice_channel(int(k), num_slices, number_slices) for k in slice_ids}
    starts = np.array(sorted({s for s, _ in choice.values()}), dtype=np.int64)
    return starts, choice


def predict_slices(predictor: StackPredictor, hu: np.ndarray, intensity: tuple[float, float],
                   slice_ids: Sequence[int] | None = None,
                   region: tuple[slice, slice] | None = None) -> np.ndarray:
    """Probability of every requested slice with the original channel choice.

    ``hu`` is the [x, y, z] volume in HU (any dtype); ``region`` optionally
    crops rows and columns (the tumour ROI). Returns float32
    [h, w, len(slice_ids)] in the order of ``slice_ids``.
    """
    num_slices = hu.shape[2]
    c = predictor.number_slices
    if num_slices < c:
        raise ValueError(f"volume has {num_slices} slices; at least {c} are needed")
    if slice_ids is None:
        slice_ids = range(num_slices)
    slice_ids = [int(k) for k in slice_ids]
    rows, cols = region if region is not None else (slice(None), slice(None))
    starts, choice = stacks_for_slices(slice_ids, num_slices, c)
    lo, hi = intensity
    view = hu[rows, cols]
    h, w = view.shape[:2]
    result = np.empty((h, w, len(slice_ids)), np.float32)
    wanted: dict[int, list[tuple[int, int]]] = {}
    for j, k in enumerate(slice_ids):
        s, ch = choice[k]
        wanted.setdefault(s, []).append((j, ch))
    b = predictor.options.batch_size
    for i in range(0, len(starts), b):
        batch_starts = starts[i:i + b]
        stacks = np.stack([pp.window_and_scale(view[:, :, s:s + c], lo, hi) for s in batch_starts])
        probs = predictor.predict(stacks)
        for n, s in enumerate(batch_starts):
            for j, ch in wanted[int(s)]:
                result[:, :, j] = probs[n, :, :, ch]
    return result


def predict_volume(predictor: StackPredictor, hu: np.ndarray,
                   intensity: tuple[float, float] | None = None) -> np.ndarray:
    """Probability map [x, y, z] float32 of the whole volume."""
    if intensity is None:
        intensity = pp.intensity_range(hu)
    return predict_slices(predictor, hu, intensity)
