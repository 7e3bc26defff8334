"""Training and validation datasets for a run, from NIfTI or TFRecords.

For the tumour stage with a liver model, the liver probabilities of every
training volume are computed once and cached in
``<model_dir>/cache/liver_probability/`` (keyed by the liver model's
fingerprint), then used as the loss mask on the ROI crops.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from liverseg.data import pipeline, tfrecord
from liverseg.data.examples import VolumeRecord
from liverseg.data.geometry import Geometry
from liverseg.utils.atomic import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunData:
    """``train(batch_size, num_shards, shard_index)`` builds one input pipeline."""

    train: Callable[[int, int, int], tf.data.Dataset]
    val: tf.data.Dataset | None
    num_train_examples: int
    num_val_examples: int
    train_cases: list[str]
    val_cases: list[str]
    #: The augmented examples' fixed (rows, cols), or None.
    patch_size: tuple[int, int] | None = None


AUTO_PATCH = "auto"


def auto_patch_size(shapes: Sequence[tuple[int, int]], stage: str) -> tuple[int, int]:
    """Patch (rows, cols) of a stage's training examples, multiples of 16, at
    least 32: for whole slices the median example size, rounded to the nearest
    multiple (nnU-Net's patch: larger slices are randomly cropped, and a
    network pass costs the patch's area); for the tumour stage's liver crops
    the 90th percentile rounded up, so nearly every crop is seen whole."""
    shapes = np.asarray(shapes, np.float64).reshape(-1, 2)
    if stage == "liver":
        sizes = np.round(np.median(shapes, axis=0) / 16) * 16
    else:
        sizes = np.ceil(np.percentile(shapes, 90, axis=0) / 16) * 16
    return tuple(int(max(32, v)) for v in sizes)


def model_fingerprint(model_path: str | os.PathLike) -> str:
    """Content hash of a saved model's weights and network config (not of the
    tuning and plans files written beside them later)."""
    from liverseg.models.io import CONFIG_FILE, WEIGHTS_FILE

    p = Path(model_path)
    if not p.exists():
        from liverseg.errors import CheckpointError

        raise CheckpointError(p, "liver model not found")
    files = (
        [p / name for name in (CONFIG_FILE, WEIGHTS_FILE) if (p / name).is_file()]
        if p.is_dir()
        else [p]
    )
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


class LiverProbabilityCache:
    """Computes (once) and stores a liver model's probabilities per training case."""

    def __init__(self, liver_model_path: str, cache_dir: str | os.PathLike, batch_size: int = 8):
        self.liver_model_path = liver_model_path
        self.dir = Path(cache_dir) / model_fingerprint(liver_model_path)
        self.batch_size = batch_size
        self._predictor = None
        self.computed = 0

    def _get_predictor(self):
        if self._predictor is None:
            from liverseg.inference.predictor import PredictorOptions, StackPredictor
            from liverseg.models import load_model

            model = load_model(self.liver_model_path)
            self._predictor = StackPredictor(model, PredictorOptions(batch_size=self.batch_size))
        return self._predictor

    def __call__(self, record: VolumeRecord) -> np.ndarray:
        from liverseg.inference.predictor import predict_volume

        path = self.dir / f"{record.case_id}.npy"
        if path.is_file():
            try:
                prob = np.load(path, allow_pickle=False)
            except (ValueError, OSError, EOFError) as exc:
                log.warning("%s: unreadable cache entry (%s); recomputing", path, exc)
            else:
                if prob.shape == record.hu.shape and prob.dtype == np.float32:
                    return prob
        prob = predict_volume(self._get_predictor(), record.hu)
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, overwrite=True) as tmp:
            np.save(tmp, prob, allow_pickle=False)
        atomic_write_text(
            self.dir / "source.json",
            json.dumps({"liver_model": str(self.liver_model_path)}) + "\n",
            overwrite=True,
        )
        self.computed += 1
        return prob


def build_run_data(
    *,
    stage: str,
    data_dir: str,
    options: pipeline.PipelineOptions,
    val_fraction: float,
    seed: int,
    crop_variant: str,
    mask_source: str,
    liver_model: str | None,
    cache_dir: str | os.PathLike,
    val_dir: str | None = None,
    geometry: Geometry | None = None,
    patch_size: tuple[int, int] | str | None = None,
) -> RunData:
    """Datasets of a run. ``data_dir`` is a LiTS-layout NIfTI dir or a prepare.py output.

    ``geometry``: the grid NIfTI volumes are brought to (None: as stored).
    ``patch_size`` of augmented examples (``options.augment``): (rows, cols),
    ``"auto"`` (``auto_patch_size`` of the training examples) or None.
    """
    val_options = dataclasses.replace(
        options, shuffle=False, repeat=False, cache=True, augment=None, patch_size=None
    )
    if tfrecord.is_prepared_dir(data_dir):
        summary = tfrecord.read_summary(data_dir)
        if summary["stage"] != stage:
            from liverseg.errors import LayoutError

            raise LayoutError(data_dir, f"prepared for stage {summary['stage']!r}, not {stage!r}")
        patch = None
        if options.augment is not None and patch_size is not None:
            patch = (
                auto_patch_size([(summary["max_height"], summary["max_width"])], stage)
                if patch_size == AUTO_PATCH
                else tuple(patch_size)
            )
        train_options = dataclasses.replace(options, patch_size=patch)

        def train(batch_size, num_shards=1, shard_index=0):
            return pipeline.dataset_from_tfrecords(
                data_dir,
                dataclasses.replace(train_options, batch_size=batch_size),
                num_shards,
                shard_index,
            )

        val = n_val = None
        val_cases: list[str] = []
        if val_dir:
            val = pipeline.dataset_from_tfrecords(val_dir, val_options)
            vs = tfrecord.read_summary(val_dir)
            n_val, val_cases = vs["num_examples"], vs.get("cases", [])
        return RunData(
            train,
            val,
            summary["num_examples"],
            n_val or 0,
            summary.get("cases", []),
            val_cases,
            patch,
        )

    from liverseg.data import lits
    from liverseg.data.sources import load_volume_records

    cases = lits.discover_cases(data_dir, require_labels=True)
    if val_dir:
        train_cases, val_cases = cases, lits.discover_cases(val_dir, require_labels=True)
    elif val_fraction > 0 and len(cases) > 1:
        train_cases, val_cases = lits.split_by_fraction(cases, val_fraction, seed=seed)
    else:
        train_cases, val_cases = cases, []
    prob_fn = None
    if stage == "tumor" and mask_source == "model":
        prob_fn = LiverProbabilityCache(liver_model, cache_dir)

    def load(case_list, directory):
        return load_volume_records(
            directory,
            case_ids=[c.case_id for c in case_list],
            liver_probability=prob_fn,
            geometry=geometry,
        )

    train_records = load(train_cases, data_dir)
    train_examples = pipeline.examples_from_records(
        train_records, stage, options.number_slices, crop_variant, mask_source
    )
    del train_records
    val_examples = []
    if val_cases:
        val_records = load(val_cases, val_dir or data_dir)
        val_examples = pipeline.examples_from_records(
            val_records, stage, options.number_slices, crop_variant, mask_source
        )

    patch = None
    if options.augment is not None and patch_size is not None and train_examples:
        patch = (
            auto_patch_size([e.hu.shape[:2] for e in train_examples], stage)
            if patch_size == AUTO_PATCH
            else tuple(patch_size)
        )
    train_options = dataclasses.replace(options, patch_size=patch)

    def train(batch_size, num_shards=1, shard_index=0):
        return pipeline.dataset_from_examples(
            train_examples,
            dataclasses.replace(train_options, batch_size=batch_size),
            num_shards,
            shard_index,
        )

    val = pipeline.dataset_from_examples(val_examples, val_options) if val_examples else None
    log.info(
        "%s stage: %d training examples from %d cases, %d validation examples from %d cases",
        stage,
        len(train_examples),
        len(train_cases),
        len(val_examples),
        len(val_cases),
    )
    return RunData(
        train,
        val,
        len(train_examples),
        len(val_examples),
        [c.case_id for c in train_cases],
        [c.case_id for c in val_cases],
        patch,
    )
