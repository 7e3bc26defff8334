"""The training run: config, model, data, loop, checkpoints, logs.

``train(TrainConfig(...))`` is what ``tools/train.py`` calls. The model
directory ends up holding the final model in the native format
(``liverseg.models.load_model`` reads it), checkpoints for resuming,
``train_state.json``, the resolved ``config.json``, ``metrics.csv``,
``training_curves.png`` and TensorBoard event files under ``logs/``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from liverseg.data import pipeline, tfrecord
from liverseg.data.augment import AugmentOptions
from liverseg.data.geometry import Geometry, infer_training_geometry
from liverseg.data.plans import PLANS_FILE, load_geometry, save_plans
from liverseg.data.preprocess import CROP_VARIANTS
from liverseg.errors import CheckpointError, ConfigError, OutputError, TrainingError
from liverseg.models.config import VARIANTS
from liverseg.training import checkpoints, distribute, variable_selection
from liverseg.training.data import AUTO_PATCH, build_run_data
from liverseg.training.distribute import DISTRIBUTIONS
from liverseg.training.optimizers import make_optimizer
from liverseg.training.recipes import RECIPES, Recipe, foreground_fraction, get_recipe
from liverseg.training.step import METRIC_NAMES, TrainStep
from liverseg.training.variable_selection import SELECTIONS
from liverseg.utils.atomic import atomic_write_text
from liverseg.utils.options import REQUIRED, option
from liverseg.utils.progress import Progress

log = logging.getLogger(__name__)

STAGES = ("liver", "tumor")
RECIPE_NAMES = tuple(RECIPES)
LOSS_MASKS = ("gt", "liver_model")
GEOMETRIES = ("normalize", "native")
CONFIG_NAME = "config.json"
SPLIT_NAME = "split.json"
#: Fields that must not change when resuming a run.
_RESUME_FIELDS = ("stage", "recipe", "variant", "number_slices", "image_size", "geometry")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run; every field is a ``tools/train.py`` flag. None means
    "the recipe's" (or, where said, a choice made from the other fields)."""

    stage: str = option(REQUIRED, "Which network to train.", choices=STAGES)
    data_dir: str = option(
        REQUIRED, "LiTS-layout NIfTI directory or a prepare.py output (TFRecords)."
    )
    model_dir: str = option(
        REQUIRED, "Where checkpoints, logs and the final model go (rerunning resumes)."
    )
    recipe: str = option(
        "fast",
        "Training recipe: 'original' (the original's, faithful) or "
        "'fast' (learns from scratch on a CPU; README).",
        choices=RECIPE_NAMES,
    )
    variant: str | None = option(
        None,
        "Network variant (default: original; for the tumour network trained from "
        "scratch with the fast recipe: paper, as the original's head ReLUs die there).",
        choices=VARIANTS,
    )
    max_steps: int | None = option(
        None, "Updates (default: the recipe's); schedules scale.", kind="int", lower_bound=1
    )
    batch_size: int | None = option(
        None, "Global batch size (default: the recipe's).", kind="int", lower_bound=1
    )
    learning_rate: float | None = option(
        None, "Base learning rate (default: the recipe's).", kind="float"
    )
    image_size: int | None = option(
        None, "Resize examples to this square size (a deviation).", kind="int", lower_bound=16
    )
    init_checkpoint: str | None = option(
        None, "ImageNet VGG-16 (TF-slim vgg_16.ckpt or Keras .h5) or an earlier model."
    )
    liver_model: str | None = option(
        None, "Tumour stage: the liver model giving the loss mask (and the training grid)."
    )
    loss_mask: str | None = option(
        None,
        "Tumour stage loss mask source (default: liver_model if given, else gt).",
        choices=LOSS_MASKS,
    )
    distribution: str = option("none", "tf.distribute strategy.", choices=DISTRIBUTIONS)
    cpu_devices: int = option(0, "Split the CPU into N logical devices.", lower_bound=0)
    mixed_precision: bool = option(False, "Train with the mixed_bfloat16 policy.")
    val_every: int = option(50, "Validate every N updates (0: never).", lower_bound=0)
    val_dir: str | None = option(None, "Validation data (default: a fraction of data_dir).")
    val_fraction: float = option(
        0.1,
        "Fraction of cases held out for validation (and for choosing the post-processing).",
        lower_bound=0.0,
        upper_bound=0.9,
    )
    save_every: int = option(200, "Checkpoint every N updates.", lower_bound=1)
    log_every: int = option(10, "Print a progress line every N updates.", lower_bound=1)
    keep_checkpoints: int = 3
    seed: int = option(0, "Random seed.", lower_bound=0)
    crop_variant: str = option("original", "Tumour ROI crop variant.", choices=CROP_VARIANTS)
    number_slices: int = 3
    variable_selection: str | None = option(
        None,
        "Variables each update moves: 'original' reproduces the original, whose last "
        "(supervision 'none') phase leaves score-dsn_5 and upscore-fuse frozen; 'all' trains "
        "every variable. Default: the recipe's (original recipe: original; fast: all).",
        choices=SELECTIONS,
    )
    augment: bool | None = option(
        None,
        "Augment training examples on the fly (rotation, scaling, elastic, intensity, "
        "noise, blur, low resolution, gamma). Default: the recipe's (fast: on, original: "
        "off).",
        kind="bool",
    )
    geometry: str | None = option(
        None,
        "'normalize': bring every training volume to one orientation and in-plane pixel "
        "spacing (the majority orientation and median spacing of the training volumes, or "
        "the liver model's), recorded in the model's plans.json so that inference does the "
        "same; 'native': volumes as stored (the original). Default: the recipe's (fast: "
        "normalize, original: native).",
        choices=GEOMETRIES,
    )
    patch_size: int | None = option(
        None,
        "Side of the augmented training patches (default: from the examples: the "
        "median slice size for the liver, the 90th percentile crop for the tumour).",
        kind="int",
        lower_bound=16,
    )

    def resolved(self) -> TrainConfig:
        """Fills recipe defaults and checks option combinations."""
        recipe = get_recipe(self.recipe)
        loss_mask = self.loss_mask
        if self.stage == "tumor":
            if loss_mask is None:
                loss_mask = "liver_model" if self.liver_model else "gt"
            if loss_mask not in LOSS_MASKS:
                raise ConfigError(f"loss_mask must be one of {LOSS_MASKS}, got {loss_mask!r}")
            if loss_mask == "liver_model" and not self.liver_model:
                raise ConfigError("the tumour stage needs --liver_model or --loss_mask=gt")
        elif self.stage == "liver":
            loss_mask = None
        else:
            raise ConfigError(f"stage must be 'liver' or 'tumor', got {self.stage!r}")
        if self.distribution not in distribute.DISTRIBUTIONS:
            raise ConfigError(f"distribution must be one of {distribute.DISTRIBUTIONS}")
        variant = self.variant or _default_variant(self, recipe)
        _check_variant_learns(self, recipe, variant)
        geometry = self.geometry or ("normalize" if recipe.normalize_geometry else "native")
        if geometry not in GEOMETRIES:
            raise ConfigError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
        augment = recipe.augment if self.augment is None else bool(self.augment)
        if self.patch_size is not None and self.patch_size < 16:
            raise ConfigError(f"patch_size must be at least 16, got {self.patch_size}")
        selection = self.variable_selection or recipe.variable_selection
        if selection not in variable_selection.SELECTIONS:
            raise ConfigError(
                f"variable_selection must be one of "
                f"{variable_selection.SELECTIONS}, got {selection!r}"
            )
        out = dataclasses.replace(
            self,
            loss_mask=loss_mask,
            variable_selection=selection,
            variant=variant,
            geometry=geometry,
            augment=augment,
            max_steps=self.max_steps or recipe.max_steps,
            batch_size=self.batch_size or recipe.batch_size,
            learning_rate=self.learning_rate or recipe.learning_rate,
        )
        if out.max_steps <= 0 or out.batch_size <= 0:
            raise ConfigError("max_steps and batch_size must be positive")
        return out


def _from_scratch_with_adam(config: TrainConfig, recipe: Recipe) -> bool:
    return recipe.init == "he" and not config.init_checkpoint


def _default_variant(config: TrainConfig, recipe: Recipe) -> str:
    """ "original", except where the original network cannot learn (see below)."""
    if config.stage == "tumor" and _from_scratch_with_adam(config, recipe):
        return "paper"
    return "original"


def _check_variant_learns(config: TrainConfig, recipe: Recipe, variant: str) -> None:
    """The original tumour network carries a ReLU on every head (an arg_scope
    slip of the original code), so its logits are >= 0 and "background" needs
    a logit of exactly 0: trained from scratch with Adam, the heads' ReLUs die
    within the first updates and the network predicts no tumour at all
    (Dice 0.0000 over 300 updates, measured). The original trained it from
    ImageNet weights with a 1e-8 learning rate."""
    if (
        config.stage == "tumor"
        and variant == "original"
        and _from_scratch_with_adam(config, recipe)
    ):
        raise ConfigError(
            "the original tumour network (--variant=original) cannot learn from scratch with "
            f"the {recipe.name} recipe: the ReLUs on its output heads (an arg_scope slip of the "
            "original code) die within the first updates and it predicts no tumour; use "
            "--variant=paper (the default for this combination) or start from weights with "
            "--init_checkpoint"
        )


@contextlib.contextmanager
def _precision_policy(mixed: bool):
    previous = keras.mixed_precision.global_policy()
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _variant_note(config: TrainConfig, recipe: Recipe) -> str:
    if (
        config.stage == "tumor"
        and config.variant == "paper"
        and _from_scratch_with_adam(config, recipe)
    ):
        return (
            " (the original tumour network's head ReLUs die when it learns from scratch; "
            "pass --init_checkpoint to train --variant=original)"
        )
    return ""


def _training_geometry(config: TrainConfig) -> tuple[Geometry | None, str]:
    """The grid training volumes are brought to, and a line saying where it came from.

    The tumour stage takes its liver model's grid, so the cascade's two
    networks see the same pixels; otherwise the majority orientation and the
    median in-plane spacing of the training volumes (nnU-Net's target spacing).
    """
    if config.geometry != "normalize":
        return None, "volumes as stored"
    if tfrecord.is_prepared_dir(config.data_dir):
        return None, "volumes as prepared (TFRecords keep the grid prepare.py wrote)"
    if config.liver_model:
        liver_geometry = load_geometry(config.liver_model)
        if liver_geometry is not None:
            return liver_geometry, f"the liver model's ({_describe(liver_geometry)})"
    from liverseg.data.sources import volume_headers

    geometry = infer_training_geometry(volume_headers(config.data_dir))
    return geometry, f"{_describe(geometry)} (from the training volumes)"


def _input_error(config: TrainConfig, exc: Exception, step: int) -> TrainingError:
    """A training-data read failure as one line naming the corrupt shard when there is one."""
    first = str(getattr(exc, "message", exc)).splitlines()[0][:200]
    if tfrecord.is_prepared_dir(config.data_dir):
        summary = tfrecord.read_summary(config.data_dir)
        found = tfrecord.find_corrupt_shard(tfrecord.shard_paths(config.data_dir, summary))
        if found is not None:
            return TrainingError(
                f"{found[0]}: corrupt TFRecord shard ({found[1]}) at update {step + 1}; "
                "rerun tools/prepare.py; training stopped, the last checkpoint is kept"
            )
    if isinstance(exc, tf.errors.DataLossError):
        return TrainingError(
            f"{config.data_dir}: training data unreadable at update {step + 1} ({first}); "
            "the last checkpoint is kept"
        )
    raise exc


def _describe(geometry: Geometry) -> str:
    spacing = (
        "as stored"
        if geometry.pixel_spacing is None
        else "x".join(f"{s:.2f}" for s in geometry.pixel_spacing) + " mm pixels"
    )
    return f"orientation {geometry.orientation}, {spacing}"


def _write_run_files(model_dir: Path, config: TrainConfig, data, geometry) -> None:
    """``split.json`` (which cases trained and which validate: the tuning step
    scores post-processing on the latter) and ``plans.json`` (the grid)."""
    split = {
        "data_dir": os.path.abspath(config.data_dir),
        "val_dir": os.path.abspath(config.val_dir) if config.val_dir else None,
        "train_cases": list(data.train_cases),
        "val_cases": list(data.val_cases),
    }
    atomic_write_text(model_dir / SPLIT_NAME, json.dumps(split, indent=2) + "\n", overwrite=True)
    if geometry is not None:
        save_plans(
            model_dir, geometry, details={"stage": config.stage, "data_dir": split["data_dir"]}
        )
    elif (model_dir / PLANS_FILE).exists():
        (model_dir / PLANS_FILE).unlink()


def _check_resume(model_dir: Path, config: TrainConfig) -> None:
    path = model_dir / CONFIG_NAME
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text())
    except ValueError:
        return
    changed = [f for f in _RESUME_FIELDS if f in previous and previous[f] != getattr(config, f)]
    if changed:
        details = ", ".join(f"{f}: {previous[f]!r} -> {getattr(config, f)!r}" for f in changed)
        raise ConfigError(
            f"{model_dir}: holds a run with other settings ({details}); use another --model_dir"
        )


def _initialise(model, config: TrainConfig, recipe: Recipe) -> str:
    """Loads the init checkpoint, or applies the recipe's from-scratch init."""
    if config.init_checkpoint:
        from liverseg.models import converter, load_model

        path = config.init_checkpoint
        if (
            path.endswith((".h5", ".ckpt"))
            or Path(path + ".index").exists()
            or Path(path).name.startswith("vgg_16")
        ):
            converter.load_imagenet_vgg16(model, path)
            return f"ImageNet VGG-16 backbone from {path}"
        source = load_model(path)
        model.set_weights(source.get_weights())
        return f"weights of {path}"
    if recipe.init == "he":
        layer = model.get_layer("conv1_1")
        # He init assumes unit-scale inputs; the network reads 0..255.
        layer.kernel.assign(layer.kernel * (2.0 / 255.0))
        count = _he_init_trainable_heads(model, config.seed)
        return f"He normal (conv1_1 scaled for 0..255 inputs; {count} side/decoder/head convs too)"
    return "model defaults (no ImageNet checkpoint given)"


def _he_init_trainable_heads(model, seed: int) -> int:
    """He-normal kernels for the trainable convs outside the backbone (side
    convs, attention branches, score heads, fuse), which the model builds with
    the original's N(0, 0.001): from scratch, with Adam's fixed step size,
    such small weights keep those paths near zero for hundreds of updates.
    Frozen layers (the transposed convs) keep their weights."""
    import keras

    from liverseg.models.ds_sffnet import backbone_layer_names

    backbone = set(backbone_layer_names())
    count = 0
    for layer in model.layers:
        if type(layer) is not keras.layers.Conv2D or not layer.trainable or layer.name in backbone:
            continue
        init = keras.initializers.HeNormal(seed=seed * 1000 + count)
        layer.kernel.assign(init(layer.kernel.shape, dtype=layer.kernel.dtype))
        count += 1
    return count


def _drop_rows_after(csv_path: Path, step: int) -> None:
    """Removes rows of updates after ``step`` (lost when a run died before saving)."""
    if not csv_path.is_file():
        return
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(kept) != len(rows):
        import io

        buf = io.StringIO()
        csv.writer(buf).writerows(kept)
        atomic_write_text(csv_path, buf.getvalue(), overwrite=True)


class _Logger:
    """metrics.csv, TensorBoard scalars and images, the progress line."""

    LOSSES = tuple(n for n in METRIC_NAMES if n.startswith("loss_"))
    FIELDS = ("step", "learning_rate", "supervision", *LOSSES, "dice", "val_dice", "seconds")

    def __init__(self, model_dir: Path, total: int, start: int, enabled: bool):
        self.enabled = enabled
        self.progress = Progress(total, label="step", unit="steps", start=start)
        self.t0 = time.perf_counter()
        if not enabled:
            return
        self.csv_path = model_dir / "metrics.csv"
        _drop_rows_after(self.csv_path, start)
        new = not self.csv_path.exists()
        self.csv_file = open(self.csv_path, "a", newline="")  # noqa: SIM115 - open for the run
        self.csv = csv.DictWriter(self.csv_file, fieldnames=self.FIELDS, extrasaction="ignore")
        if new:
            self.csv.writeheader()
        self.writer = tf.summary.create_file_writer(str(model_dir / "logs" / "train"))
        self.val_writer = tf.summary.create_file_writer(str(model_dir / "logs" / "validation"))

    def log(
        self,
        step: int,
        metrics: dict,
        lr: float,
        supervision: str,
        val_dice=None,
        show: bool = True,
    ):
        if not self.enabled:
            return
        row = {
            "step": step,
            "learning_rate": lr,
            "supervision": supervision,
            "val_dice": "" if val_dice is None else val_dice,
            "seconds": round(time.perf_counter() - self.t0, 3),
            **metrics,
        }
        self.csv.writerow(row)
        self.csv_file.flush()
        with self.writer.as_default(step=step):
            for name in self.LOSSES:
                tf.summary.scalar(f"loss/{name.removeprefix('loss_')}", metrics[name])
            tf.summary.scalar("learning_rate", lr)
            tf.summary.scalar("dice", metrics["dice"])
        if val_dice is not None:
            with self.val_writer.as_default(step=step):
                tf.summary.scalar("dice", val_dice)
        if show:
            fields = {"loss": metrics["loss_total"], "dice": metrics["dice"]}
            if val_dice is not None:
                fields["val_dice"] = val_dice
            fields["sup"] = supervision
            self.progress.update(step, force=True, **fields)

    def image(self, step: int, panel: np.ndarray):
        if self.enabled:
            with self.val_writer.as_default(step=step):
                tf.summary.image("ct_label_prediction", panel[None], max_outputs=1)

    def __enter__(self) -> _Logger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self):
        if self.enabled:
            self.csv_file.close()
            self.writer.flush()
            self.val_writer.flush()


def _validate(model, dataset, max_batches: int = 64):
    """Dice of the thresholded main output over masked pixels; first example's panel."""
    inter = total = 0.0
    panel = None
    for i, batch in enumerate(dataset):
        if i >= max_batches:
            break
        logits = model(batch["image"], training=False)["fuse"]
        pred = tf.cast(tf.sigmoid(tf.cast(logits, tf.float32)) > 0.5, tf.float32)
        valid = tf.cast(batch["mask"] > 0, tf.float32)
        label = batch["label"] * valid
        pred = pred * valid
        inter += float(tf.reduce_sum(pred * label))
        total += float(tf.reduce_sum(pred) + tf.reduce_sum(label))
        if panel is None:
            c = batch["image"].shape[-1] // 2
            ct = batch["image"][0, :, :, c].numpy() / 255.0
            panel = np.concatenate(
                [ct, label[0, :, :, c].numpy(), pred[0, :, :, c].numpy()], axis=1
            )[..., None].astype(np.float32)
    dice = 2 * inter / total if total > 0 else 1.0
    return dice, panel


def train(config: TrainConfig) -> dict:
    """Runs (or resumes) training; returns a summary of the run."""
    config = config.resolved()
    recipe = get_recipe(config.recipe)
    model_dir = Path(config.model_dir)
    if model_dir.exists() and not model_dir.is_dir():
        raise OutputError(model_dir, "--model_dir exists and is not a directory")
    if config.liver_model and not Path(config.liver_model).exists():
        raise CheckpointError(config.liver_model, "liver model not found")
    _check_resume(model_dir, config)
    strategy = distribute.make_strategy(config.distribution, config.cpu_devices)
    chief = distribute.is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ConfigError(
            f"batch_size {config.batch_size} is not divisible by the {replicas} replicas"
        )
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            model_dir, f"cannot create the model directory ({exc.strerror or exc})"
        ) from None

    options = pipeline.PipelineOptions(
        batch_size=config.batch_size,
        seed=config.seed,
        image_size=config.image_size,
        number_slices=config.number_slices,
        augment=AugmentOptions() if config.augment else None,
        foreground_fraction=foreground_fraction(recipe, config.stage),
    )
    geometry, geometry_note = _training_geometry(config)
    patch = (config.patch_size, config.patch_size) if config.patch_size else AUTO_PATCH
    data = build_run_data(
        stage=config.stage,
        data_dir=config.data_dir,
        options=options,
        val_fraction=config.val_fraction,
        seed=config.seed,
        crop_variant=config.crop_variant,
        mask_source="model" if config.loss_mask == "liver_model" else "gt",
        liver_model=config.liver_model,
        cache_dir=model_dir / "cache" / "liver_probability",
        val_dir=config.val_dir,
        geometry=geometry,
        patch_size=patch,
    )
    if chief:
        _write_run_files(model_dir, config, data, geometry)

    from liverseg.models import build_ds_sffnet, save_model

    with _precision_policy(config.mixed_precision):
        with strategy.scope():
            model = build_ds_sffnet(
                config.stage, config.number_slices, config.variant, seed=config.seed
            )
            init_note = _initialise(model, config, recipe)
            optimizer = make_optimizer(recipe, model.trainable_variables)
        step_fn = TrainStep(
            model, optimizer, recipe, config.stage, strategy, selection=config.variable_selection
        )
        state = checkpoints.restore_latest(model_dir, model, optimizer)
        start = int(state["step"]) if state else 0
        if chief:  # written once the data and the init checkpoint have loaded
            atomic_write_text(
                model_dir / CONFIG_NAME,
                json.dumps(dataclasses.asdict(config), indent=2) + "\n",
                overwrite=True,
            )
        print(
            f"{config.stage} stage, recipe {recipe.name}, network variant {config.variant}"
            f"{_variant_note(config, recipe)}: {data.num_train_examples} training examples, "
            f"{data.num_val_examples} validation; {replicas} replica(s); "
            f"{f'resuming at step {start}' if state else 'init: ' + init_note}",
            flush=True,
        )
        print(
            f"grid: {geometry_note}; augmentation: "
            + (
                f"on, {data.patch_size[0]}x{data.patch_size[1]} patches"
                if data.patch_size
                else "on"
                if config.augment
                else "off"
            ),
            flush=True,
        )
        per_replica = config.batch_size // replicas

        def dataset_fn(ctx: tf.distribute.InputContext):
            return data.train(per_replica, ctx.num_input_pipelines, ctx.input_pipeline_id)

        iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
        total = config.max_steps
        metrics: dict = {}
        val_dice = None
        step = start
        try:
            with _Logger(model_dir, config.max_steps, start, chief) as logger:
                while step < total:
                    lr = config.learning_rate * recipe.lr_factor_at(step, total)
                    supervision = recipe.supervision_at(step, total)
                    try:
                        metrics = step_fn(iterator, supervision, lr)
                    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as exc:
                        raise _input_error(config, exc, step) from None
                    step += 1
                    if not np.isfinite(metrics["loss_total"]):
                        raise TrainingError(
                            f"{model_dir}: the loss became {metrics['loss_total']} at update {step}; "
                            "lower --learning_rate or resume from the last checkpoint"
                        )
                    val_dice = None
                    if (
                        data.val is not None
                        and config.val_every
                        and (step % config.val_every == 0 or step == total)
                    ):
                        val_dice, panel = _validate(model, data.val)
                        if panel is not None:
                            logger.image(step, panel)
                    show = step % config.log_every == 0 or step == total or val_dice is not None
                    logger.log(step, metrics, lr, supervision, val_dice, show=show)
                    if chief and (step % config.save_every == 0 or step == total):
                        checkpoints.save_checkpoint(
                            model_dir,
                            model,
                            optimizer,
                            {
                                "step": step,
                                "phase": recipe.phase_index(step, total),
                                "supervision": recipe.supervision_at(step, total),
                                "learning_rate": lr,
                                "max_steps": total,
                            },
                            keep=config.keep_checkpoints,
                        )
            if chief:
                save_model(model, model_dir, overwrite=True)
                from liverseg.training.curves import plot_training_curves

                plot_training_curves(model_dir / "metrics.csv", model_dir / "training_curves.png")
        except OSError as exc:  # a full disk or read-only directory while training wrote
            raise OutputError(
                exc.filename or model_dir,
                f"cannot write ({exc.strerror or exc}) after update {step}; training stopped, "
                "the last checkpoint is kept: free space and rerun to resume",
            ) from None
    return {
        "step": step,
        "model_dir": str(model_dir),
        "metrics": metrics,
        "val_dice": val_dice,
        "num_train_examples": data.num_train_examples,
    }
