"""Training recipes: the original one (docs/ORIGINAL.md section 4) and a fast one.

A recipe is data, not code: the optimiser, learning-rate schedule,
deep-supervision phases, loss weighting and regularisation. Schedules are
defined over the original 50,000 updates and scaled proportionally when a run
asks for another number of updates.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from liverseg.losses import STAGE_CLASS_WEIGHTS
from liverseg.losses import Supervision as SupervisionMode

ORIGINAL_TOTAL_UPDATES = 50_000

Supervision = Literal["strong", "weak", "none"]
#: Weight of the summed side (dsn) losses in the total, per supervision mode.
DSN_WEIGHT = {mode.value: mode.side_weight for mode in SupervisionMode}


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    optimizer: Literal["tf1_momentum", "adam"]
    learning_rate: float
    #: Piecewise-constant schedule: boundaries (in updates, out of
    #: ``ORIGINAL_TOTAL_UPDATES``) and one factor per interval.
    lr_boundaries: tuple[int, ...]
    lr_factors: tuple[float, ...]
    #: Supervision phases: (last update of the phase, mode), out of 50,000.
    supervision_phases: tuple[tuple[int, Supervision], ...]
    max_steps: int
    batch_size: int
    #: Gradients averaged per update (the original's ``iter_mean_grad``).
    iter_mean_grad: int
    #: "sum": the original summed loss; "mean": divided by the masked pixel count.
    loss_reduction: Literal["sum", "mean"]
    #: Class weights: "original" (0.931/0.069 liver, 0.8982/0.1018 tumour) or
    #: "uniform" (0.5/0.5), for both stages or as a per-stage dict.
    class_weights: Literal["original", "uniform"] | dict
    weight_decay: float
    #: Multiplier of the weight-decay term per stage.
    weight_decay_factor: dict
    #: Per-variable gradient factors (biases 2, score-dsn 0.1/0.2, fuse 0.01/0.02).
    gradient_factors: bool
    #: Backbone initialisation when no checkpoint is given: "original"
    #: (as built: the model's defaults) or "he" (He normal, first layer scaled
    #: for 0..255 inputs).
    init: Literal["original", "he"]
    #: Weight of a soft Dice term (1 - 2*sum(p*y)/(sum(p)+sum(y)) over the
    #: masked global batch) added to each output's cross-entropy; 0 in the
    #: original. Per stage, like ``class_weights``, or one number.
    dice_weight: float | dict = 0.0
    #: Which variables an update moves (``variable_selection.SELECTIONS``):
    #: "original" reproduces the original's accumulator indexing, which under
    #: supervision "none" leaves score-dsn_5 and upscore-fuse (and the
    #: gradient-less score-dsn biases) untouched; "all" trains every variable.
    variable_selection: str = "all"
    #: On-the-fly augmentation of training examples (``liverseg.data.augment``);
    #: the original has none.
    augment: bool = False
    #: Bring training volumes (and, at inference, every input) to one
    #: orientation and in-plane pixel spacing (``liverseg.data.geometry``); the
    #: original reads volumes as stored.
    normalize_geometry: bool = False
    #: Share of training examples drawn from those holding foreground, per
    #: stage or one number (``PipelineOptions.foreground_fraction``).
    foreground_fraction: float | dict = 0.0
    momentum: float = 0.9
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-7

    def scaled(self, step: int, total: int) -> int:
        """An update number of the 50,000-update schedule scaled to ``total``."""
        return int(round(step * total / ORIGINAL_TOTAL_UPDATES))

    def lr_factor_at(self, update: int, total: int) -> float:
        """The factor of the base learning rate for the update that starts
        after ``update`` completed ones (the original's ``global_step``).

        As ``tf.train.piecewise_constant``: the old factor holds while
        ``update <= boundary``, so the first update at a new rate is the one
        with ``update == boundary + 1``.
        """
        factor = self.lr_factors[0]
        for boundary, f in zip(self.lr_boundaries, self.lr_factors[1:]):
            if update > self.scaled(boundary, total):
                factor = f
        return factor

    def learning_rate_at(self, update: int, total: int) -> float:
        return self.learning_rate * self.lr_factor_at(update, total)

    def supervision_at(self, update: int, total: int) -> Supervision:
        for last, mode in self.supervision_phases:
            if update < self.scaled(last, total):
                return mode
        return self.supervision_phases[-1][1]

    def phase_index(self, update: int, total: int) -> int:
        for i, (last, _) in enumerate(self.supervision_phases):
            if update < self.scaled(last, total):
                return i
        return len(self.supervision_phases) - 1


ORIGINAL = Recipe(
    name="original",
    optimizer="tf1_momentum",
    learning_rate=1e-8,
    lr_boundaries=(10_000, 15_000, 25_000, 30_000, 40_000),
    lr_factors=(1.0, 0.1, 1.0, 0.1, 1.0, 0.1),
    supervision_phases=((15_000, "strong"), (30_000, "weak"), (50_000, "none")),
    max_steps=ORIGINAL_TOTAL_UPDATES,
    batch_size=1,
    iter_mean_grad=10,
    loss_reduction="sum",
    class_weights="original",
    weight_decay=0.0002,
    weight_decay_factor={"liver": 0.001, "tumor": 1.0},
    gradient_factors=True,
    init="original",
    variable_selection="original",
)

#: A documented modern deviation that learns from scratch on a CPU in
#: minutes: He init, Adam, mean-normalised loss plus soft Dice, larger
#: batches, no weight decay, same strong -> weak -> none supervision phases.
FAST = Recipe(
    name="fast",
    optimizer="adam",
    learning_rate=3e-4,
    lr_boundaries=(35_000, 45_000),
    lr_factors=(1.0, 0.3, 0.1),
    supervision_phases=((15_000, "strong"), (30_000, "weak"), (50_000, "none")),
    max_steps=800,
    batch_size=8,
    iter_mean_grad=1,
    loss_reduction="mean",
    # Tumour pixels are a few per cent of a liver crop: the original class
    # weights get the tumour net past "all background" early.
    class_weights={"liver": "uniform", "tumor": "original"},
    weight_decay=0.0,
    weight_decay_factor={"liver": 0.0, "tumor": 0.0},
    gradient_factors=False,
    init="he",
    # Cross-entropy + soft Dice, as nnU-Net trains: on 96x96 phantoms at 800 /
    # 1000 updates it raised the liver Dice per case 0.919 -> 0.932 and the
    # tumour validation Dice 0.69 -> 0.75 (docs/BENCHMARKS.md, README).
    dice_weight=1.0,
    augment=True,
    normalize_geometry=True,
    # nnU-Net's third of foreground patches, for the tumour stage: most liver
    # crops hold no tumour, and many tumours are a few voxels.
    foreground_fraction={"liver": 0.0, "tumor": 0.33},
)

RECIPES = {r.name: r for r in (ORIGINAL, FAST)}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; expected one of {sorted(RECIPES)}") from None


def _for_stage(setting, stage: str):
    """A recipe setting given for both stages, or per stage as a dict."""
    return setting[stage] if isinstance(setting, dict) else setting


def class_weights(recipe: Recipe, stage: str) -> tuple[float, float]:
    """(pos_weight, neg_weight) of ``stage`` under ``recipe``."""
    if _for_stage(recipe.class_weights, stage) == "uniform":
        return 0.5, 0.5
    return STAGE_CLASS_WEIGHTS[stage]


def foreground_fraction(recipe: Recipe, stage: str) -> float:
    """Share of ``stage``'s training examples drawn from those with foreground."""
    return float(_for_stage(recipe.foreground_fraction, stage))


def dice_weight(recipe: Recipe, stage: str) -> float:
    """Weight of the soft Dice term of ``stage`` under ``recipe``."""
    return float(_for_stage(recipe.dice_weight, stage))


def gradient_factor(variable_path: str) -> float:
    """The original per-variable gradient factor of a Keras variable path.

    ``variable_path`` is ``<layer name>/<kernel|bias>``: weights 1, biases 2;
    score-dsn_k 0.1 / 0.2; upscore-fuse 0.01 / 0.02.
    """
    layer, _, leaf = variable_path.rpartition("/")
    layer = layer.rsplit("/", 1)[-1]
    is_bias = leaf.startswith("bias")
    if layer.startswith("score-dsn") and not layer.endswith("-up"):
        base = 0.1
    elif layer == "upscore-fuse":
        base = 0.01
    else:
        base = 1.0
    return base * (2.0 if is_bias else 1.0)
