"""Converts a LiTS-layout NIfTI directory into sharded TFRecords for training.

One volume is in memory at a time, so LiTS itself (131 volumes, about
58,000 slices) is prepared with a few GB of RAM, and training then reads
records instead of decoding NIfTI every epoch.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from liverseg.data import lits, tfrecord
from liverseg.data.examples import Example, check_stage, iter_examples
from liverseg.data.preprocess import NUMBER_SLICES, CropVariant
from liverseg.utils.progress import Progress

log = logging.getLogger(__name__)


def prepare(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    stage: str,
    *,
    liver_model: str | None = None,
    crop_variant: CropVariant = "original",
    examples_per_shard: int = 512,
    overwrite: bool = False,
    number_slices: int = NUMBER_SLICES,
) -> dict:
    """Writes the ``stage`` examples of every labelled case; returns the summary.

    For the tumour stage, ``liver_model`` gives the loss mask (the model's
    liver probability on the crop); without it the ground-truth liver is used.
    """
    from liverseg.data.sources import load_volume_records

    check_stage(stage)
    cases = lits.discover_cases(data_dir, require_labels=True)
    prob_fn = None
    if stage == "tumor" and liver_model:
        from liverseg.training.data import LiverProbabilityCache

        prob_fn = LiverProbabilityCache(liver_model, os.path.join(output_dir, ".liver_cache"))
    mask_source = "model" if prob_fn is not None else "gt"
    progress = Progress(len(cases), label="case", unit="cases")

    def examples() -> Iterator[Example]:
        for i, case in enumerate(cases):
            (record,) = load_volume_records(
                data_dir, case_ids=[case.case_id], liver_probability=prob_fn
            )
            yield from iter_examples(record, stage, number_slices, crop_variant, mask_source)
            progress.update(i + 1)

    return tfrecord.write_shards(
        examples(),
        output_dir,
        stage=stage,
        number_slices=number_slices,
        examples_per_shard=examples_per_shard,
        overwrite=overwrite,
        extra_summary={
            "source": os.fspath(data_dir),
            "loss_mask": mask_source,
            "crop_variant": crop_variant,
        },
    )
