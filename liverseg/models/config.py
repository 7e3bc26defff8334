"""``ModelConfig``: the few choices that fix a DS-SFFNet / parent network.

Kept free of TensorFlow so that losses, tools and config files can use it
cheaply. The config is recoverable from a built model's name, which is how
``save_model`` and ``load_tf1_checkpoint`` know what they hold.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from liverseg.errors import ConfigError

STAGES = ("liver", "tumor")
VARIANTS = ("original", "paper", "liverseg2017")

# TF1 variable scope of each stage's network in the original code.
STAGE_SCOPES = {"liver": "seg_liver", "tumor": "seg_lesion"}

# Output names of the model's dict, in the order of the deep-supervision loss.
OUTPUT_NAMES = ("fuse", "dsn_2", "dsn_3", "dsn_4", "dsn_5")
SIDE_LEVELS = (2, 3, 4, 5)

_NAME_PATTERN = re.compile(
    r"^liverseg_(?P<stage>[a-z]+)_(?P<variant>[a-z0-9]+)_s(?P<slices>[0-9]+)$"
)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Stage, number of slices per input (= output channels) and variant.

    Variants (docs/ORIGINAL.md section 3): ``original`` reproduces the released code
    (tumour-net head ReLUs, ``side_k_up`` frozen at random init); ``paper``
    follows the README (no head ReLUs, bilinear ``side_k_up``);
    ``liverseg2017`` is the parent network (no FFBs, no decoder).
    """

    stage: str
    number_slices: int = 3
    variant: str = "original"

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.variant not in VARIANTS:
            raise ConfigError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if (
            isinstance(self.number_slices, bool)
            or not isinstance(self.number_slices, int)
            or self.number_slices < 1
        ):
            raise ConfigError(
                f"number_slices must be a positive integer, got {self.number_slices!r}"
            )

    @property
    def scope(self) -> str:
        """TF1 variable scope of the original network (``seg_liver`` / ``seg_lesion``)."""
        return STAGE_SCOPES[self.stage]

    @property
    def has_decoder(self) -> bool:
        """DS-SFFNet has FFBs and the decoder; the 2017 parent network has neither."""
        return self.variant != "liverseg2017"

    @property
    def head_relu(self) -> bool:
        """The original tumour net has ReLUs on some heads (an arg_scope slip)."""
        return self.stage == "tumor" and self.variant == "original"

    @property
    def bilinear_decoder(self) -> bool:
        """Whether ``side_k_up`` starts bilinear (paper) or random N(0, 0.001) (original)."""
        return self.variant == "paper"

    @property
    def model_name(self) -> str:
        return f"liverseg_{self.stage}_{self.variant}_s{self.number_slices}"

    @classmethod
    def from_model_name(cls, name: str) -> ModelConfig:
        match = _NAME_PATTERN.match(name or "")
        if not match:
            raise ConfigError(
                f"model name {name!r} is not a liverseg network name "
                "(was the model built with build_ds_sffnet?)"
            )
        return cls(match["stage"], int(match["slices"]), match["variant"])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        if not isinstance(data, Mapping):
            raise ConfigError("model config must be a JSON object")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(f"unknown model config keys: {unknown}")
        if "stage" not in data:
            raise ConfigError("model config lacks 'stage'")
        return cls(**{k: data[k] for k in fields if k in data})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


def model_config_of(model) -> ModelConfig:
    """The ``ModelConfig`` of a network built by ``build_ds_sffnet`` (from its name)."""
    return ModelConfig.from_model_name(getattr(model, "name", ""))
