"""tf.data pipelines for the liver and tumour stages.

Both sources (volumes held in memory, or TFRecords written by
``tools/prepare.py``) give the same raw element: HU stack, the volume's
intensity range, label and loss mask. One shared map turns it into the model's
input: HU window, per-volume min-max to 0..255 float32, binary labels,
optional resize. Batches are padded to a fixed size (padding has a zero loss
mask, so it is excluded from the loss) which keeps one traced training step.

With ``PipelineOptions.augment``, training streams (``shuffle`` or ``repeat``)
augment each raw element in that same map, after cache/shuffle/repeat and
before windowing (``augment.py``), with a stateless seed made of the pipeline
seed, the input pipeline's shard and the element's position in the stream: a
seed gives one augmented stream. Evaluation pipelines (neither shuffled nor
repeated) are never augmented.

Element of the final dataset: ``{"image": [B,H,W,C] float32 0..255,
"label": [B,H,W,C] float32 0/1, "mask": [B,H,W,C] float32}``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from liverseg.data import preprocess as pp
from liverseg.data.augment import AugmentOptions, augment_example, check_patch_size
from liverseg.data.examples import Example, VolumeRecord, check_stage, iter_examples
from liverseg.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
    """How examples are shuffled, augmented, resized and batched."""

    batch_size: int = 1
    shuffle: bool = True
    repeat: bool = True
    seed: int = 0
    shuffle_buffer: int = 4096
    #: Resize every example to ``image_size`` x ``image_size`` (a documented
    #: deviation for small experiments); None keeps the native size.
    image_size: int | None = None
    #: Padded batch sizes are rounded up to a multiple of this.
    pad_multiple: int = 16
    cache: bool = True
    number_slices: int = pp.NUMBER_SLICES
    #: On-the-fly augmentation of training streams; None = none (the output is
    #: then exactly the unaugmented pipeline's).
    augment: AugmentOptions | None = None
    #: (rows, cols) of every augmented training example: a random crop of
    #: larger examples, a random placement in air of smaller ones. Only with
    #: ``augment`` (``AugmentOptions.crop_only()`` for crops alone); evaluation
    #: pipelines keep whole examples. None keeps each example's size.
    patch_size: tuple[int, int] | None = None
    #: Share of training examples drawn from those holding foreground (label
    #: 1 somewhere), as nnU-Net forces a third of its patches to hold a
    #: foreground class: small structures (tumours) are otherwise seen rarely.
    #: In-memory training streams only; 0 draws every example alike.
    foreground_fraction: float = 0.0

    def __post_init__(self):
        if not 0.0 <= float(self.foreground_fraction) < 1.0:
            raise ConfigError(
                f"foreground_fraction must be in [0, 1), got {self.foreground_fraction!r}"
            )
        if self.augment is not None and not isinstance(self.augment, AugmentOptions):
            raise ConfigError(
                f"augment must be AugmentOptions or None, got {type(self.augment).__name__}"
            )
        if self.patch_size is not None:
            object.__setattr__(self, "patch_size", check_patch_size(self.patch_size))
            if self.augment is None:
                raise ConfigError(
                    "patch_size is only used with augment; pass "
                    "augment=AugmentOptions.crop_only() for plain random crops"
                )

    @property
    def augmenting(self) -> bool:
        """True when this pipeline augments (a training stream with ``augment``)."""
        return self.augment is not None and (self.shuffle or self.repeat)


def window_scale_tf(hu: tf.Tensor, lo: tf.Tensor, hi: tf.Tensor) -> tf.Tensor:
    """TensorFlow twin of :func:`liverseg.data.preprocess.window_and_scale`."""
    x = tf.clip_by_value(tf.cast(hu, tf.float32), pp.HU_WINDOW[0], pp.HU_WINDOW[1])
    lo = tf.cast(lo, tf.float32)
    scale = tf.math.divide_no_nan(tf.constant(255.0, tf.float32), tf.cast(hi, tf.float32) - lo)
    return (x - lo) * scale


def _to_model_input(raw: dict, image_size: int | None) -> dict:
    image = window_scale_tf(raw["hu"], raw["lo"], raw["hi"])
    label = tf.cast(raw["label"] > 0, tf.float32)
    mask = tf.cast(raw["mask"], tf.float32)
    if image_size:
        size = (image_size, image_size)
        image = tf.image.resize(image, size, method="bilinear")
        label = tf.image.resize(label, size, method="nearest")
        mask = tf.image.resize(mask, size, method="bilinear")
    return {"image": image, "label": label, "mask": mask}


def _padded_shape(max_h: int, max_w: int, options: PipelineOptions) -> tuple[int, int]:
    if options.image_size:
        return options.image_size, options.image_size
    if options.augmenting and options.patch_size:
        max_h, max_w = options.patch_size
    m = options.pad_multiple
    return int(math.ceil(max_h / m) * m), int(math.ceil(max_w / m) * m)


def _stream(
    ds: tf.data.Dataset, num_examples: int, options: PipelineOptions, seed_offset: int = 0
) -> tf.data.Dataset:
    """Cached, shuffled and repeated as the options say."""
    if options.cache:
        ds = ds.cache()
    if options.shuffle:
        ds = ds.shuffle(
            min(max(num_examples, 1), options.shuffle_buffer),
            seed=options.seed + seed_offset,
            reshuffle_each_iteration=True,
        )
    if options.repeat:
        ds = ds.repeat()
    return ds


def _finish(
    ds: tf.data.Dataset, max_hw: tuple[int, int], options: PipelineOptions, shard_index: int = 0
) -> tf.data.Dataset:
    """A stream of raw elements as model inputs (augmented when training), batched."""
    if options.augmenting:
        base = tf.constant([options.seed, shard_index], tf.int64)

        def augmented(position, raw):
            seed = tf.random.experimental.stateless_fold_in(base, position)
            raw = augment_example(raw, seed, options.augment, options.patch_size)
            return _to_model_input(raw, options.image_size)

        # In order, so that a seed gives one stream (the work per element is even).
        ds = ds.enumerate().map(augmented, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(
            lambda raw: _to_model_input(raw, options.image_size),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=not options.shuffle,
        )
    h, w = _padded_shape(*max_hw, options)
    c = options.number_slices
    ds = ds.padded_batch(
        options.batch_size,
        padded_shapes={"image": [h, w, c], "label": [h, w, c], "mask": [h, w, c]},
        drop_remainder=options.repeat,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def examples_from_records(
    records: Sequence[VolumeRecord],
    stage: str,
    number_slices: int = pp.NUMBER_SLICES,
    crop_variant: pp.CropVariant = "original",
    mask_source: str = "gt",
) -> list[Example]:
    check_stage(stage)
    out: list[Example] = []
    for record in records:
        out.extend(iter_examples(record, stage, number_slices, crop_variant, mask_source))
    return out


def dataset_from_examples(
    examples: Sequence[Example], options: PipelineOptions, num_shards: int = 1, shard_index: int = 0
) -> tf.data.Dataset:
    """A dataset over in-memory examples (NIfTI directories, tests, the demo).

    With ``num_shards`` > 1 this input pipeline keeps every ``num_shards``-th
    example starting at ``shard_index`` (one pipeline per worker).
    """
    if not examples:
        raise ValueError("no training examples: is there any liver in the labels?")
    all_examples = examples
    examples = list(examples)[shard_index::num_shards]
    hu_dtype = np.result_type(*{e.hu.dtype for e in examples})
    c = options.number_slices
    signature = {
        "hu": tf.TensorSpec([None, None, c], tf.as_dtype(hu_dtype)),
        "lo": tf.TensorSpec([], tf.float32),
        "hi": tf.TensorSpec([], tf.float32),
        "label": tf.TensorSpec([None, None, c], tf.uint8),
        "mask": tf.TensorSpec([None, None, c], tf.float32),
    }

    def source(subset):
        def gen():
            for e in subset:
                yield {
                    "hu": e.hu.astype(hu_dtype, copy=False),
                    "lo": np.float32(e.lo),
                    "hi": np.float32(e.hi),
                    "label": e.label,
                    "mask": e.mask,
                }

        return tf.data.Dataset.from_generator(gen, output_signature=signature)

    ds = _stream(source(examples), len(examples), options)
    foreground = [e for e in examples if e.label.any()]
    f = float(options.foreground_fraction)
    if f > 0 and options.shuffle and options.repeat and foreground:
        fg = _stream(source(foreground), len(foreground), options, seed_offset=1)
        ds = tf.data.Dataset.sample_from_datasets([fg, ds], weights=[f, 1.0 - f], seed=options.seed)
    max_h = max(e.hu.shape[0] for e in all_examples)
    max_w = max(e.hu.shape[1] for e in all_examples)
    return _finish(ds, (max_h, max_w), options, shard_index)


def dataset_from_tfrecords(
    directory: str, options: PipelineOptions, num_shards: int = 1, shard_index: int = 0
) -> tf.data.Dataset:
    """A dataset over the shards and summary written by ``tools/prepare.py``.

    With ``num_shards`` > 1, records are split between input pipelines.
    """
    from liverseg.data import tfrecord

    summary = tfrecord.read_summary(directory)
    files = tfrecord.shard_paths(directory, summary)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if options.shuffle:
        ds = ds.shuffle(len(files), seed=options.seed, reshuffle_each_iteration=True)
    # Unshuffled pipelines read shards in order (deterministic evaluation).
    cycle = min(4, len(files)) if options.shuffle else 1
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=cycle,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not options.shuffle,
    )
    if num_shards > 1:
        ds = ds.shard(num_shards, shard_index)
    ds = ds.map(tfrecord.parse_fn(summary["number_slices"]), num_parallel_calls=tf.data.AUTOTUNE)
    ds = _stream(ds, summary["num_examples"] // max(num_shards, 1), options)
    return _finish(ds, (summary["max_height"], summary["max_width"]), options, shard_index)
