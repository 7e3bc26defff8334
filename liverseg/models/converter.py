"""The one map between Keras weights and the original TF1 variable names,
and loaders for the original checkpoints and ImageNet VGG-16 backbones.

Original names are ``<scope>/<name>/weights`` and ``<scope>/<name>/biases``
with scope ``seg_liver`` (liver net) or ``seg_lesion`` (tumour net); the
backbone convs sit one scope deeper (``seg_liver/conv1/conv1_1/weights``, from
TF-slim's ``repeat``). Kernel layouts need no transposition: TF1 and Keras both
store convs as [kh, kw, in, out] and transposed convs as [kh, kw, out, in].

Checkpoints are read with ``tf.train.load_checkpoint`` (TF1 name-based or TF2
object-based files; nothing is unpickled) and VGG-16 ``.h5`` files with h5py.
Every loader checks every name and shape first and raises one
``CheckpointError`` listing all missing, unexpected and mismatched variables;
the model is only changed when everything matches.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from liverseg.errors import CheckpointError, ConfigError
from liverseg.models.config import SIDE_LEVELS, ModelConfig, model_config_of
from liverseg.models.ds_sffnet import BACKBONE_BLOCKS, backbone_layer_names, side_conv_name

# Checkpoint entries that are not model weights and are skipped on load:
# training counters, Adam's power accumulators, TF2's object graph ...
IGNORED_VARIABLES = frozenset(
    {
        "global_step",
        "beta1_power",
        "beta2_power",
        "_CHECKPOINTABLE_OBJECT_GRAPH",
    }
)
# ... and optimiser slots / moving averages, stored as ``<variable>/<slot>``.
IGNORED_SLOT_SUFFIXES = (
    "/Momentum",
    "/Adam",
    "/Adam_1",
    "/RMSProp",
    "/RMSProp_1",
    "/Adagrad",
    "/ExponentialMovingAverage",
)

_CHECKPOINT_FILE_SUFFIX = re.compile(r"\.(index|meta|data-\d+-of-\d+)$")


@dataclasses.dataclass(frozen=True)
class WeightRef:
    """A Keras weight: ``layer`` name and attribute (``kernel`` or ``bias``)."""

    layer: str
    attr: str


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What a loader did: source names loaded, and source names skipped on purpose."""

    path: str
    loaded: tuple[str, ...]
    ignored: tuple[str, ...]


def _conv(mapping, tf1_prefix, layer, *, bias=True):
    mapping[f"{tf1_prefix}/weights"] = WeightRef(layer, "kernel")
    if bias:
        mapping[f"{tf1_prefix}/biases"] = WeightRef(layer, "bias")


def tf1_variable_map(config: ModelConfig) -> dict[str, WeightRef]:
    """Original TF1 variable name -> Keras weight, for every weight of the network."""
    scope = config.scope
    mapping: dict[str, WeightRef] = {}
    for block, repeats, _ in BACKBONE_BLOCKS:
        for i in range(1, repeats + 1):
            _conv(mapping, f"{scope}/conv{block}/conv{block}_{i}", f"conv{block}_{i}")
    for k in SIDE_LEVELS:
        _conv(mapping, f"{scope}/{side_conv_name(k)}", side_conv_name(k))
    if config.has_decoder:
        for prefix in [f"side_{k}" for k in SIDE_LEVELS] + ["add_up_1", "add_up_2"]:
            for branch in ("br_1", "br_2"):
                name = f"{prefix}_{branch}"
                _conv(mapping, f"{scope}/{name}", name)
        for k in (3, 4, 5):
            _conv(mapping, f"{scope}/side_{k}_up", f"side_{k}_up", bias=False)
    for k in SIDE_LEVELS:
        _conv(mapping, f"{scope}/score-dsn_{k}", f"score-dsn_{k}")
        _conv(mapping, f"{scope}/score-dsn_{k}-up", f"score-dsn_{k}-up", bias=False)
        _conv(mapping, f"{scope}/score-multi{k}-up", f"score-multi{k}-up", bias=False)
    _conv(mapping, f"{scope}/upscore-fuse", "upscore-fuse")
    return mapping


def slim_vgg16_map() -> dict[str, WeightRef]:
    """TF-slim ``vgg_16.ckpt`` name -> backbone weight (fc layers are not used)."""
    mapping: dict[str, WeightRef] = {}
    for layer in backbone_layer_names():
        block = layer.split("_")[0]
        _conv(mapping, f"vgg_16/{block}/{layer}", layer)
    return mapping


def keras_vgg16_map() -> dict[str, WeightRef]:
    """Keras VGG16 weight (``block1_conv1/kernel`` ...) -> backbone weight."""
    mapping: dict[str, WeightRef] = {}
    for layer in backbone_layer_names():
        block, index = layer[len("conv") :].split("_")
        for attr in ("kernel", "bias"):
            mapping[f"block{block}_conv{index}/{attr}"] = WeightRef(layer, attr)
    return mapping


def _resolve(model, ref: WeightRef):
    try:
        layer = model.get_layer(ref.layer)
    except ValueError:
        return None
    return getattr(layer, ref.attr, None)


def variable_map_problems(model, config: ModelConfig | None = None) -> list[str]:
    """Checks that the TF1 map covers every weight of ``model`` exactly once.

    Returns a list of problems (empty when the map and the model agree).
    """
    config = config or model_config_of(model)
    problems = []
    seen: dict[int, str] = {}
    for tf1_name, ref in tf1_variable_map(config).items():
        variable = _resolve(model, ref)
        if variable is None:
            problems.append(f"{tf1_name} -> {ref.layer}.{ref.attr}: no such weight in the model")
            continue
        if id(variable) in seen:
            problems.append(f"{tf1_name} and {seen[id(variable)]} map to the same weight")
        seen[id(variable)] = tf1_name
    for variable in model.weights:
        if id(variable) not in seen:
            problems.append(f"model weight {variable.path} has no TF1 name")
    return problems


def check_variable_map(model, config: ModelConfig | None = None) -> None:
    """Raises ``ConfigError`` unless the map covers every model weight exactly once."""
    problems = variable_map_problems(model, config)
    if problems:
        raise ConfigError(
            f"model {model.name!r} does not match the TF1 variable map: " + "; ".join(problems)
        )


# --------------------------------------------------------------------------- loading


def _checkpoint_prefix(path) -> str:
    """Accepts a checkpoint prefix, directory, or one of its ``.index/.meta/.data`` files."""
    text = os.fspath(path)
    return _CHECKPOINT_FILE_SUFFIX.sub("", text) if not os.path.isdir(text) else text


def _open_tf_checkpoint(path):
    import tensorflow as tf

    prefix = _checkpoint_prefix(path)
    try:
        return tf.train.load_checkpoint(prefix)
    except (ValueError, tf.errors.OpError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(path, f"cannot read TensorFlow checkpoint: {first_line}") from None


def _is_ignored(name: str) -> bool:
    return name in IGNORED_VARIABLES or name.endswith(IGNORED_SLOT_SUFFIXES)


def _apply(
    model,
    path,
    mapping: Mapping[str, WeightRef],
    shapes: Mapping[str, tuple],
    fetch: Callable[[str], np.ndarray],
    ignore: Callable[[str], bool],
    description: str,
    hint: str = "",
) -> LoadReport:
    """Checks ``shapes`` (source name -> shape) against ``mapping``, then assigns all."""
    missing, mismatched, unexpected, ignored, bad_values = [], [], [], [], []
    targets = {}
    for name, ref in mapping.items():
        variable = _resolve(model, ref)
        if variable is None:
            raise ConfigError(
                f"model {model.name!r} has no weight {ref.layer}.{ref.attr} (needed for {name})"
            )
        if name not in shapes:
            missing.append(name)
        elif tuple(shapes[name]) != tuple(variable.shape):
            mismatched.append(
                f"{name}: checkpoint {list(shapes[name])} vs model {list(variable.shape)}"
            )
        else:
            targets[name] = variable
    for name in sorted(shapes):
        if name in mapping:
            continue
        (ignored if ignore(name) else unexpected).append(name)

    values = {}
    if not (missing or mismatched or unexpected):
        for name, variable in targets.items():
            value = np.asarray(fetch(name))
            if not np.issubdtype(value.dtype, np.floating):
                bad_values.append(f"{name}: dtype {value.dtype} is not floating point")
            elif not np.all(np.isfinite(value)):
                bad_values.append(f"{name}: non-finite values")
            else:
                values[name] = value.astype(variable.dtype)

    if missing or mismatched or unexpected or bad_values:
        parts = []
        for title, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", mismatched),
            ("bad values", bad_values),
        ):
            if items:
                parts.append(f"{title} ({len(items)}): " + ", ".join(items))
        if hint:
            parts.append(f"hint: {hint}")
        raise CheckpointError(
            path,
            f"does not match the {description} ({len(mapping)} "
            f"weights expected, {len(targets)} matched): " + "; ".join(parts),
        )

    for name, value in values.items():
        targets[name].assign(value)
    return LoadReport(os.fspath(path), tuple(sorted(values)), tuple(ignored))


def _scope_hint(names: Iterable[str], config: ModelConfig) -> str:
    scopes = sorted({n.split("/", 1)[0] for n in names if "/" in n})
    if config.scope in scopes:
        return ""
    if scopes:
        return (
            f"the checkpoint holds scopes {scopes}, the {config.stage} network expects "
            f"{config.scope!r} (seg_liver = liver, seg_lesion = tumor)"
        )
    return ""


def load_tf1_checkpoint(model, path) -> LoadReport:
    """Loads an original TF1 checkpoint (``seg_liver/...`` or ``seg_lesion/...``).

    ``path`` is the checkpoint prefix (``.../model.ckpt-50000``), one of its
    files, or a directory with a ``checkpoint`` index. Every variable of the
    network must be present with the right shape; anything else raises one
    ``CheckpointError`` listing all problems, except the entries skipped on
    purpose (``IGNORED_VARIABLES`` and optimiser slots ``IGNORED_SLOT_SUFFIXES``).
    """
    config = model_config_of(model)
    check_variable_map(model, config)
    reader = _open_tf_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    hint = _scope_hint(shapes, config) or _variant_hint(shapes, config)
    return _apply(
        model,
        path,
        tf1_variable_map(config),
        shapes,
        reader.get_tensor,
        _is_ignored,
        f"{config.model_name} network",
        hint,
    )


def _variant_hint(names: Iterable[str], config: ModelConfig) -> str:
    """Says so when the checkpoint holds the other family (DS-SFFNet vs 2017 parent)."""
    names = set(names)
    ds_names = set(tf1_variable_map(dataclasses.replace(config, variant="original")))
    parent_names = set(tf1_variable_map(dataclasses.replace(config, variant="liverseg2017")))
    if config.has_decoder and parent_names <= names and not (ds_names - parent_names) & names:
        return "the checkpoint holds the 2017 parent network: use variant 'liverseg2017'"
    if not config.has_decoder and ds_names <= names:
        return "the checkpoint holds DS-SFFNet: use variant 'original' or 'paper'"
    return ""


def infer_number_slices(path, stage: str) -> int:
    """Number of output slices of an original checkpoint (from ``upscore-fuse/biases``)."""
    scope = ModelConfig(stage).scope
    shapes = _open_tf_checkpoint(path).get_variable_to_shape_map()
    name = f"{scope}/upscore-fuse/biases"
    if name not in shapes or len(shapes[name]) != 1:
        raise CheckpointError(
            path,
            f"cannot infer number_slices: no 1-D variable {name}"
            + (
                f" ({_scope_hint(shapes, ModelConfig(stage))})"
                if _scope_hint(shapes, ModelConfig(stage))
                else ""
            ),
        )
    return int(shapes[name][0])


def _is_classifier(name: str) -> bool:
    return name.startswith(("vgg_16/fc", "fc", "predictions", "flatten")) or _is_ignored(name)


def load_imagenet_vgg16(model, path) -> LoadReport:
    """Loads ImageNet VGG-16 conv weights into the backbone ``conv1_1`` ... ``conv5_3``.

    Accepts TF-slim's ``vgg_16.ckpt`` (``vgg_16/convX/convX_Y/{weights,biases}``)
    and Keras' VGG16 ``.h5`` weights (the legacy Keras 2 layout with
    ``layer_names``/``weight_names`` attributes, as the released
    ``..._notop.h5`` files are, or a Keras 3 ``.weights.h5``). Fully connected
    layers are ignored; the rest of the network keeps its initialisation.
    Weights are loaded as stored: Keras' files expect BGR and slim's RGB
    colour order, which does not matter here since the channels are CT slices.
    """
    import h5py

    path_text = os.fspath(path)
    if os.path.isfile(path_text) and h5py.is_hdf5(path_text):
        shapes, arrays = _read_keras_vgg16_h5(path_text)
        return _apply(
            model,
            path,
            keras_vgg16_map(),
            shapes,
            arrays.__getitem__,
            _is_classifier,
            "VGG-16 backbone (Keras layout)",
        )
    reader = _open_tf_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    return _apply(
        model,
        path,
        slim_vgg16_map(),
        shapes,
        reader.get_tensor,
        _is_classifier,
        "VGG-16 backbone (TF-slim layout)",
    )


def _read_keras_vgg16_h5(path: str):
    """Reads every layer's weights of a Keras .h5 as ``{"<layer>/kernel|bias": array}``."""
    import h5py

    arrays: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as f:
            root = f.get("model_weights", f)
            if "layer_names" in root.attrs:
                layers = _legacy_h5_layers(root)
            elif "layers" in root:
                layers = _keras3_h5_layers(root["layers"])
            else:
                raise CheckpointError(
                    path,
                    "not a Keras weights file (no 'layer_names' attribute and no 'layers' group)",
                )
            for layer, datasets in layers:
                _split_kernel_bias(path, layer, datasets, arrays)
    except OSError as err:
        raise CheckpointError(path, f"cannot read HDF5 file: {err}") from None
    return {name: a.shape for name, a in arrays.items()}, arrays


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _legacy_h5_layers(root):
    """Keras 2 layout: ``layer_names`` attr; group per layer with ``weight_names``."""
    for layer in (_text(n) for n in root.attrs["layer_names"]):
        group = root[layer]
        names = [_text(n) for n in group.attrs.get("weight_names", [])]
        yield layer, [np.asarray(group[n]) for n in names]


def _keras3_h5_layers(layers_group):
    """Keras 3 ``save_weights`` layout: ``layers/<path>/vars/<i>`` with a ``name`` attr."""
    for key in layers_group:
        group = layers_group[key]
        if "vars" in group:
            vars_group = group["vars"]
            layer = _text(vars_group.attrs.get("name", key))
            indices = sorted(vars_group, key=int)
            yield layer, [np.asarray(vars_group[i]) for i in indices]
        if "layers" in group:
            yield from _keras3_h5_layers(group["layers"])


def _split_kernel_bias(path, layer, datasets, arrays):
    if not datasets:
        return
    kernels = [a for a in datasets if a.ndim >= 2]
    biases = [a for a in datasets if a.ndim == 1]
    if len(kernels) != 1 or len(biases) > 1 or len(kernels) + len(biases) != len(datasets):
        raise CheckpointError(
            path,
            f"layer {layer!r} does not hold one kernel and one bias "
            f"(shapes {[list(a.shape) for a in datasets]})",
        )
    arrays[f"{layer}/kernel"] = kernels[0]
    if biases:
        arrays[f"{layer}/bias"] = biases[0]


# --------------------------------------------------------------------------- conversion


def convert_tf1_checkpoint(
    tf1_checkpoint,
    output_dir,
    stage: str,
    variant: str = "original",
    number_slices: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Converts an original TF1 checkpoint into a native model directory.

    ``number_slices=None`` takes it from the checkpoint. The output directory
    (see ``io.save_model``) is checked before anything is loaded.
    """
    from liverseg.models.ds_sffnet import build_ds_sffnet
    from liverseg.models.io import check_model_destination, save_model

    ModelConfig(stage, 1 if number_slices is None else number_slices, variant)
    check_model_destination(output_dir, overwrite)
    if number_slices is None:
        number_slices = infer_number_slices(tf1_checkpoint, stage)
    model = build_ds_sffnet(stage, number_slices, variant)
    load_tf1_checkpoint(model, tf1_checkpoint)
    return save_model(model, output_dir, overwrite=overwrite)
