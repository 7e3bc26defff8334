"""Real (tiny) training runs through train(): outputs, resume, fallback, mask sources."""

import json
import shutil

import numpy as np
import pytest

from liverseg.phantoms.training import write_phantoms
from liverseg.training import checkpoints
from liverseg.training.trainer import TrainConfig, train


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("phantoms")
    write_phantoms(d, 3, (32, 32, 10), seed=7)
    return d


def _config(phantom_dir, model_dir, **kw):
    base = dict(
        stage="liver",
        data_dir=str(phantom_dir),
        model_dir=str(model_dir),
        recipe="fast",
        max_steps=2,
        batch_size=2,
        val_every=1,
        save_every=1,
        log_every=1,
        val_fraction=0.34,
    )
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def liver_run(phantom_dir, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("liver")
    result = train(_config(phantom_dir, model_dir))
    return model_dir, result


def test_liver_run_writes_everything(liver_run):
    model_dir, result = liver_run
    assert result["step"] == 2
    state = json.loads((model_dir / "train_state.json").read_text())
    assert state["step"] == 2 and state["checkpoint"] == "ckpt-00000002"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["stage"] == "liver" and config["max_steps"] == 2 and config["batch_size"] == 2
    assert [p.name for p in checkpoints.list_checkpoints(model_dir)] == [
        "ckpt-00000001",
        "ckpt-00000002",
    ]
    assert (model_dir / "model_config.json").is_file()
    assert (model_dir / "model.weights.h5").is_file()
    assert list((model_dir / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((model_dir / "logs" / "validation").glob("events.out.tfevents.*"))
    assert (model_dir / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (model_dir / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("step,")
    assert np.isfinite(result["metrics"]["loss_total"])
    assert 0.0 <= result["val_dice"] <= 1.0


def test_saved_model_loads_and_matches_checkpoint(liver_run):
    from liverseg.models import load_model

    model_dir, _ = liver_run
    model = load_model(model_dir)
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype(np.float32)
    out = model(x)["fuse"].numpy()
    assert out.shape == (1, 32, 32, 3) and np.all(np.isfinite(out))


def test_resume_continues_and_corrupt_checkpoint_falls_back(liver_run, phantom_dir, tmp_path):
    src, _ = liver_run
    model_dir = tmp_path / "resume"
    shutil.copytree(src, model_dir)
    # Corrupt the newest checkpoint: restore must fall back to step 1.
    (model_dir / "ckpt-00000002" / "model.weights.h5").write_bytes(b"garbage")
    result = train(_config(phantom_dir, model_dir, max_steps=3))
    assert result["step"] == 3
    rows = [r.split(",")[0] for r in (model_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert rows[-2:] == ["2", "3"]  # resumed after step 1: updates 2 and 3 redone
    assert json.loads((model_dir / "train_state.json").read_text())["step"] == 3


def test_resume_refuses_other_settings(liver_run, phantom_dir):
    from liverseg.errors import ConfigError

    model_dir, _ = liver_run
    with pytest.raises(ConfigError, match="other settings"):
        train(_config(phantom_dir, model_dir, recipe="original"))


def test_tumor_stage_with_gt_mask(phantom_dir, tmp_path):
    result = train(
        _config(phantom_dir, tmp_path / "tumor_gt", stage="tumor", loss_mask="gt", max_steps=1)
    )
    assert result["step"] == 1 and result["num_train_examples"] > 0
    assert not (tmp_path / "tumor_gt" / "cache").exists()


def test_tumor_stage_with_liver_model_caches_probabilities(liver_run, phantom_dir, tmp_path):
    liver_dir, _ = liver_run
    model_dir = tmp_path / "tumor_model"
    result = train(
        _config(phantom_dir, model_dir, stage="tumor", liver_model=str(liver_dir), max_steps=1)
    )
    assert result["step"] == 1
    cached = list((model_dir / "cache" / "liver_probability").rglob("*.npy"))
    assert len(cached) == 3
    prob = np.load(cached[0], allow_pickle=False)
    assert prob.dtype == np.float32 and prob.shape == (32, 32, 10)
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    assert json.loads((model_dir / "config.json").read_text())["loss_mask"] == "liver_model"


def test_tumor_stage_needs_a_mask_source(phantom_dir, tmp_path):
    from liverseg.errors import ConfigError

    with pytest.raises(ConfigError, match="liver_model"):
        train(_config(phantom_dir, tmp_path / "t", stage="tumor", loss_mask="liver_model"))


def test_fast_init_scales_first_layer_and_gives_heads_he_weights():
    import keras

    from liverseg.models.ds_sffnet import backbone_layer_names, build_ds_sffnet
    from liverseg.training.recipes import FAST
    from liverseg.training.trainer import _initialise

    model = build_ds_sffnet("liver", seed=4)
    before = {l.name: l.get_weights() for l in model.layers if l.weights}
    config = TrainConfig(stage="liver", data_dir="unused", model_dir="unused", seed=3)
    message = _initialise(model, config, FAST)
    assert "21 side/decoder/head convs" in message
    np.testing.assert_allclose(
        model.get_layer("conv1_1").kernel.numpy(), before["conv1_1"][0] * (2.0 / 255.0), rtol=1e-6
    )
    for layer in model.layers:
        if not layer.weights or layer.name == "conv1_1":
            continue
        kernel = layer.kernel.numpy()
        if type(layer) is keras.layers.Conv2D and layer.name not in backbone_layer_names():
            fan_in = np.prod(kernel.shape[:-1])
            # He normal: truncated normal with std sqrt(2 / fan_in) (within sampling error).
            assert np.std(kernel) == pytest.approx(np.sqrt(2.0 / fan_in), rel=0.35), layer.name
        else:  # backbone and frozen transposed convs untouched
            np.testing.assert_array_equal(kernel, before[layer.name][0], err_msg=layer.name)


@pytest.mark.parametrize(
    "recipe,given,want",
    [("original", None, "original"), ("fast", None, "all"), ("original", "all", "all")],
)
def test_variable_selection_defaults_to_the_recipes(recipe, given, want):
    config = TrainConfig(
        stage="liver", data_dir="d", model_dir="m", recipe=recipe, variable_selection=given
    ).resolved()
    assert config.variable_selection == want


def test_unknown_variable_selection_is_refused():
    from liverseg.errors import ConfigError

    with pytest.raises(ConfigError, match="variable_selection"):
        TrainConfig(
            stage="liver", data_dir="d", model_dir="m", variable_selection="some"
        ).resolved()


@pytest.mark.parametrize(
    "recipe,augment,geometry", [("original", False, "native"), ("fast", True, "normalize")]
)
def test_recipes_decide_augmentation_and_grid(recipe, augment, geometry):
    config = TrainConfig(stage="liver", data_dir="d", model_dir="m", recipe=recipe).resolved()
    assert config.augment is augment and config.geometry == geometry
    overridden = TrainConfig(
        stage="liver",
        data_dir="d",
        model_dir="m",
        recipe=recipe,
        augment=not augment,
        geometry="native",
    ).resolved()
    assert overridden.augment is (not augment) and overridden.geometry == "native"
