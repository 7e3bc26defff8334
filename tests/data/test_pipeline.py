"""tf.data pipelines and TFRecords: same elements from memory and from prepare.py."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from liverseg.data import pipeline, tfrecord
from liverseg.data import preprocess as pp
from liverseg.data.examples import VolumeRecord, iter_examples, tumor_starts
from liverseg.errors import ConfigError
from liverseg.phantoms.training import write_phantoms
from liverseg.training.prepare import prepare

ROOT = Path(__file__).resolve().parents[2]


def _record(seed=0, shape=(32, 40, 7)):
    rng = np.random.default_rng(seed)
    hu = rng.integers(-300, 400, shape).astype(np.int16)
    labels = np.zeros(shape, np.uint8)
    labels[5:20, 10:30, 1:6] = 1
    labels[8:12, 12:16, 2:4] = 2
    return VolumeRecord(str(seed), hu, labels)


def test_liver_examples_are_triplets_with_binarised_labels():
    rec = _record()
    examples = list(iter_examples(rec, "liver"))
    assert [e.start for e in examples] == [0, 1, 2, 3, 4]
    e = examples[2]
    np.testing.assert_array_equal(e.hu, rec.hu[:, :, 2:5])
    np.testing.assert_array_equal(e.label, (rec.labels[:, :, 2:5] > 0).astype(np.uint8))
    assert (e.lo, e.hi) == pp.intensity_range(rec.hu)
    np.testing.assert_array_equal(e.mask, 1.0)


def test_tumor_examples_are_roi_crops_of_liver_slices():
    rec = _record()
    box = pp.liver_roi_box(rec.labels >= 1)
    assert box == pp.RoiBox(5, 19, 10, 29)
    examples = list(iter_examples(rec, "tumor"))
    # Slices 1..5 hold 300 liver pixels (> 500 * 32*40/512^2 = 2.44); stacks 0..4 centred on 1..5.
    assert [e.start for e in examples] == list(tumor_starts(rec.labels)) == [0, 1, 2, 3, 4]
    e = examples[1]
    assert e.hu.shape == (14, 19, 3)  # original crop drops the last row and column
    np.testing.assert_array_equal(e.label, (rec.labels[5:19, 10:29, 1:4] == 2).astype(np.uint8))
    np.testing.assert_array_equal(e.mask, (rec.labels[5:19, 10:29, 1:4] >= 1).astype(np.float32))
    paper = list(iter_examples(rec, "tumor", crop_variant="paper"))
    assert paper[0].hu.shape == (15, 20, 3)


def test_dataset_elements_are_scaled_and_padded():
    rec = _record()
    examples = list(iter_examples(rec, "tumor"))
    opts = pipeline.PipelineOptions(batch_size=2, shuffle=False, repeat=False)
    batches = list(pipeline.dataset_from_examples(examples, opts))
    assert [b["image"].shape[0] for b in batches] == [2, 2, 1]
    b = batches[0]
    assert b["image"].shape == (2, 16, 32, 3)  # 14x19 padded to multiples of 16
    lo, hi = pp.intensity_range(rec.hu)
    want = pp.window_and_scale(examples[0].hu, lo, hi)
    np.testing.assert_allclose(b["image"][0, :14, :19].numpy(), want, rtol=1e-6, atol=1e-4)
    assert float(tf.reduce_sum(b["mask"][0, 14:])) == 0.0  # padding excluded from the loss
    assert float(tf.reduce_sum(b["mask"][0, :, 19:])) == 0.0


def test_sharding_splits_examples_between_pipelines():
    examples = list(iter_examples(_record(), "liver"))
    opts = pipeline.PipelineOptions(batch_size=1, shuffle=False, repeat=False)
    starts = []
    for i in range(2):
        ds = pipeline.dataset_from_examples(examples, opts, num_shards=2, shard_index=i)
        starts.append(len(list(ds)))
    assert starts == [3, 2]


def test_image_size_resizes(tmp_path):
    examples = list(iter_examples(_record(), "tumor"))
    opts = pipeline.PipelineOptions(batch_size=2, shuffle=False, repeat=False, image_size=24)
    b = next(iter(pipeline.dataset_from_examples(examples, opts)))
    assert b["image"].shape == (2, 24, 24, 3)
    assert set(np.unique(b["label"].numpy())) <= {0.0, 1.0}


def test_tfrecords_round_trip_equals_memory(tmp_path):
    rec = _record(3)
    examples = list(iter_examples(rec, "liver"))
    summary = tfrecord.write_shards(
        iter(examples), tmp_path, stage="liver", number_slices=3, examples_per_shard=2
    )
    assert summary["num_examples"] == 5 and len(summary["shards"]) == 3
    assert json.loads((tmp_path / "summary.json").read_text())["shard_sizes"] == [2, 2, 1]
    opts = pipeline.PipelineOptions(batch_size=5, shuffle=False, repeat=False)
    from_records = next(iter(pipeline.dataset_from_tfrecords(str(tmp_path), opts)))
    from_memory = next(iter(pipeline.dataset_from_examples(examples, opts)))
    for key in ("image", "label", "mask"):
        np.testing.assert_array_equal(from_records[key].numpy(), from_memory[key].numpy())


def test_prepare_two_phantoms_give_36_liver_triplets(tmp_path):
    data = tmp_path / "data"
    write_phantoms(data, 2, (64, 64, 20), seed=0)
    out = tmp_path / "prepared"
    proc = subprocess.run(
        [
            sys.executable,
            "tools/prepare.py",
            f"--data_dir={data}",
            f"--output_dir={out}",
            "--stage=liver",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_examples"] == 36 and summary["num_cases"] == 2
    again = subprocess.run(
        [
            sys.executable,
            "tools/prepare.py",
            f"--data_dir={data}",
            f"--output_dir={out}",
            "--stage=liver",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        again.returncode == 1 and "summary.json" in again.stderr and "Traceback" not in again.stderr
    )
    tumor = prepare(data, tmp_path / "tumor", "tumor")
    assert tumor["num_examples"] > 0 and tumor["loss_mask"] == "gt"


def test_prepared_stage_mismatch_is_refused(tmp_path):
    from liverseg.errors import LayoutError
    from liverseg.training.data import build_run_data

    tfrecord.write_shards(
        iter(iter_examples(_record(), "liver")), tmp_path, stage="liver", number_slices=3
    )
    with pytest.raises(LayoutError, match="prepared for stage"):
        build_run_data(
            stage="tumor",
            data_dir=str(tmp_path),
            options=pipeline.PipelineOptions(),
            val_fraction=0,
            seed=0,
            crop_variant="original",
            mask_source="gt",
            liver_model=None,
            cache_dir=tmp_path / "c",
        )


def test_foreground_oversampling_draws_the_requested_share():
    """A fifth of the examples hold foreground; with foreground_fraction 0.5 about
    0.5 + 0.5 * 0.2 = 60 % of the drawn stream does, without it about 20 %."""
    from liverseg.data.examples import Example

    rng = np.random.default_rng(0)
    examples = []
    for i in range(50):
        label = np.zeros((16, 16, 3), np.uint8)
        if i % 5 == 0:
            label[4:8, 4:8] = 1
        examples.append(
            Example(
                "0",
                i,
                rng.integers(-100, 100, (16, 16, 3)).astype(np.int16),
                -150.0,
                250.0,
                label,
                np.ones((16, 16, 3), np.float32),
            )
        )

    def share(fraction):
        options = pipeline.PipelineOptions(batch_size=1, seed=3, foreground_fraction=fraction)
        ds = pipeline.dataset_from_examples(examples, options).take(2000)
        return np.mean([float(b["label"].numpy().any()) for b in ds])

    assert share(0.5) == pytest.approx(0.6, abs=0.05)
    assert share(0.0) == pytest.approx(0.2, abs=0.05)
    with pytest.raises(ConfigError, match="foreground_fraction"):
        pipeline.PipelineOptions(foreground_fraction=1.0)
