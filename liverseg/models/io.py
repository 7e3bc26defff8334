"""Native save and load of liverseg networks (no pickle, Keras safe mode).

A native model is a directory with ``model_config.json`` (the ``ModelConfig``)
and ``model.weights.h5`` (Keras ``save_weights``); other files may sit beside
them (a training run's checkpoints and logs). Everything is written under a
temporary name and renamed into place, so a killed process never leaves a
half-written file under a final name.
``load_model`` also accepts a ``.keras`` file, loaded in safe mode (files
with Python lambdas or references to non-Keras functions are refused), and
only if it holds a liverseg network.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from liverseg.errors import CheckpointError, ConfigError, OutputError
from liverseg.models.config import ModelConfig, model_config_of
from liverseg.utils.atomic import atomic_path, atomic_write_text

CONFIG_FILE = "model_config.json"
WEIGHTS_FILE = "model.weights.h5"
FORMAT_NAME = "liverseg-model"
FORMAT_VERSION = 1


def check_model_destination(directory, overwrite: bool = False) -> None:
    """Raises ``OutputError`` if ``save_model(..., directory, overwrite)`` would refuse.

    The directory may be missing or hold other files (a training run keeps its
    checkpoints and logs beside the model); existing model files, or a
    symlink in place of the directory, are replaced only with ``overwrite``.
    """
    dest = Path(directory)
    if dest.is_symlink():
        if not overwrite:
            raise OutputError(dest, "output exists (a symlink); pass --overwrite to replace it")
        return
    if dest.is_dir():
        existing = [
            n for n in (CONFIG_FILE, WEIGHTS_FILE) if (dest / n).exists() or (dest / n).is_symlink()
        ]
        if existing and not overwrite:
            raise OutputError(
                dest,
                f"output directory already holds a model ({', '.join(existing)});"
                " pass --overwrite to replace it",
            )
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if (dest / name).is_dir() and not (dest / name).is_symlink():
                raise OutputError(dest / name, "is a directory; refusing to replace it")
        return
    if dest.exists():
        raise OutputError(dest, "output path exists and is not a directory")


def _config_document(config: ModelConfig) -> str:
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_config": config.to_dict(),
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def save_model(model, directory, *, overwrite: bool = False) -> Path:
    """Writes ``directory/model_config.json`` and ``directory/model.weights.h5``.

    ``model`` must come from ``build_ds_sffnet`` (its config is read from its
    name). A new directory is written beside its final name and renamed into
    place; in an existing directory each file is written atomically and other
    files are left alone. Returns the directory.
    """
    config = model_config_of(model)
    dest = Path(directory)
    check_model_destination(dest, overwrite)
    if dest.is_dir() and not dest.is_symlink():
        with atomic_path(dest / WEIGHTS_FILE, overwrite=True) as tmp:
            model.save_weights(os.fspath(tmp))
        atomic_write_text(dest / CONFIG_FILE, _config_document(config), overwrite=True)
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        model.save_weights(os.fspath(tmp_dir / WEIGHTS_FILE))
        atomic_write_text(tmp_dir / CONFIG_FILE, _config_document(config))
        if dest.is_symlink():
            dest.unlink()
        os.rename(tmp_dir, dest)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return dest


def read_model_config(directory) -> ModelConfig:
    """Reads and validates ``directory/model_config.json``."""
    path = Path(directory) / CONFIG_FILE
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(path, "missing; not a liverseg model directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(path, f"cannot read model config: {err}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise CheckpointError(path, f"not a liverseg model config (format != {FORMAT_NAME!r})")
    if document.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            path, f"unsupported format_version {document.get('format_version')!r}"
        )
    try:
        return ModelConfig.from_dict(document.get("model_config"))
    except ConfigError as err:
        raise CheckpointError(path, f"invalid model config: {err}") from None


def load_model(path):
    """Loads a native model directory or a ``.keras`` file (safe mode) into a Keras model."""
    p = Path(path)
    if p.is_dir():
        return _load_directory(p)
    if not p.exists():
        raise CheckpointError(p, "model path does not exist")
    if p.suffix == ".keras":
        return _load_keras_file(p)
    raise CheckpointError(
        p, f"expected a liverseg model directory ({CONFIG_FILE} + {WEIGHTS_FILE}) or a .keras file"
    )


def _load_directory(directory: Path):
    from liverseg.models.ds_sffnet import build_from_config

    config = read_model_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(weights, "missing weights file")
    model = build_from_config(config)
    _check_weights_file(weights, model)
    try:
        model.load_weights(os.fspath(weights))
    except Exception as err:  # Keras raises ValueError, OSError, KeyError ... on bad files
        raise CheckpointError(
            weights, f"cannot load weights for {config.model_name}: {_one_line(err)}"
        ) from None
    return model


def _check_weights_file(path: Path, model) -> None:
    """Checks that the file holds exactly the model's weight shapes.

    Keras only warns about layers missing from a weights file; a file with
    fewer or other weights must not load.
    """
    import h5py

    shapes = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.split("/")[-2:-1] == ["vars"]:
            shapes.append(tuple(obj.shape))

    try:
        with h5py.File(path, "r") as f:
            f.visititems(visit)
    except OSError as err:
        raise CheckpointError(path, f"cannot read HDF5 weights file: {err}") from None
    expected = sorted(tuple(w.shape) for w in model.weights)
    if sorted(shapes) != expected:
        raise CheckpointError(
            path,
            f"cannot load weights for {model.name}: the file holds "
            f"{len(shapes)} weights, the network {len(expected)}, "
            "or their shapes differ",
        )


def _load_keras_file(path: Path):
    import keras

    import liverseg.models.layers  # noqa: F401  (registers the custom layers)

    try:
        model = keras.saving.load_model(os.fspath(path), compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many types for corrupt / unsafe files
        raise CheckpointError(
            path, f"cannot load Keras model in safe mode: {_one_line(err)}"
        ) from None
    _check_liverseg_network(path, model)
    return model


def _check_liverseg_network(path: Path, model) -> None:
    """Refuses a valid Keras file that does not hold a liverseg network.

    Without this, another Keras model would load and then fail (or, worse,
    run) on every volume with a confusing error.
    """
    from liverseg.models.config import OUTPUT_NAMES

    name = getattr(model, "name", "")
    try:
        config = ModelConfig.from_model_name(name)
    except ConfigError:
        raise CheckpointError(
            path,
            f"holds a Keras model named {name!r}, not a liverseg "
            "network (models are made with build_ds_sffnet)",
        ) from None
    outputs = model.output if isinstance(model.output, dict) else {}
    inputs = getattr(model, "inputs", None) or []
    input_ok = len(inputs) == 1 and tuple(inputs[0].shape)[-1:] == (3,)
    outputs_ok = set(outputs) == set(OUTPUT_NAMES) and all(
        tuple(t.shape)[-1:] == (config.number_slices,) for t in outputs.values()
    )
    if not (input_ok and outputs_ok):
        raise CheckpointError(
            path,
            f"model {name!r} does not have the liverseg network's "
            f"input [N, H, W, 3] and outputs {list(OUTPUT_NAMES)} "
            f"with {config.number_slices} channel(s)",
        )


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:500] + ("..." if len(text) > 500 else "") if text else type(err).__name__
