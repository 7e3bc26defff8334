"""Cascade segmentation of CT volumes (liver net, ROI, tumour net, CRF, opening).

``Segmenter(liver_model, tumor_model, SegmentOptions()).segment(volume)``
segments one loaded volume; ``run(inputs, output_dir, ...)`` segments a
directory or a file list into LiTS label maps (what ``tools/infer.py`` calls).
"""

from liverseg.inference.cascade import (
    CRF_TARGETS,
    STAGES,
    CrfImage,
    CrfScope,
    SegmentationResult,
    Segmenter,
    SegmentOptions,
)
from liverseg.inference.predictor import (
    PredictorOptions,
    StackPredictor,
    predict_slices,
    predict_volume,
)
from liverseg.inference.resolve import ResolvedOptions, resolve_options
from liverseg.inference.runner import (
    CaseReport,
    CaseStatus,
    RunOptions,
    RunReport,
    discover_inputs,
    output_name,
    run,
)

__all__ = [
    "CRF_TARGETS",
    "STAGES",
    "CaseReport",
    "CaseStatus",
    "CrfImage",
    "CrfScope",
    "PredictorOptions",
    "ResolvedOptions",
    "RunOptions",
    "RunReport",
    "SegmentOptions",
    "SegmentationResult",
    "Segmenter",
    "StackPredictor",
    "discover_inputs",
    "output_name",
    "predict_slices",
    "predict_volume",
    "resolve_options",
    "run",
]
