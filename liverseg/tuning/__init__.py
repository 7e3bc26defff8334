"""Choosing the cascade's test-time options on validation cases after training."""

from liverseg.tuning.postprocessing import TuneOptions, TuneResult, tune_postprocessing
from liverseg.tuning.run import describe, train_then_tune, tune_models, validation_cases

__all__ = [
    "TuneOptions",
    "TuneResult",
    "describe",
    "train_then_tune",
    "tune_models",
    "tune_postprocessing",
    "validation_cases",
]
