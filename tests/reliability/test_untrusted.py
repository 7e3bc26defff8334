"""Untrusted files: pickles are never loaded, Keras files only in safe mode, served
inputs are checked.

Every pickle here carries a payload that creates a marker file when
unpickled; the marker must never appear.
"""

import ast
import copy
import json
import pickle
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from liverseg.errors import CheckpointError
from liverseg.models import load_model
from liverseg.training import checkpoints
from tests.reliability.conftest import ROOT, assert_one_line_error, run_tool


def touch(path):
    """The pickle payload: proof that something was unpickled."""
    Path(path).write_text("unpickled!")
    return 0


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return touch, (self.marker,)


def pickled_array(marker) -> np.ndarray:
    return np.array([Payload(marker)], dtype=object)


def pickle_bytes(marker) -> bytes:
    return pickle.dumps({"weights": Payload(marker)})


# ----------------------------------------------------------------------------
# No pickle is ever loaded


def test_library_never_unpickles_or_loads_keras_unsafely():
    """Static guard over liverseg/ and tools/: np.load always with allow_pickle=False,
    no pickle-based module imported, Keras loading always in safe mode."""
    forbidden_modules = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
    problems = []
    files = sorted((ROOT / "liverseg").rglob("*.py")) + sorted((ROOT / "tools").glob("*.py"))
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
                )
                for name in names:
                    if name and name.split(".")[0] in forbidden_modules:
                        problems.append(f"{path}:{node.lineno} imports {name}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                keywords = {k.arg: k.value for k in node.keywords}
                if node.func.attr == "load" and getattr(node.func.value, "id", "") in (
                    "np",
                    "numpy",
                ):
                    flag = keywords.get("allow_pickle")
                    if not (isinstance(flag, ast.Constant) and flag.value is False):
                        problems.append(f"{path}:{node.lineno} np.load without allow_pickle=False")
                if node.func.attr == "load_model":
                    flag = keywords.get("safe_mode")
                    if flag is not None and not (isinstance(flag, ast.Constant) and flag.value):
                        problems.append(f"{path}:{node.lineno} load_model with safe_mode off")
                if node.func.attr == "enable_unsafe_deserialization":
                    problems.append(f"{path}:{node.lineno} enables unsafe deserialization")
    assert len(files) > 30 and problems == []


class _Optimizer:
    """Stands in for the training optimiser: a state dict of arrays."""

    def __init__(self, value):
        self.value = np.full(3, value, np.float32)
        self.loaded = None

    def state(self):
        return {"iterations": np.asarray(1), "slot/0": self.value}

    def load_state(self, state):
        self.loaded = dict(state)


def _tiny_model():
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="dense")], name="tiny")


def test_pickled_optimizer_state_in_the_newest_checkpoint_is_refused(tmp_path, caplog):
    model_dir, marker = tmp_path / "run", tmp_path / "marker"
    model = _tiny_model()
    checkpoints.save_checkpoint(model_dir, model, _Optimizer(1.0), {"step": 1})
    newest = checkpoints.save_checkpoint(model_dir, model, _Optimizer(2.0), {"step": 2})
    np.savez(newest / "optimizer.npz", iterations=np.asarray(2), evil=pickled_array(marker))

    optimizer = _Optimizer(0.0)
    state = checkpoints.restore_latest(model_dir, _tiny_model(), optimizer)
    assert state["step"] == 1  # fell back to the last checkpoint without pickles
    np.testing.assert_array_equal(optimizer.loaded["slot/0"], np.full(3, 1.0, np.float32))
    assert not marker.exists()
    assert any(
        "ckpt-00000002" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records
    )


def test_pickle_named_like_a_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "marker"
    blob = pickle_bytes(marker)
    # A model directory whose weights file is a pickle.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model_config.json").write_text(
        json.dumps(
            {
                "format": "liverseg-model",
                "format_version": 1,
                "model_config": {"stage": "liver", "number_slices": 3, "variant": "original"},
            }
        )
    )
    (model_dir / "model.weights.h5").write_bytes(blob)
    with pytest.raises(CheckpointError, match="cannot read HDF5 weights file") as info:
        load_model(model_dir)
    assert str(info.value).startswith(str(model_dir / "model.weights.h5"))
    # A .keras file, a .npy and a .pkl that are pickles.
    for name in ("model.keras", "model.npy", "model.pkl"):
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(CheckpointError) as info:
            load_model(tmp_path / name)
        assert str(info.value).startswith(str(tmp_path / name))
    # A TF1 checkpoint whose index is a pickle.
    from liverseg.models import build_ds_sffnet, load_tf1_checkpoint

    (tmp_path / "seg_liver.ckpt.index").write_bytes(blob)
    (tmp_path / "seg_liver.ckpt.data-00000-of-00001").write_bytes(blob)
    with pytest.raises(CheckpointError, match="cannot read TensorFlow checkpoint"):
        load_tf1_checkpoint(build_ds_sffnet("liver"), tmp_path / "seg_liver.ckpt")
    assert not marker.exists()


def _cache_with_pickle(tmp_path, tiny_models):
    from liverseg.data.examples import VolumeRecord
    from liverseg.training.data import LiverProbabilityCache
    from tests.reliability import badfiles as bf

    liver, _ = tiny_models
    marker = tmp_path / "marker"
    cache = LiverProbabilityCache(str(liver), tmp_path / "cache", batch_size=2)
    cache.dir.mkdir(parents=True)
    np.save(cache.dir / "7.npy", pickled_array(marker), allow_pickle=True)
    record = VolumeRecord("7", bf.ct_values(), bf.label_values())
    return cache, record, marker


def test_pickled_liver_probability_cache_is_never_unpickled(tmp_path, tiny_models):
    cache, record, marker = _cache_with_pickle(tmp_path, tiny_models)
    cache(record)  # the pickled entry is refused by np.load and recomputed
    assert not marker.exists()


def test_unreadable_liver_probability_cache_entry_is_recomputed(tmp_path, tiny_models):
    cache, record, marker = _cache_with_pickle(tmp_path, tiny_models)
    prob = cache(record)
    assert prob.shape == record.hu.shape and prob.dtype == np.float32
    assert not marker.exists()


# ----------------------------------------------------------------------------
# Keras files: safe mode, liverseg networks only


def _keras_archive(path: Path, config: dict, files: dict) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in files.items():
            z.writestr(name, json.dumps(config) if name == "config.json" else blob)
    return path


@pytest.fixture(scope="module")
def dense_keras_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keras") / "dense.keras"
    inputs = keras.Input((4,))
    keras.Model(inputs, keras.layers.Dense(2, name="d")(inputs), name="dense_net").save(path)
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    return path, json.loads(files["config.json"]), files


def _payloads(base: dict, marker: Path) -> dict:
    """config.json variants that try to run code while the model is rebuilt."""
    out = {}
    c = copy.deepcopy(base)
    c["config"]["layers"][1].update(
        {"module": "os", "class_name": "system", "config": f"touch {marker}"}
    )
    out["layer_is_os_system"] = c
    c = copy.deepcopy(base)
    c["config"]["layers"][1]["config"]["activation"] = {
        "module": "os",
        "class_name": "function",
        "config": "system",
        "registered_name": "function",
    }
    out["activation_is_os_system"] = c
    out["model_is_subprocess_popen"] = {
        "module": "subprocess",
        "class_name": "Popen",
        "config": {"args": ["touch", str(marker)]},
        "registered_name": None,
    }
    out["model_is_builtin_exec"] = {
        "module": "builtins",
        "class_name": "function",
        "config": "exec",
        "registered_name": "function",
    }
    c = copy.deepcopy(base)
    c["config"]["layers"][1].update(
        {
            "module": "keras.utils",
            "class_name": "get_file",
            "config": {"fname": "x", "origin": f"file://{marker}.src", "cache_dir": str(marker)},
        }
    )
    out["layer_is_keras_get_file"] = c
    c = copy.deepcopy(base)
    c["config"]["layers"][1] = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "registered_name": None,
        "name": "d",
        "inbound_nodes": c["config"]["layers"][1]["inbound_nodes"],
        "config": {
            "name": "d",
            "function": {
                "class_name": "__lambda__",
                "config": {"code": "", "defaults": None, "closure": None},
            },
        },
    }
    out["lambda_layer"] = c
    return out


@pytest.mark.parametrize(
    "payload",
    [
        "layer_is_os_system",
        "activation_is_os_system",
        "model_is_subprocess_popen",
        "model_is_builtin_exec",
        "layer_is_keras_get_file",
        "lambda_layer",
    ],
)
def test_crafted_keras_files_are_refused_in_safe_mode(dense_keras_file, tmp_path, payload):
    _, base, files = dense_keras_file
    marker = tmp_path / "marker"
    path = _keras_archive(tmp_path / f"{payload}.keras", _payloads(base, marker)[payload], files)
    with pytest.raises(CheckpointError, match="cannot load Keras model in safe mode") as info:
        load_model(path)
    assert str(info.value).startswith(str(path))
    assert not marker.exists() and not Path(f"{marker}.src").exists()


def test_a_keras_file_that_is_not_a_liverseg_network_is_refused(dense_keras_file):
    path, _, _ = dense_keras_file
    with pytest.raises(CheckpointError, match="not a liverseg network") as info:
        load_model(path)
    assert str(info.value) == (
        f"{path}: holds a Keras model named 'dense_net', not a liverseg "
        "network (models are made with build_ds_sffnet)"
    )


def test_a_renamed_foreign_keras_model_is_refused(tmp_path):
    inputs = keras.Input((None, None, 3))
    outputs = {"fuse": keras.layers.Conv2D(1, 1, name="c")(inputs)}
    path = tmp_path / "impostor.keras"
    keras.Model(inputs, outputs, name="liverseg_liver_original_s3").save(path)
    with pytest.raises(CheckpointError, match="does not have the liverseg network's"):
        load_model(path)


def test_infer_tool_refuses_an_unsafe_keras_model_in_one_line(tmp_path):
    from tests.reliability import badfiles as bf

    inputs = keras.Input((None, None, 3))
    evil = tmp_path / "liver.keras"
    keras.Model(
        inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs), name="liverseg_liver_original_s3"
    ).save(evil)
    bf.write_good_ct(tmp_path / "volume-1.nii.gz")
    result = run_tool(
        "infer",
        f"--input_dir={tmp_path / 'volume-1.nii.gz'}",
        f"--output_dir={tmp_path / 'out'}",
        f"--liver_model={evil}",
    )
    assert_one_line_error(result, f"error: {evil}: cannot load Keras model in safe mode")
    assert not (tmp_path / "out" / "segmentation-1.nii.gz").exists()


# ----------------------------------------------------------------------------
# The serving signature checks its input


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_models):
    import tensorflow as tf

    from liverseg.export import export_model_file

    liver, _ = tiny_models
    path = export_model_file(liver, tmp_path_factory.mktemp("export"), stage="liver")
    return tf.saved_model.load(str(path))


@pytest.mark.parametrize(
    "signature, argument", [("serving_default", "ct_slices"), ("scaled", "scaled_slices")]
)
@pytest.mark.parametrize("dtype", ["int32", "float64", "uint8", "float16"])
def test_serving_signature_rejects_other_dtypes(served, signature, argument, dtype):
    import tensorflow as tf

    function = served.signatures[signature]
    good = function(**{argument: tf.zeros((1, 32, 32, 3), tf.float32)})
    assert good["probabilities"].shape == (1, 32, 32, 3)
    with pytest.raises(
        (tf.errors.InvalidArgumentError, TypeError, ValueError), match="float|double|int|half|dtype"
    ):
        function(**{argument: tf.zeros((1, 32, 32, 3), getattr(tf, dtype))})
