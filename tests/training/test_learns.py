"""Training with the tools' defaults learns (a dead network fails here).

Each stage trains from scratch with nothing but the data and model paths
given (plus a bounded number of small updates for CI time) on tiny phantoms
and must beat a validation Dice floor. The original tumour network trained
this way (the old default) scored 0.0000 at every validation: its head
ReLUs die. The floors are far below what the stages reach (liver ~0.8,
tumour ~0.2 on these 48x48 phantoms), so only a network that stopped
learning fails them.
"""

import json

import pytest

from liverseg.errors import ConfigError
from liverseg.phantoms.training import write_phantoms
from liverseg.training.trainer import TrainConfig
from liverseg.tuning import train_then_tune

LIVER_FLOOR, TUMOR_FLOOR = 0.5, 0.05


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    directory = tmp_path_factory.mktemp("learn_phantoms")
    write_phantoms(directory, 10, (48, 48, 12), seed=11)
    return directory


def _defaults(stage, phantoms, model_dir, steps, **extra):
    return TrainConfig(
        stage=stage,
        data_dir=str(phantoms),
        model_dir=str(model_dir),
        max_steps=steps,
        batch_size=4,
        val_every=steps // 2,
        save_every=steps,
        log_every=steps,
        **extra,
    )


@pytest.fixture(scope="module")
def liver_model(phantoms, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("learn") / "liver"
    summary = train_then_tune(_defaults("liver", phantoms, model_dir, 40))
    return model_dir, summary


def test_liver_stage_learns_with_defaults(liver_model):
    model_dir, summary = liver_model
    assert summary["val_dice"] > LIVER_FLOOR
    config = json.loads((model_dir / "config.json").read_text())
    assert config["recipe"] == "fast" and config["variant"] == "original"
    assert config["augment"] is True and config["geometry"] == "normalize"
    assert (model_dir / "plans.json").is_file() and (model_dir / "split.json").is_file()


def test_tumor_stage_learns_with_defaults_and_tunes_the_cascade(
    phantoms, liver_model, tmp_path, capsys
):
    liver_dir, _ = liver_model
    model_dir = tmp_path / "tumor"
    summary = train_then_tune(
        _defaults("tumor", phantoms, model_dir, 150, liver_model=str(liver_dir))
    )
    assert summary["val_dice"] > TUMOR_FLOOR
    config = json.loads((model_dir / "config.json").read_text())
    assert config["variant"] == "paper" and config["loss_mask"] == "liver_model"
    assert "head ReLUs die" in capsys.readouterr().out
    # the tumour stage trained on the liver model's grid and tuned the cascade
    assert (
        json.loads((model_dir / "plans.json").read_text())["geometry"]
        == json.loads((liver_dir / "plans.json").read_text())["geometry"]
    )
    stored = json.loads((model_dir / "postprocessing.json").read_text())
    assert stored == json.loads((liver_dir / "postprocessing.json").read_text())
    assert stored["details"]["cases"] == summary["tuning_cases"]
    assert summary["postprocessing"] == stored["choice"]


def test_the_original_tumour_network_from_scratch_is_refused_with_the_fix(phantoms, tmp_path):
    with pytest.raises(ConfigError, match="--variant=paper"):
        _defaults("tumor", phantoms, tmp_path / "t", 10, variant="original").resolved()
