"""SavedModel export of a liver or tumour network for TF Serving.

The export holds one tf.Module with two signatures:

``serving_default``
    input ``ct_slices``: float32 [batch, H, W, 3] in Hounsfield units (three
    consecutive slices as channels, rows = NIfTI axis 0, columns = axis 1,
    as ``liverseg.data.preprocess`` takes them). Windowing and scaling run
    inside the graph: clip to ``HU_WINDOW`` = [-150, 250], then
    ``255 * (x + 150) / 400`` (float32, the same operations as
    ``preprocess.window_and_scale(hu, -150, 250)``).
``scaled``
    input ``scaled_slices``: float32 [batch, H, W, 3] already in 0..255,
    for clients that reproduce the original per-volume scaling themselves.

Both answer ``logits`` (the main ``fuse`` output) and ``probabilities``
(its sigmoid), float32 [batch, H, W, number_slices].

Why a fixed window: the original scales each volume by the min and max of
its clipped values (docs/ORIGINAL.md section 2). A server sees slices, not volumes,
so it uses the window itself. The two agree exactly whenever the volume spans
the window (min <= -150 HU and max >= 250 HU), which abdominal CT, with air
around the body and bone in it, always does. For a volume that does not, send
``window_and_scale(volume)`` slices to the ``scaled`` signature.

Input checks run in the graph, before the network, and fail with
``InvalidArgumentError`` naming the problem: rank other than 4, a channel
count other than 3, an empty batch, H or W below 16 and non-finite values
(and, for ``scaled``, values outside 0..255). The input's shape is left
unconstrained in the signature so that every client (``tf.saved_model.load``,
``saved_model_cli``, TF Serving) reaches these checks rather than a
client-side shape error or an unchecked graph; the dtype is fixed.

The export is written to a hidden directory beside ``export_dir/version``
and renamed into place, so TF Serving, which watches ``export_dir`` for
numeric version directories, never sees a half-written version.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from liverseg.data.preprocess import HU_WINDOW
from liverseg.errors import CheckpointError, ConfigError, OutputError
from liverseg.models.config import ModelConfig

SERVING_SIGNATURE = "serving_default"
SCALED_SIGNATURE = "scaled"
HU_INPUT = "ct_slices"
SCALED_INPUT = "scaled_slices"
LOGITS = "logits"
PROBABILITIES = "probabilities"
INPUT_CHANNELS = 3
MIN_SPATIAL_SIZE = 16
#: Slack on the 0..255 range check of the ``scaled`` signature (float32 rounding).
SCALED_RANGE_TOLERANCE = 1e-3
DEFAULT_VERSION = 1
#: Export metadata, where TF Serving expects extra files (not loaded as a graph).
METADATA_FILE = os.path.join("assets.extra", "liverseg_export.json")
SAVED_MODEL_FILE = "saved_model.pb"

# Exactly preprocess.window_and_scale's float32 arithmetic for lo, hi = HU_WINDOW.
_LO = np.float32(HU_WINDOW[0])
_HI = np.float32(HU_WINDOW[1])
_SCALE = np.float32(255.0) / np.float32(HU_WINDOW[1] - HU_WINDOW[0])

_INPUT_SPEC = tf.TensorSpec(shape=None, dtype=tf.float32)


def hu_to_scaled(x: tf.Tensor) -> tf.Tensor:
    """Clips HU to the window and maps it to 0..255, in float32."""
    return (tf.clip_by_value(x, _LO, _HI) - _LO) * _SCALE


def check_input(x: tf.Tensor, name: str) -> tf.Tensor:
    """Returns ``x`` with static shape [?, ?, ?, 3] once the graph has checked it.

    The rank check runs first so that the shape checks never index a
    dimension that is not there. The static shape comes from a reshape to
    the checked runtime shape, not from ``tf.ensure_shape``: with the latter
    the rank check was skipped at run time (measured with TF 2.21), and a
    rank-3 input failed with an obscure slicing error instead.
    """
    rank_ok = tf.debugging.assert_equal(
        tf.rank(x), 4, message=f"{name} must have rank 4 [batch, height, width, {INPUT_CHANNELS}]"
    )
    with tf.control_dependencies([rank_ok]):
        shape = tf.shape(x)
        checks = [
            tf.debugging.assert_equal(
                shape[3],
                INPUT_CHANNELS,
                message=f"{name} must have {INPUT_CHANNELS} channels (consecutive slices) "
                "in its last dimension",
            ),
            tf.debugging.assert_positive(
                shape[0], message=f"{name} must hold at least one image (batch >= 1)"
            ),
            tf.debugging.assert_greater_equal(
                tf.minimum(shape[1], shape[2]),
                MIN_SPATIAL_SIZE,
                message=f"{name} height and width must be at least {MIN_SPATIAL_SIZE}",
            ),
            tf.debugging.assert_all_finite(x, message=f"{name} holds NaN or infinite values"),
        ]
    with tf.control_dependencies(checks):
        x = tf.identity(x)
    return tf.reshape(x, tf.stack([shape[0], shape[1], shape[2], INPUT_CHANNELS]))


class ServingModule(tf.Module):
    """The exported graph: input checks, windowing and the Keras network.

    The Keras model is held only by the functions' closures, and the
    variables their graphs capture are tracked explicitly: with the model as
    a tracked attribute (Keras 3) the TF1-style loader used by TF Serving and
    ``saved_model_cli run`` restores other variable objects than the graph
    reads and fails with "Could not find variable" (keras-team/keras#20095),
    while tracking both would store every weight twice.
    """

    def __init__(self, model):
        super().__init__(name="liverseg_serving")

        def outputs(scaled):
            logits = tf.cast(model(scaled, training=False)["fuse"], tf.float32)
            return {LOGITS: logits, PROBABILITIES: tf.sigmoid(logits)}

        @tf.function(input_signature=[_INPUT_SPEC])
        def serve_hu(ct_slices):
            return outputs(hu_to_scaled(check_input(ct_slices, HU_INPUT)))

        @tf.function(input_signature=[_INPUT_SPEC])
        def serve_scaled(scaled_slices):
            x = check_input(scaled_slices, SCALED_INPUT)
            message = (
                f"{SCALED_INPUT} must lie in 0..255 (send Hounsfield units to "
                f"'{SERVING_SIGNATURE}' instead)"
            )
            in_range = [
                tf.debugging.assert_greater_equal(
                    tf.reduce_min(x), np.float32(-SCALED_RANGE_TOLERANCE), message=message
                ),
                tf.debugging.assert_less_equal(
                    tf.reduce_max(x), np.float32(255.0 + SCALED_RANGE_TOLERANCE), message=message
                ),
            ]
            with tf.control_dependencies(in_range):
                x = tf.identity(x)
            return outputs(x)

        self.serve_hu = serve_hu
        self.serve_scaled = serve_scaled
        captured = {}
        for function in self.signature_functions().values():
            for variable in function.variables:
                captured.setdefault(id(variable), variable)
        # In the model's weight order, so that equal models give equal exports.
        order = {id(getattr(w, "value", w)): i for i, w in enumerate(model.weights)}
        self.model_variables = sorted(captured.values(), key=lambda v: order.get(id(v), len(order)))

    def signature_functions(self) -> dict:
        """Signature key -> concrete function, for ``tf.saved_model.save``."""
        return {
            SERVING_SIGNATURE: self.serve_hu.get_concrete_function(),
            SCALED_SIGNATURE: self.serve_scaled.get_concrete_function(),
        }


def check_version(version) -> int:
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ConfigError(
            f"version must be a positive integer (TF Serving version directory), got {version!r}"
        )
    return int(version)


def _is_saved_model_dir(path: Path) -> bool:
    return path.is_dir() and (path / SAVED_MODEL_FILE).is_file()


def check_export_destination(
    export_dir, version: int = DEFAULT_VERSION, overwrite: bool = False
) -> Path:
    """Returns ``export_dir/version`` or raises ``OutputError`` if it cannot be written.

    An empty directory is fine; an existing version is replaced only with
    ``overwrite`` and only if it is a SavedModel directory, so unrelated data
    is never deleted.
    """
    root = Path(export_dir)
    if root.exists() and not root.is_dir():
        raise OutputError(root, "export directory exists and is not a directory")
    dest = root / str(check_version(version))
    if dest.is_symlink():
        if not overwrite:
            raise OutputError(dest, "version exists (a symlink); pass --overwrite to replace it")
    elif dest.is_dir() and not os.listdir(dest):
        pass
    elif dest.exists():
        if not _is_saved_model_dir(dest):
            raise OutputError(
                dest, "exists and is not a SavedModel directory; refusing to replace it"
            )
        if not overwrite:
            raise OutputError(
                dest, "version exists; pass --overwrite to replace it or choose another --version"
            )
    return dest


def export_saved_model(
    model, export_dir, *, version: int = DEFAULT_VERSION, overwrite: bool = False
) -> Path:
    """Writes ``model`` (from ``build_ds_sffnet`` / ``load_model``) to ``export_dir/version``.

    Returns the version directory. See the module docstring for the
    signatures.
    """
    from liverseg.models.converter import model_config_of

    config = model_config_of(model)
    dest = check_export_destination(export_dir, version, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    module = ServingModule(model)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    backup = None
    try:
        tf.saved_model.save(module, os.fspath(tmp), signatures=module.signature_functions())
        _write_metadata(tmp / METADATA_FILE, config)
        _make_readable(tmp)
        if dest.is_symlink():
            dest.unlink()
        elif dest.exists():
            backup = Path(
                tempfile.mkdtemp(prefix=f".{dest.name}.old.", suffix=".tmp", dir=dest.parent)
            )
            os.replace(dest, backup / dest.name)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if backup is not None and not dest.exists():
            os.replace(backup / dest.name, dest)
        raise
    finally:
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    return dest


def _make_readable(directory: Path) -> None:
    """Gives the export the permissions a plain ``mkdir`` would (``mkdtemp`` makes 0700).

    TF Serving often runs as another user (e.g. in a container).
    """
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)


def _write_metadata(path: Path, config: ModelConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "model_config": config.to_dict(),
        "hu_window": list(HU_WINDOW),
        "signatures": {
            SERVING_SIGNATURE: {"input": HU_INPUT, "units": "Hounsfield"},
            SCALED_SIGNATURE: {"input": SCALED_INPUT, "units": "0..255"},
        },
        "outputs": [LOGITS, PROBABILITIES],
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=2, sort_keys=True)
        f.write("\n")


def export_model_file(
    model_path, export_dir, *, stage: str, version: int = DEFAULT_VERSION, overwrite: bool = False
) -> Path:
    """Loads a saved liverseg model, checks it is the ``stage`` network and exports it.

    The destination is checked before the (slow) model load.
    """
    from liverseg.models.config import STAGES
    from liverseg.models.converter import model_config_of
    from liverseg.models.io import load_model

    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {STAGES}, got {stage!r}")
    check_export_destination(export_dir, version, overwrite)
    model = load_model(model_path)
    config = model_config_of(model)
    if config.stage != stage:
        raise CheckpointError(
            model_path,
            f"holds the {config.stage} network "
            f"({config.model_name}), not the {stage} network "
            f"asked for with stage={stage!r}",
        )
    return export_saved_model(model, export_dir, version=version, overwrite=overwrite)
