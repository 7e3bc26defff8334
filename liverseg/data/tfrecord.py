"""Sharded TFRecords of training examples, and their ``summary.json``.

HU values are stored losslessly (int16 when the volume is integral, else
float32) with the volume's intensity range, so windowing happens in the
pipeline and the records serve any window later. Each shard is written to a
temporary name and renamed; ``summary.json`` is written last, so a directory
with a summary is complete.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import tensorflow as tf

from liverseg.data.examples import Example
from liverseg.errors import LayoutError
from liverseg.utils.atomic import atomic_path, atomic_write_text

SUMMARY_NAME = "summary.json"
FORMAT_VERSION = 1


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _floats(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def serialize(example: Example) -> bytes:
    hu = example.hu
    if hu.dtype != np.int16:
        hu = hu.astype(np.float32)
    features = {
        "hu": _bytes(np.ascontiguousarray(hu).tobytes()),
        "hu_is_int16": _ints([int(hu.dtype == np.int16)]),
        "label": _bytes(np.ascontiguousarray(example.label, np.uint8).tobytes()),
        "mask": _bytes(np.ascontiguousarray(example.mask, np.float32).tobytes()),
        "shape": _ints(example.hu.shape),
        "range": _floats([example.lo, example.hi]),
        "case_id": _bytes(example.case_id.encode()),
        "start": _ints([example.start]),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def parse_fn(number_slices: int):
    """Returns a function turning a serialized record into the pipeline's raw element."""
    spec = {
        "hu": tf.io.FixedLenFeature([], tf.string),
        "hu_is_int16": tf.io.FixedLenFeature([], tf.int64),
        "label": tf.io.FixedLenFeature([], tf.string),
        "mask": tf.io.FixedLenFeature([], tf.string),
        "shape": tf.io.FixedLenFeature([3], tf.int64),
        "range": tf.io.FixedLenFeature([2], tf.float32),
    }

    def parse(serialized):
        f = tf.io.parse_single_example(serialized, spec)
        shape = tf.cast(f["shape"], tf.int32)
        hu = tf.cond(
            f["hu_is_int16"] > 0,
            lambda: tf.cast(tf.io.decode_raw(f["hu"], tf.int16), tf.float32),
            lambda: tf.io.decode_raw(f["hu"], tf.float32),
        )
        hu = tf.reshape(hu, shape)
        hu.set_shape([None, None, number_slices])
        label = tf.reshape(tf.io.decode_raw(f["label"], tf.uint8), shape)
        label.set_shape([None, None, number_slices])
        mask = tf.reshape(tf.io.decode_raw(f["mask"], tf.float32), shape)
        mask.set_shape([None, None, number_slices])
        return {"hu": hu, "lo": f["range"][0], "hi": f["range"][1], "label": label, "mask": mask}

    return parse


def write_shards(
    examples: Iterable[Example],
    output_dir: str | os.PathLike,
    *,
    stage: str,
    number_slices: int,
    examples_per_shard: int = 512,
    overwrite: bool = False,
    extra_summary: dict | None = None,
) -> dict:
    """Writes ``output_dir/{stage}-NNNNN.tfrecord`` shards and ``summary.json``."""
    out = Path(output_dir)
    summary_path = out / SUMMARY_NAME
    if summary_path.exists() and not overwrite:
        from liverseg.errors import OutputError

        raise OutputError(summary_path, "prepared data exists; pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    shards: list[str] = []
    counts: list[int] = []
    max_h = max_w = 0
    cases: set[str] = set()
    remaining = iter(examples)
    while (first := next(remaining, None)) is not None:
        name = f"{stage}-{len(shards):05d}.tfrecord"
        count = 0
        with (
            atomic_path(out / name, overwrite=True) as tmp,
            tf.io.TFRecordWriter(str(tmp)) as writer,
        ):
            for example in itertools.chain(
                [first], itertools.islice(remaining, examples_per_shard - 1)
            ):
                writer.write(serialize(example))
                count += 1
                max_h = max(max_h, example.hu.shape[0])
                max_w = max(max_w, example.hu.shape[1])
                cases.add(example.case_id)
        shards.append(name)
        counts.append(count)
    summary = {
        "format_version": FORMAT_VERSION,
        "stage": stage,
        "number_slices": number_slices,
        "num_examples": int(sum(counts)),
        "num_cases": len(cases),
        "cases": sorted(cases, key=lambda c: (len(c), c)),
        "max_height": max_h,
        "max_width": max_w,
        "shards": shards,
        "shard_sizes": counts,
    }
    if extra_summary:
        summary.update(extra_summary)
    atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n", overwrite=True)
    return summary


def is_prepared_dir(directory: str | os.PathLike) -> bool:
    return (Path(directory) / SUMMARY_NAME).is_file()


def read_summary(directory: str | os.PathLike) -> dict:
    path = Path(directory) / SUMMARY_NAME
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise LayoutError(path, "no summary.json: not a prepare.py output directory") from None
    except (OSError, ValueError) as exc:
        raise LayoutError(path, f"unreadable summary: {exc}") from None
    for key in ("num_examples", "number_slices", "max_height", "max_width", "shards", "stage"):
        if key not in summary:
            raise LayoutError(path, f"summary lacks {key!r}")
    return summary


def shard_paths(directory: str | os.PathLike, summary: dict) -> list[str]:
    paths = [str(Path(directory) / name) for name in summary["shards"]]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise LayoutError(
            missing[0], f"shard listed in summary.json is missing ({len(missing)} missing)"
        )
    return paths


def find_corrupt_shard(paths: list[str]) -> tuple[str, str] | None:
    """The first shard whose records fail their checksums, with TensorFlow's message.

    Reads every record of every shard (run only after a read failed, to name
    the file: the input pipeline's own error does not say which one).
    """
    for path in paths:
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
            return path, str(exc.message).splitlines()[0][:200]
    return None
