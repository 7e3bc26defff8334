"""DS-SFFNet and parent networks (Keras), TF1 checkpoint converters, native I/O."""

from liverseg.models.config import OUTPUT_NAMES, ModelConfig
from liverseg.models.converter import (
    LoadReport,
    check_variable_map,
    convert_tf1_checkpoint,
    load_imagenet_vgg16,
    load_tf1_checkpoint,
    model_config_of,
    tf1_variable_map,
)
from liverseg.models.ds_sffnet import build_ds_sffnet, build_from_config
from liverseg.models.io import load_model, save_model

__all__ = [
    "OUTPUT_NAMES",
    "ModelConfig",
    "LoadReport",
    "build_ds_sffnet",
    "build_from_config",
    "check_variable_map",
    "convert_tf1_checkpoint",
    "load_imagenet_vgg16",
    "load_tf1_checkpoint",
    "load_model",
    "model_config_of",
    "save_model",
    "tf1_variable_map",
]
