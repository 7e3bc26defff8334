"""Native save / load: bit-exact round trip, overwrite rules, safe-mode .keras files."""

import json
import os

import h5py
import keras
import numpy as np
import pytest

from liverseg.errors import CheckpointError, ConfigError, OutputError
from liverseg.models import ModelConfig, build_ds_sffnet, load_model, save_model
from liverseg.models.io import CONFIG_FILE, WEIGHTS_FILE


def _perturb(model, seed):
    """Gives every weight (frozen ones too) distinct random values."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        w.assign(rng.normal(0, 0.05, w.shape).astype("float32"))
    return model


def _assert_same_weights(a, b):
    assert [w.path for w in a.weights] == [w.path for w in b.weights]
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy(), err_msg=wa.path)


def test_round_trip_is_bit_exact(tmp_path):
    model = _perturb(build_ds_sffnet("tumor", number_slices=2, variant="paper"), 0)
    out_dir = save_model(model, tmp_path / "run" / "model")
    assert sorted(os.listdir(out_dir)) == [WEIGHTS_FILE, CONFIG_FILE]
    assert [p for p in os.listdir(tmp_path / "run") if p != "model"] == []  # no temp left
    document = json.loads((out_dir / CONFIG_FILE).read_text())
    assert document["model_config"] == ModelConfig("tumor", 2, "paper").to_dict()

    loaded = load_model(out_dir)
    assert loaded.name == model.name
    _assert_same_weights(model, loaded)
    x = np.random.default_rng(1).uniform(0, 255, (1, 33, 40, 3)).astype("float32")
    expected, actual = model(x), loaded(x)
    for name in expected:
        np.testing.assert_array_equal(actual[name].numpy(), expected[name].numpy())


def test_overwrite_rules(tmp_path):
    model = _perturb(build_ds_sffnet("liver", variant="liverseg2017"), 2)
    target = tmp_path / "model"
    save_model(model, target)
    with pytest.raises(OutputError, match="pass --overwrite"):
        save_model(model, target)
    other = _perturb(build_ds_sffnet("liver", variant="liverseg2017"), 3)
    save_model(other, target, overwrite=True)
    _assert_same_weights(other, load_model(target))
    assert sorted(os.listdir(target)) == [WEIGHTS_FILE, CONFIG_FILE]

    run_dir = tmp_path / "run"  # a training run keeps other files beside the model
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "metrics.csv").write_text("step\n")
    save_model(model, run_dir)
    _assert_same_weights(model, load_model(run_dir))
    with pytest.raises(OutputError, match="already holds a model"):
        save_model(other, run_dir)
    save_model(other, run_dir, overwrite=True)
    _assert_same_weights(other, load_model(run_dir))
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        ["checkpoints", "metrics.csv", CONFIG_FILE, WEIGHTS_FILE]
    )
    (tmp_path / "file").write_text("keep")
    with pytest.raises(OutputError, match="not a directory"):
        save_model(model, tmp_path / "file", overwrite=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    save_model(model, empty)
    assert (empty / WEIGHTS_FILE).is_file()


def test_symlink_destination_is_replaced_not_followed(tmp_path):
    model = build_ds_sffnet("liver", variant="liverseg2017")
    real = tmp_path / "real"
    save_model(model, real)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(OutputError, match="symlink"):
        save_model(model, link)
    before = (real / WEIGHTS_FILE).read_bytes()
    save_model(_perturb(model, 4), link, overwrite=True)
    assert not link.is_symlink() and (link / CONFIG_FILE).is_file()
    assert (real / WEIGHTS_FILE).read_bytes() == before


def test_save_refuses_foreign_models(tmp_path):
    foreign = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)], name="foreign")
    with pytest.raises(ConfigError):
        save_model(foreign, tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_bad_model_directories(tmp_path):
    model = build_ds_sffnet("liver", variant="liverseg2017")
    good = save_model(model, tmp_path / "good")

    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a liverseg model directory"):
        load_model(tmp_path / "empty")

    config = good / CONFIG_FILE
    config.write_text("{not json")
    with pytest.raises(CheckpointError, match="cannot read model config") as info:
        load_model(good)
    assert str(info.value).startswith(str(config))
    config.write_text(
        json.dumps(
            {"format": "liverseg-model", "format_version": 1, "model_config": {"stage": "spleen"}}
        )
    )
    with pytest.raises(CheckpointError, match="invalid model config"):
        load_model(good)
    # A config that does not match the weights (number_slices 2 vs 3).
    config.write_text(
        json.dumps(
            {
                "format": "liverseg-model",
                "format_version": 1,
                "model_config": ModelConfig("liver", 2, "liverseg2017").to_dict(),
            }
        )
    )
    with pytest.raises(CheckpointError, match="cannot load weights") as info:
        load_model(good)
    assert str(info.value).startswith(str(good / WEIGHTS_FILE))

    (good / WEIGHTS_FILE).unlink()
    config.write_text(
        json.dumps(
            {
                "format": "liverseg-model",
                "format_version": 1,
                "model_config": ModelConfig("liver").to_dict(),
            }
        )
    )
    with pytest.raises(CheckpointError, match="missing weights file"):
        load_model(good)
    config.write_text(ModelConfig("liver").to_json())
    with pytest.raises(CheckpointError, match="not a liverseg model config"):
        load_model(good)
    (tmp_path / "weights.npz").write_bytes(b"")
    with pytest.raises(CheckpointError, match="expected a liverseg model directory"):
        load_model(tmp_path / "weights.npz")


def test_truncated_weights_file_gives_checkpoint_error(tmp_path):
    good = save_model(build_ds_sffnet("tumor", variant="liverseg2017"), tmp_path / "m")
    with h5py.File(good / WEIGHTS_FILE, "a") as f:
        layers = f["layers"]
        del layers[next(k for k in sorted(layers) if len(layers[k].get("vars", ())) == 2)]
    with pytest.raises(CheckpointError, match="cannot load weights"):
        load_model(good)


def test_keras_file_loads_in_safe_mode(tmp_path):
    model = _perturb(build_ds_sffnet("tumor", variant="original"), 5)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    _assert_same_weights(model, loaded)
    x = np.random.default_rng(6).uniform(0, 255, (1, 17, 33, 3)).astype("float32")
    np.testing.assert_array_equal(loaded(x)["fuse"].numpy(), model(x)["fuse"].numpy())


def test_keras_file_with_lambda_is_refused(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(CheckpointError, match="safe mode") as info:
        load_model(path)
    assert str(info.value).startswith(str(path))
    (tmp_path / "junk.keras").write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="safe mode"):
        load_model(tmp_path / "junk.keras")
