"""SavedModel export of the liver and tumour networks for TF Serving (docs/SERVING.md)."""

from liverseg.export.saved_model import (
    DEFAULT_VERSION,
    HU_INPUT,
    LOGITS,
    PROBABILITIES,
    SCALED_INPUT,
    SCALED_SIGNATURE,
    SERVING_SIGNATURE,
    ServingModule,
    check_export_destination,
    export_model_file,
    export_saved_model,
)

__all__ = [
    "DEFAULT_VERSION",
    "HU_INPUT",
    "LOGITS",
    "PROBABILITIES",
    "SCALED_INPUT",
    "SCALED_SIGNATURE",
    "SERVING_SIGNATURE",
    "ServingModule",
    "check_export_destination",
    "export_model_file",
    "export_saved_model",
]
