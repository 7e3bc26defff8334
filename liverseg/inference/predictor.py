"""Runs a network over slice stacks of a volume, batch by batch.

The compiled function has one input signature ([batch, None, None, C]) and
every batch is padded to the batch size, so it is traced once per predictor,
whatever the volumes' sizes (``trace_count`` counts the traces); with
``jit_compile`` XLA compiles once per distinct in-plane size. Scaling to
0..255 happens per batch of stacks (never a float copy of the whole volume).

Batch size: a fixed number, or ``"auto"`` (the default): as many stacks as
fit ``batch_pixels`` pixels (512 x 512), between 1 and 8, so a batch is one
stack at 512x512, 4 at 256x256 and 6 for a LiTS tumour crop of ~230x190.
On CPU TensorFlow's activations grow with the batch's pixels (~0.22 GB per
512x512 stack) and oneDNN's allocator keeps that memory for the rest of the
process, while throughput does not grow beyond one 512x512 stack
(docs/BENCHMARKS.md); on a GPU pass a larger fixed batch. The batch size
depends only on the in-plane size, so the signature's batch dimension is
left open and the function is still traced once.

``mixed_precision`` runs a bfloat16-compute copy of the network (Keras
``mixed_bfloat16`` policy, float32 weights copied from the model); the
sigmoid is taken in float32 either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from liverseg.data import preprocess as pp
from liverseg.data.preprocess import check_shifts, check_slice_fusion
from liverseg.errors import ConfigError

MIN_NET_SIZE = pp.MIN_NET_SIZE

MIXED_POLICY = "mixed_bfloat16"

AUTO_BATCH = "auto"
MAX_AUTO_BATCH = 8
BATCH_PIXELS = 512 * 512
"""Pixel budget of an automatic batch: one stack at 512x512 (docs/BENCHMARKS.md)."""


def check_batch_size(batch_size) -> None:
    """ConfigError unless ``batch_size`` is a positive integer or ``"auto"``."""
    if batch_size == AUTO_BATCH:
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(
            f"batch_size must be a positive integer or {AUTO_BATCH!r}, got {batch_size!r}"
        )


def auto_batch_size(height: int, width: int, batch_pixels: int = BATCH_PIXELS) -> int:
    """Stacks of ``height`` x ``width`` that fit ``batch_pixels``, clamped to 1..8."""
    return int(min(max(batch_pixels // max(height * width, 1), 1), MAX_AUTO_BATCH))


@dataclasses.dataclass(frozen=True)
class PredictorOptions:
    """``batch_size``: stacks per network call, or ``"auto"`` (``batch_pixels`` per call)."""

    batch_size: int | str = AUTO_BATCH
    jit_compile: bool = False
    output: str = "fuse"
    mixed_precision: bool = False
    batch_pixels: int = BATCH_PIXELS

    def __post_init__(self):
        check_batch_size(self.batch_size)
        if (
            isinstance(self.batch_pixels, bool)
            or not isinstance(self.batch_pixels, int)
            or self.batch_pixels < 1
        ):
            raise ConfigError(f"batch_pixels must be a positive integer, got {self.batch_pixels!r}")

    def batch_size_for(self, height: int, width: int) -> int:
        """The batch size used for stacks of ``height`` x ``width`` pixels."""
        if self.batch_size == AUTO_BATCH:
            return auto_batch_size(height, width, self.batch_pixels)
        return self.batch_size


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
        fixed = None if options.batch_size == AUTO_BATCH else options.batch_size
        spec = tf.TensorSpec([fixed, None, None, self.number_slices], tf.float32)
        net = self.model

        def run(x):
            self.trace_count += 1
            outputs = net(x, training=False)
            logits = outputs[options.output] if isinstance(outputs, dict) else outputs
            return tf.sigmoid(tf.cast(logits, tf.float32))

        # autograph=False: nothing to convert, and AutoGraph warns on this closure
        self._fn = tf.function(
            run,
            input_signature=[spec],
            jit_compile=options.jit_compile,
            reduce_retracing=True,
            autograph=False,
        )

    def batch_size_for(self, height: int, width: int) -> int:
        """Stacks per call for ``height`` x ``width`` stacks (``PredictorOptions``)."""
        return self.options.batch_size_for(height, width)

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """``batch`` exactly [batch_size_for(h, w), h, w, c] float32 0..255 -> probabilities."""
        return self._fn(tf.constant(batch, tf.float32)).numpy()

    def predict(self, stacks: np.ndarray) -> np.ndarray:
        """``stacks`` [n, h, w, c] float32 0..255 -> probabilities [n, h, w, c]."""
        n = stacks.shape[0]
        b = self.batch_size_for(stacks.shape[1], stacks.shape[2])
        out = np.empty(stacks.shape, np.float32)
        for i in range(0, n, b):
            chunk = stacks[i : i + b]
            m = chunk.shape[0]
            if m < b:
                chunk = np.concatenate(
                    [chunk, np.zeros((b - m,) + chunk.shape[1:], np.float32)], axis=0
                )
            out[i : i + m] = self.predict_batch(chunk)[:m]
        return out


def stacks_for_slices(
    slice_ids: Sequence[int],
    num_slices: int,
    number_slices: int = pp.NUMBER_SLICES,
    fusion: str = "middle",
) -> tuple[np.ndarray, dict[int, list[tuple[int, int]]]]:
    """Distinct stack starts needed for ``slice_ids`` and each slice's (start, channel) list.

    ``fusion`` (``preprocess.SLICE_FUSIONS``): ``middle`` gives each slice its
    one original stack and channel; ``mean`` every stack that holds it.
    """
    check_slice_fusion(fusion)
    if fusion == "middle":
        choice = {int(k): [pp.slice_channel(int(k), num_slices, number_slices)] for k in slice_ids}
    else:
        choice = {int(k): pp.slice_stacks(int(k), num_slices, number_slices) for k in slice_ids}
    starts = np.array(sorted({s for pairs in choice.values() for s, _ in pairs}), dtype=np.int64)
    return starts, choice


def shift_image(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``a`` [batch, h, w, c] moved by ``rows`` and ``cols`` pixels (down / right when
    positive); the uncovered border repeats the edge. ``shift_image(x, -r, -c)`` moves back."""
    h, w = a.shape[1:3]
    pad = ((0, 0), (max(rows, 0), max(-rows, 0)), (max(cols, 0), max(-cols, 0)), (0, 0))
    r0, c0 = max(-rows, 0), max(-cols, 0)
    return np.pad(a, pad, mode="edge")[:, r0 : r0 + h, c0 : c0 + w]


def predict_slices(
    predictor: StackPredictor,
    hu: np.ndarray,
    intensity: tuple[float, float],
    slice_ids: Sequence[int] | None = None,
    region: tuple[slice, slice] | None = None,
    *,
    fusion: str = "middle",
    shifts: Sequence[tuple[int, int]] = (),
    stats: dict[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Probability of every requested slice, from its stack(s) as ``fusion`` says.

    ``hu`` is the [x, y, z] volume in HU (any dtype); ``region`` optionally
    crops rows and columns (the tumour ROI); the stacks are the volume's
    consecutive slices (neighbours of a requested slice are used whether or
    not they are requested themselves). ``fusion``: ``middle``, the original
    channel choice (``preprocess.slice_channel``), or ``mean``, the average
    of the probabilities of every stack holding the slice (the same stacks
    when every slice is requested; two more at most otherwise). ``shifts``:
    test-time augmentation, the mean of the plain prediction and of one
    prediction per (rows, cols) shift of the input, moved back (one more
    network pass each). Returns
    float32 [h, w, len(slice_ids)] in the order of ``slice_ids``. ``stats``,
    when given, accumulates seconds under ``"preprocess"`` and
    ``"network"``; ``progress(done, total)`` is called after every batch
    (stacks done).
    """
    num_slices = hu.shape[2]
    c = predictor.number_slices
    if num_slices < c:
        raise ValueError(f"volume has {num_slices} slices; at least {c} are needed")
    if slice_ids is None:
        slice_ids = range(num_slices)
    slice_ids = [int(k) for k in slice_ids]
    rows, cols = region if region is not None else (slice(None), slice(None))
    starts, choice = stacks_for_slices(slice_ids, num_slices, c, fusion)
    shifts = check_shifts(shifts)
    lo, hi = intensity
    view = hu[rows, cols]
    h, w = view.shape[:2]
    result = np.zeros((h, w, len(slice_ids)), np.float32)
    wanted: dict[int, list[tuple[int, int]]] = {}
    for j, k in enumerate(slice_ids):
        for s, ch in choice[k]:
            wanted.setdefault(s, []).append((j, ch))
    b = predictor.batch_size_for(h, w)
    batch = np.zeros((b, h, w, c), np.float32)
    for i in range(0, len(starts), b):
        t0 = time.perf_counter()
        batch_starts = starts[i : i + b]
        for n, s in enumerate(batch_starts):
            batch[n] = pp.window_and_scale(view[:, :, s : s + c], lo, hi)
        batch[len(batch_starts) :] = 0.0
        t1 = time.perf_counter()
        probs = predictor.predict_batch(batch)
        for dr, dc in shifts:
            probs += shift_image(predictor.predict_batch(shift_image(batch, dr, dc)), -dr, -dc)
        if shifts:
            probs /= len(shifts) + 1
        for n, s in enumerate(batch_starts):
            for j, ch in wanted[int(s)]:
                result[:, :, j] += probs[n, :, :, ch]
        if stats is not None:
            stats["preprocess"] = stats.get("preprocess", 0.0) + (t1 - t0)
            stats["network"] = stats.get("network", 0.0) + (time.perf_counter() - t1)
        if progress is not None:
            progress(min(i + b, len(starts)), len(starts))
    if fusion == "mean":
        counts = np.array([len(choice[k]) for k in slice_ids], np.float32)
        result /= counts
    return result


def predict_volume(
    predictor: StackPredictor, hu: np.ndarray, intensity: tuple[float, float] | None = None
) -> np.ndarray:
    """Probability map [x, y, z] float32 of the whole volume."""
    if intensity is None:
        intensity = pp.intensity_range(hu)
    return predict_slices(predictor, hu, intensity)
