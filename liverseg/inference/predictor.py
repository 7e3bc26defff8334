"""Runs a network over slice stacks of a volume, batch by batch.

The compiled function has one input signature ([batch, None, None, C]) and
every batch is padded to ``batch_size``, so it is traced once per predictor,
whatever the volumes' sizes (``trace_count`` counts the traces); with
``jit_compile`` XLA compiles once per distinct in-plane size. Scaling to
0..255 happens per batch of stacks (never a float copy of the whole volume).

``mixed_precision`` runs a bfloat16-compute copy of the network (Keras
``mixed_bfloat16`` policy, float32 weights copied from the model); the
sigmoid is taken in float32 either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from liverseg.data import preprocess as pp
from liverseg.errors import ConfigError

MIN_NET_SIZE = 16
"""Smallest in-plane size the networks accept (four 2x2 poolings)."""

MIXED_POLICY = "mixed_bfloat16"


@dataclasses.dataclass(frozen=True)
class PredictorOptions:
    batch_size: int = 8
    jit_compile: bool = False
    output: str = "fuse"
    mixed_precision: bool = False

    def __post_init__(self):
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) \
                or self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size!r}")


@contextlib.contextmanager
def _global_policy(name: str):
    import keras

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def bfloat16_copy(model):
    """The same liverseg network built under the ``mixed_bfloat16`` policy, same weights.

    Variables stay float32; convolutions compute in bfloat16. Only networks
    built by ``liverseg.models`` can be rebuilt (ConfigError otherwise).
    """
    from liverseg.models import build_from_config, model_config_of

    config = model_config_of(model)
    with _global_policy(MIXED_POLICY):
        copy = build_from_config(config)
    copy.set_weights(model.get_weights())
    return copy


class StackPredictor:
    """Sigmoid probabilities of a model's main output for stacks of slices."""

    def __init__(self, model, options: PredictorOptions = PredictorOptions()):
        self.source_model = model
        self.model = bfloat16_copy(model) if options.mixed_precision else model
        self.options = options
        self.number_slices = int(model.inputs[0].shape[-1])
        self.trace_count = 0
        spec = tf.TensorSpec([options.batch_size, None, None, self.number_slices], tf.float32)
        net = self.model

        def run(x):
            self.trace_count += 1
            outputs = net(x, training=False)
            logits = outputs[options.output] if isinstance(outputs, dict) else outputs
            return tf.sigmoid(tf.cast(logits, tf.float32))

        self._fn = tf.function(run, input_signature=[spec], jit_compile=options.jit_compile,
                               reduce_retracing=True)

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """``batch`` exactly [batch_size, h, w, c] float32 0..255 -> probabilities."""
        return self._fn(tf.constant(batch, tf.float32)).numpy()

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
            out[i:i + m] = self.predict_batch(chunk)[:m]
        return out


def stacks_for_slices(slice_ids: Sequence[int], num_slices: int,
                      number_slices: int = pp.NUMBER_SLICES) -> tuple[np.ndarray, dict[int, tuple[int, int]]]:
    """Distinct stack starts needed for ``slice_ids`` and each slice's (start, channel)."""
    choice = {int(k): pp.slice_channel(int(k), num_slices, number_slices) for k in slice_ids}
    starts = np.array(sorted({s for s, _ in choice.values()}), dtype=np.int64)
    return starts, choice


def predict_slices(predictor: StackPredictor, hu: np.ndarray, intensity: tuple[float, float],
                   slice_ids: Sequence[int] | None = None,
                   region: tuple[slice, slice] | None = None, *,
                   stats: dict[str, float] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Probability of every requested slice with the original channel choice.

    ``hu`` is the [x, y, z] volume in HU (any dtype); ``region`` optionally
    crops rows and columns (the tumour ROI); the stacks are the volume's
    consecutive slices (neighbours of a requested slice are used whether or
    not they are requested themselves). Returns float32
    [h, w, len(slice_ids)] in the order of ``slice_ids``. ``stats``, when
    given, accumulates seconds under ``"preprocess"`` and ``"network"``;
    ``progress(done, total)`` is called after every batch (stacks done).
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
    batch = np.zeros((b, h, w, c), np.float32)
    for i in range(0, len(starts), b):
        t0 = time.perf_counter()
        batch_starts = starts[i:i + b]
        for n, s in enumerate(batch_starts):
            batch[n] = pp.window_and_scale(view[:, :, s:s + c], lo, hi)
        batch[len(batch_starts):] = 0.0
        t1 = time.perf_counter()
        probs = predictor.predict_batch(batch)
        for n, s in enumerate(batch_starts):
            for j, ch in wanted[int(s)]:
                result[:, :, j] = probs[n, :, :, ch]
        if stats is not None:
            stats["preprocess"] = stats.get("preprocess", 0.0) + (t1 - t0)
            stats["network"] = stats.get("network", 0.0) + (time.perf_counter() - t1)
        if progress is not None:
            progress(min(i + b, len(starts)), len(starts))
    return result


def predict_volume(predictor: StackPredictor, hu: np.ndarray,
                   intensity: tuple[float, float] | None = None) -> np.ndarray:
    """Probability map [x, y, z] float32 of the whole volume."""
    if intensity is None:
        intensity = pp.intensity_range(hu)
    return predict_slices(predictor, hu, intensity)
